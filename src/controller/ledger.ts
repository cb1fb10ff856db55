/**
 * The migration ledger: table pgflip.migrations in the application database.
 * A file applied before with the same checksum is skipped; a file whose name
 * was applied with a different checksum is refused.
 */
import type { ClientBase } from 'pg';
import type { Side } from '../side';
import type { MigrationClass } from './types';

export const LEDGER_TABLE = 'pgflip.migrations';

export interface LedgerEntry {
  name: string;
  checksum: string;
  class: MigrationClass;
  side: Side;
  migrationId: string;
  startedAt: string;
}

export interface LedgerRow extends LedgerEntry {
  finishedAt: string;
}

export type LedgerStatus =
  | { status: 'new' }
  | { status: 'applied'; row: LedgerRow }
  | { status: 'changed'; row: LedgerRow };

export async function ensureLedger(c: ClientBase): Promise<void> {
  await c.query(`CREATE SCHEMA IF NOT EXISTS pgflip`);
  await c.query(`CREATE TABLE IF NOT EXISTS ${LEDGER_TABLE} (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    class text NOT NULL,
    side text NOT NULL,
    migration_id text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
}

const toRow = (r: Record<string, unknown>): LedgerRow => ({
  name: r.name as string,
  checksum: r.checksum as string,
  class: r.class as MigrationClass,
  side: r.side as Side,
  migrationId: r.migration_id as string,
  startedAt: new Date(r.started_at as string).toISOString(),
  finishedAt: new Date(r.finished_at as string).toISOString(),
});

/** Read-only: works on a database that has no ledger yet (dry runs create nothing). */
export async function ledgerStatus(c: ClientBase, name: string, checksum: string): Promise<LedgerStatus> {
  const exists = await c.query(`SELECT to_regclass('pgflip.migrations') IS NOT NULL AS ok`);
  if (!exists.rows[0].ok) return { status: 'new' };
  const r = await c.query(`SELECT * FROM ${LEDGER_TABLE} WHERE name = $1`, [name]);
  if (!r.rowCount) return { status: 'new' };
  const row = toRow(r.rows[0]);
  return row.checksum === checksum ? { status: 'applied', row } : { status: 'changed', row };
}

export async function recordLedger(c: ClientBase, e: LedgerEntry): Promise<void> {
  await c.query(
    `INSERT INTO ${LEDGER_TABLE} (name, checksum, class, side, migration_id, started_at) VALUES ($1, $2, $3, $4, $5, $6)`,
    [e.name, e.checksum, e.class, e.side, e.migrationId, e.startedAt],
  );
}

export async function ledgerRows(c: ClientBase): Promise<LedgerRow[]> {
  const exists = await c.query(`SELECT to_regclass('pgflip.migrations') IS NOT NULL AS ok`);
  if (!exists.rows[0].ok) return [];
  return (await c.query(`SELECT * FROM ${LEDGER_TABLE} ORDER BY finished_at`)).rows.map(toRow);
}

/** Copies ledger rows to another side (a risky migration's new side inherits the history). */
export async function copyLedger(from: ClientBase, to: ClientBase): Promise<void> {
  await ensureLedger(to);
  for (const r of await ledgerRows(from)) {
    await to.query(
      `INSERT INTO ${LEDGER_TABLE} (name, checksum, class, side, migration_id, started_at, finished_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING`,
      [r.name, r.checksum, r.class, r.side, r.migrationId, r.startedAt, r.finishedAt],
    );
  }
}

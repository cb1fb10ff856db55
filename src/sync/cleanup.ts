/**
 * Removal of everything a sync leaves on a server: the replication slot (a
 * forgotten one keeps WAL forever and fills the disk), the publication, the
 * replication origin and the applied-LSN row.
 */
import { Client } from 'pg';
import { HELPER_SCHEMA } from './catalog';
import { qi } from './sql';
import { sleep } from '../util/sleep';

/** Replication origins pgflip's apply sessions use; the reverse stream skips their transactions. */
export const ORIGIN_PREFIX = 'pgflip_origin_';
export const originName = (slot: string): string => `${ORIGIN_PREFIX}${slot}`;

export interface CleanupReport {
  slots: string[];
  publications: string[];
  origins: string[];
  stateRows: string[];
}


/** Drop a logical slot, ending the walsender that still holds it (e.g. of a killed process). */
export async function dropSlot(c: Client, name: string): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    const { rows } = await c.query('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [name]);
    if (!rows.length) return false;
    if (rows[0].active_pid) await c.query('SELECT pg_terminate_backend($1)', [rows[0].active_pid]);
    try {
      await c.query('SELECT pg_drop_replication_slot($1)', [name]);
      return true;
    } catch (err) {
      // 55006: still active for a moment after the terminate
      if ((err as { code?: string }).code !== '55006' || attempt >= 50) throw err;
      await sleep(100);
    }
  }
}

/**
 * Remove sync objects whose names start with `prefix` from the database `c` is
 * connected to: slots of this database, publications, origins and state rows.
 * Used by cleanup() for one name and by a restarted process for leftovers.
 */
export async function cleanupByPrefix(c: Client, prefix: string, exact = false): Promise<CleanupReport> {
  const match = exact ? '= $1' : 'LIKE $1';
  const arg = exact ? prefix : `${prefix.replace(/[\\%_]/g, '\\$&')}%`;
  const report: CleanupReport = { slots: [], publications: [], origins: [], stateRows: [] };
  const slots = await c.query(`SELECT slot_name FROM pg_replication_slots WHERE slot_name ${match} AND database = current_database()`, [arg]);
  for (const r of slots.rows) if (await dropSlot(c, r.slot_name)) report.slots.push(r.slot_name);
  const pubs = await c.query(`SELECT pubname FROM pg_publication WHERE pubname ${match}`, [arg]);
  for (const r of pubs.rows) {
    await c.query(`DROP PUBLICATION IF EXISTS ${qi(r.pubname)}`);
    report.publications.push(r.pubname);
  }
  const originArg = exact ? originName(prefix) : `${originName(prefix).replace(/[\\%_]/g, '\\$&')}%`;
  const origins = await c.query(`SELECT roname FROM pg_replication_origin WHERE roname ${match}`, [originArg]).catch(() => ({ rows: [] as { roname: string }[] }));
  for (const r of origins.rows) {
    try {
      await c.query('SELECT pg_replication_origin_drop($1)', [r.roname]);
      report.origins.push(r.roname);
    } catch { /* in use by a live session, or no privilege: leave it, it holds no WAL */ }
  }
  const hasState = await c.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [`${qi(HELPER_SCHEMA)}.sync_state`]);
  if (hasState.rows[0].present) {
    const del = await c.query(`DELETE FROM ${qi(HELPER_SCHEMA)}.sync_state WHERE slot_name ${match} RETURNING slot_name`, [arg]);
    report.stateRows.push(...del.rows.map((r) => r.slot_name as string));
    const left = await c.query(`SELECT count(*)::int AS n FROM ${qi(HELPER_SCHEMA)}.sync_state`);
    if (left.rows[0].n === 0) {
      await c.query(`DROP TABLE ${qi(HELPER_SCHEMA)}.sync_state`);
      // The schema also holds the migration ledger and fencing records: drop it only when empty.
      await c.query(`DROP SCHEMA IF EXISTS ${qi(HELPER_SCHEMA)}`).catch((err: { code?: string }) => {
        if (err.code !== '2BP01') throw err; // dependent objects: other parts still use it
      });
    }
  }
  return report;
}

/**
 * Up-front checks for a sync from `source`: every problem found
 * is reported, each with one clear line saying what to change.
 */
import { Client } from 'pg';
import { TableCatalog, TableInfo } from './catalog';
import { tableKey } from './sql';

export interface Problem {
  check: 'wal_level' | 'replication_privilege' | 'replication_slots' | 'wal_senders' | 'replica_identity' | 'unlogged' | 'ownership' | 'target';
  message: string;
}

export class SyncPrerequisiteError extends Error {
  override name = 'SyncPrerequisiteError';
  constructor(readonly problems: Problem[]) {
    super(`sync prerequisites not met:\n${problems.map((p) => `  - ${p.message}`).join('\n')}`);
  }
}

export async function checkSource(c: Client, synced: TableInfo[]): Promise<Problem[]> {
  const problems: Problem[] = [];
  const { rows: [s] } = await c.query(`
    SELECT current_setting('wal_level') AS wal_level,
           current_setting('max_replication_slots')::int AS max_slots,
           (SELECT count(*) FROM pg_replication_slots)::int AS used_slots,
           current_setting('max_wal_senders')::int AS max_senders,
           (SELECT count(*) FROM pg_stat_replication)::int AS used_senders,
           r.rolsuper AS superuser, r.rolreplication AS replication, current_user AS usr
      FROM pg_roles r WHERE r.rolname = current_user`);
  if (s.wal_level !== 'logical') {
    problems.push({ check: 'wal_level', message: `source wal_level is '${s.wal_level}', logical decoding needs 'logical' (set wal_level = logical and restart the server)` });
  }
  if (!s.superuser && !s.replication) {
    problems.push({ check: 'replication_privilege', message: `source role ${s.usr} lacks the REPLICATION attribute (ALTER ROLE ${s.usr} REPLICATION)` });
  }
  if (s.used_slots >= s.max_slots) {
    problems.push({ check: 'replication_slots', message: `source has no free replication slot (${s.used_slots} of max_replication_slots = ${s.max_slots} in use); raise max_replication_slots or drop unused slots` });
  }
  if (s.used_senders >= s.max_senders) {
    problems.push({ check: 'wal_senders', message: `source has no free WAL sender (${s.used_senders} of max_wal_senders = ${s.max_senders} in use); raise max_wal_senders` });
  }
  for (const t of synced) {
    const name = tableKey(t);
    if (t.persistence === 'u') {
      problems.push({ check: 'unlogged', message: `table ${name} is UNLOGGED, so its changes never reach the WAL; make it logged (ALTER TABLE ${name} SET LOGGED)` });
    }
    if (t.kind !== 'r') continue;
    if (t.replicaIdentity === 'n' || (t.replicaIdentity === 'd' && !t.hasPrimaryKey) || (t.replicaIdentity === 'i' && !t.keyColumns.length)) {
      problems.push({
        check: 'replica_identity',
        message: `table ${name} has no primary key${t.replicaIdentity === 'n' ? ' and REPLICA IDENTITY NOTHING' : ''}, so its updates and deletes cannot be matched on the target; add a primary key, or set REPLICA IDENTITY USING INDEX (a unique index on NOT NULL columns) or REPLICA IDENTITY FULL`,
      });
    }
    if (!s.superuser && t.owner !== s.usr) {
      problems.push({ check: 'ownership', message: `table ${name} is owned by ${t.owner}; the sync role ${s.usr} must own it (or be superuser) to add it to a publication` });
    }
  }
  return problems;
}

/** Tables the session syncs: every user table, or those named, minus the mapping's dropped ones. */
export function selectTables(catalog: TableCatalog, names: string[] | undefined): { tables: TableInfo[]; problems: string[] } {
  if (!names) return { tables: [...catalog.values()], problems: [] };
  const tables: TableInfo[] = [];
  const problems: string[] = [];
  for (const n of names) {
    const key = n.includes('.') ? n : `public.${n}`;
    const t = catalog.get(key);
    if (t) tables.push(t);
    else problems.push(`tables: the source has no table ${key}`);
  }
  return { tables, problems };
}

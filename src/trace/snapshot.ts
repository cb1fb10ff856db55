/**
 * What a session sees of the catalog at one instant, in one query: the relation locks it holds,
 * and the user schemas' relations (with their relfilenode), constraints, functions and types.
 * Two snapshots around a statement say what the statement locked, rewrote, validated and
 * created. pg_catalog, information_schema and the pg_toast / pg_temp schemas are left out:
 * the snapshot's own catalog reads lock system catalogs, and TOAST follows its table.
 */
import type { Client } from 'pg';
import { LOCK_LEVELS, LockLevel, OperationTrace } from '../classifier/types';

export interface SnapshotRelation {
  /** pg_class.relkind */
  kind: string;
  filenode: number;
  /** as regclass prints it (schema-qualified when not on the search_path) */
  name: string;
  /** `schema.name`, unquoted, to match the classifier's relation keys */
  key: string;
}

export interface CatalogSnapshot {
  /** relation oid → the strongest mode this session holds on it */
  locks: Map<number, LockLevel>;
  relations: Map<number, SnapshotRelation>;
  constraints: Map<number, { label: string; validated: boolean; rel: number; domain: number }>;
  functions: Map<number, string>;
  types: Map<number, { name: string; domain: boolean }>;
}

const USER_SCHEMA = (col: string) => `${col} <> 'information_schema' AND ${col} NOT LIKE 'pg\\_%'`;

const SNAPSHOT_SQL = `
SELECT
  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(l.relation::int8, l.mode)), '[]')
     FROM pg_catalog.pg_locks l
    WHERE l.pid = pg_catalog.pg_backend_pid() AND l.granted AND l.locktype = 'relation'
      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())) AS locks,
  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(c.oid::int8, c.relkind, c.relfilenode::int8, c.oid::pg_catalog.regclass::text, n.nspname || '.' || c.relname)), '[]')
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE ${USER_SCHEMA('n.nspname')}) AS relations,
  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(k.oid::int8,
            pg_catalog.quote_ident(k.conname) || ' on ' || CASE WHEN k.conrelid <> 0 THEN k.conrelid::pg_catalog.regclass::text ELSE 'domain ' || k.contypid::pg_catalog.regtype::text END,
            k.convalidated, k.conrelid::int8, k.contypid::int8)), '[]')
     FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_namespace n ON n.oid = k.connamespace
    WHERE ${USER_SCHEMA('n.nspname')}) AS constraints,
  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(p.oid::int8, p.oid::pg_catalog.regprocedure::text)), '[]')
     FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE ${USER_SCHEMA('n.nspname')}) AS functions,
  -- row types of relations and array types come with what they belong to
  (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_array(t.oid::int8, t.oid::pg_catalog.regtype::text, t.typtype = 'd')), '[]')
     FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
     LEFT JOIN pg_catalog.pg_type e ON e.typarray = t.oid
    WHERE ${USER_SCHEMA('n.nspname')} AND t.typrelid = 0 AND e.oid IS NULL) AS types`;

/** pg_locks' mode (AccessExclusiveLock) as the classifier's lock level (ACCESS EXCLUSIVE). */
export function lockLevel(mode: string): LockLevel | undefined {
  const words = mode.replace(/Lock$/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
  return (LOCK_LEVELS as readonly string[]).includes(words) ? words as LockLevel : undefined;
}

const stronger = (a: LockLevel, b: LockLevel | undefined) => b === undefined || LOCK_LEVELS.indexOf(a) > LOCK_LEVELS.indexOf(b);

export async function takeSnapshot(c: Client): Promise<CatalogSnapshot> {
  const { rows: [r] } = await c.query(SNAPSHOT_SQL);
  const locks = new Map<number, LockLevel>();
  for (const [oid, mode] of r.locks as [number, string][]) {
    const level = lockLevel(mode);
    if (level && stronger(level, locks.get(oid))) locks.set(oid, level);
  }
  return {
    locks,
    relations: new Map((r.relations as [number, string, number, string, string][]).map(([oid, kind, filenode, name, key]) => [oid, { kind, filenode, name, key }])),
    constraints: new Map((r.constraints as [number, string, boolean, number, number][]).map(([oid, label, validated, rel, domain]) => [oid, { label, validated, rel, domain }])),
    functions: new Map(r.functions as [number, string][]),
    types: new Map((r.types as [number, string, boolean][]).map(([oid, name, domain]) => [oid, { name, domain }])),
  };
}

const KIND_WORDS: Record<string, string> = {
  r: 'table', p: 'partitioned table', f: 'foreign table', i: 'index', I: 'partitioned index',
  S: 'sequence', v: 'view', m: 'materialized view', c: 'type',
};

/** A lock or rewrite the trace saw, with what the severity rules need to know about its relation. */
export interface ObservedRelation { oid: number; key: string; relation: string; kind: string }

/** What one statement did, between the snapshot before it and the one after it. */
export interface StatementObservation {
  trace: OperationTrace;
  locks: Array<ObservedRelation & { lock: LockLevel }>;
  rewrites: ObservedRelation[];
}

/**
 * The difference two snapshots make. `held`: the locks the transaction already held before the
 * statement (empty when it starts a transaction of its own); a lock is the statement's when it
 * is new or stronger than that. `autocommit`: the statement ran outside a transaction block, so
 * its locks were gone before the snapshot after it.
 */
export function observe(before: CatalogSnapshot, after: CatalogSnapshot, held: Map<number, LockLevel>, ms: number, autocommit = false): StatementObservation {
  const relation = (oid: number) => after.relations.get(oid) ?? before.relations.get(oid);
  const locks: StatementObservation['locks'] = [];
  for (const [oid, lock] of after.locks) {
    const rel = relation(oid);
    // relations the statement created are listed as created: nobody else can have waited for them
    if (!rel || !before.relations.has(oid) || !stronger(lock, held.get(oid))) continue;
    locks.push({ oid, key: rel.key, relation: rel.name, kind: rel.kind, lock });
  }
  locks.sort((a, b) => LOCK_LEVELS.indexOf(b.lock) - LOCK_LEVELS.indexOf(a.lock) || a.relation.localeCompare(b.relation));
  const rewrites: ObservedRelation[] = [];
  for (const [oid, now] of after.relations) {
    const was = before.relations.get(oid);
    if (was && (now.kind === 'r' || now.kind === 'm') && was.filenode !== 0 && now.filenode !== was.filenode) rewrites.push({ oid, key: now.key, relation: now.name, kind: now.kind });
  }
  const validated: string[] = [];
  const created: string[] = [];
  // an object dropped and made again under its name by the same statement (the indexes of a rewritten table) is rebuilt, not new
  const gone = <T>(m: Map<number, T>, n: Map<number, T>, label: (x: T) => string) =>
    new Map([...m].filter(([oid]) => !n.has(oid)).map(([, x]) => [label(x), x]));
  const goneRelations = gone(before.relations, after.relations, (r) => `${r.kind} ${r.key}`);
  const goneConstraints = gone(before.constraints, after.constraints, (k) => k.label);
  for (const [oid, rel] of after.relations) {
    if (before.relations.has(oid)) continue;
    created.push(`${KIND_WORDS[rel.kind] ?? 'relation'} ${rel.name}${goneRelations.has(`${rel.kind} ${rel.key}`) ? ' (rebuilt)' : ''}`);
  }
  for (const [oid, k] of after.constraints) {
    const was = before.constraints.get(oid);
    const rebuilt = was ? undefined : goneConstraints.get(k.label);
    if (!was) created.push(`constraint ${k.label}${rebuilt ? ' (rebuilt)' : ''}`);
    // checked against the rows already there: NOT VALID made valid, or added valid to a table (or domain) that existed
    const existed = (k.rel !== 0 && before.relations.has(k.rel)) || (k.domain !== 0 && before.types.has(k.domain));
    if (k.validated && (was ? !was.validated : rebuilt ? !rebuilt.validated : existed)) validated.push(k.label);
  }
  for (const [oid, name] of after.functions) if (!before.functions.has(oid)) created.push(`function ${name}`);
  for (const [oid, t] of after.types) if (!before.types.has(oid)) created.push(`${t.domain ? 'domain' : 'type'} ${t.name}`);
  return {
    trace: {
      locks: locks.map((l) => ({ lock: l.lock, relation: l.relation })), rewrote: rewrites.map((r) => r.relation), validated, created,
      ms: Math.round(ms * 100) / 100, ...(autocommit ? { autocommit: true as const } : {}),
    },
    locks,
    rewrites,
  };
}

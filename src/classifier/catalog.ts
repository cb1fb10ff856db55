/**
 * What the classifier reads from a live database (optional): the server's major version,
 * the tables a migration touches with their sizes and columns, and the extensions.
 * Read-only catalog queries; the migration itself is never run.
 */
import { Client } from 'pg';
import { TypeInfo, typeInfo } from './ast';
import { parseSql } from './parser';

export interface CatalogColumn { type?: TypeInfo; notNull: boolean; hasDefault: boolean }

export interface CatalogTable {
  key: string;
  relkind: string;
  rowEstimate: number;
  bytes: number;
  columns: Map<string, CatalogColumn>;
  /** columns proven NOT NULL by a validated CHECK (col IS NOT NULL) */
  notNullChecks: Set<string>;
  /** constraint name → contype (p, u, x, f, c, n, t) */
  constraints: Map<string, string>;
  /** columns that alone are a unique key (a unique, non-partial, one-column index) */
  uniqueColumns: Set<string>;
  /** a partitioned table with a DEFAULT partition (ATTACH PARTITION scans it) */
  hasDefaultPartition: boolean;
  /** a partitioned table's key columns; undefined when the key has an expression */
  partitionKey?: string[];
  /** for an index: unique, and the constraint it backs (p, u, x) if any */
  index?: { unique: boolean; constraint?: string };
  /** triggers of its own (not the internal ones of foreign keys): a row change may do more */
  userTriggers: boolean;
  /** foreign keys of other tables referencing it with an action (CASCADE, SET NULL, SET DEFAULT) on delete / on update */
  cascades: { delete: boolean; update: boolean };
  /** partitions attached (a partitioned table) */
  partitions: number;
}

export interface Catalog {
  serverVersion: number;
  /** server_version_num, e.g. 140003 */
  serverVersionNum?: number;
  /** schema.name → table; only the relations that were asked for and exist */
  tables: Map<string, CatalogTable>;
  availableExtensions: Set<string>;
  installedExtensions: Set<string>;
  /** domains with a CHECK or NOT NULL, by name (unqualified, as a column's type names them): `notNull` for NOT NULL ones */
  constrainedDomains?: Map<string, { notNull: boolean }>;
}

/** format_type() text → TypeInfo, through the real parser so aliases match the migration's. */
function parseType(text: string): TypeInfo | undefined {
  try {
    const target = parseSql(`SELECT NULL::${text}`)[0]?.node?.targetList?.[0]?.ResTarget?.val?.TypeCast?.typeName;
    return target ? typeInfo(target) : undefined;
  } catch { return undefined; }
}

const NOT_NULL_CHECK = /^CHECK \(\((?:"((?:[^"]|"")+)"|([a-z_][a-z0-9_$]*)) IS NOT NULL\)\)$/;

export async function loadCatalog(databaseUrl: string, relationKeys: string[]): Promise<Catalog> {
  const client = new Client({ connectionString: databaseUrl, application_name: 'pgflip validate' });
  await client.connect();
  try {
    const version = await client.query<{ v: string }>('SELECT current_setting(\'server_version_num\') AS v');
    const serverVersion = Math.floor(Number(version.rows[0].v) / 10000);
    const pairs = relationKeys.map((k) => { const i = k.indexOf('.'); return [k.slice(0, i), k.slice(i + 1)]; });
    const tables = new Map<string, CatalogTable>();
    if (pairs.length) {
      const rels = await client.query<{ key: string; oid: number; relkind: string; reltuples: string; bytes: string }>(
        `SELECT n.nspname || '.' || c.relname AS key, c.oid, c.relkind, c.reltuples::float8::text AS reltuples,
                pg_total_relation_size(c.oid)::text AS bytes
           FROM unnest($1::text[], $2::text[]) AS w(nsp, rel)
           JOIN pg_namespace n ON n.nspname = w.nsp
           JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel`,
        [pairs.map((p) => p[0]), pairs.map((p) => p[1])]);
      for (const r of rels.rows) {
        tables.set(r.key, {
          key: r.key, relkind: r.relkind, rowEstimate: Number(r.reltuples), bytes: Number(r.bytes),
          columns: new Map(), notNullChecks: new Set(), constraints: new Map(), uniqueColumns: new Set(), hasDefaultPartition: false,
          userTriggers: false, cascades: { delete: false, update: false }, partitions: 0,
        });
      }
      const oids = rels.rows.map((r) => r.oid);
      const byOid = new Map(rels.rows.map((r) => [r.oid, tables.get(r.key)!]));
      const cols = await client.query<{ attrelid: number; attname: string; type: string; attnotnull: boolean; atthasdef: boolean }>(
        `SELECT attrelid, attname, format_type(atttypid, atttypmod) AS type, attnotnull, atthasdef
           FROM pg_attribute WHERE attrelid = ANY($1::oid[]) AND attnum > 0 AND NOT attisdropped ORDER BY attrelid, attnum`, [oids]);
      for (const c of cols.rows) byOid.get(c.attrelid)?.columns.set(c.attname, { type: parseType(c.type), notNull: c.attnotnull, hasDefault: c.atthasdef });
      const cons = await client.query<{ conrelid: number; conname: string; contype: string; convalidated: boolean; def: string }>(
        `SELECT conrelid, conname, contype, convalidated, pg_get_constraintdef(oid) AS def FROM pg_constraint
          WHERE conrelid = ANY($1::oid[])`, [oids]);
      for (const c of cons.rows) {
        const t = byOid.get(c.conrelid);
        t?.constraints.set(c.conname, c.contype);
        const m = c.contype === 'c' && c.convalidated ? NOT_NULL_CHECK.exec(c.def) : null;
        if (m) t?.notNullChecks.add(m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]);
      }
      // one-column unique keys of the tables; uniqueness (and backing constraint) of the indexes named
      const idx = await client.query<{ indrelid: number; indexrelid: number; unique: boolean; column: string | null; contype: string | null }>(
        `SELECT i.indrelid, i.indexrelid, i.indisunique AS unique,
                CASE WHEN i.indnatts = 1 AND i.indexprs IS NULL AND i.indpred IS NULL
                     THEN (SELECT attname FROM pg_attribute WHERE attrelid = i.indrelid AND attnum = i.indkey[0]) END AS column,
                (SELECT contype FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x') LIMIT 1) AS contype
           FROM pg_index i WHERE i.indrelid = ANY($1::oid[]) OR i.indexrelid = ANY($1::oid[])`, [oids]);
      for (const r of idx.rows) {
        if (r.unique && r.column) byOid.get(r.indrelid)?.uniqueColumns.add(r.column);
        const asIndex = byOid.get(r.indexrelid);
        if (asIndex) asIndex.index = { unique: r.unique, ...(r.contype ? { constraint: r.contype } : {}) };
      }
      const trig = await client.query<{ tgrelid: number }>('SELECT DISTINCT tgrelid FROM pg_trigger WHERE tgrelid = ANY($1::oid[]) AND NOT tgisinternal', [oids]);
      for (const r of trig.rows) byOid.get(r.tgrelid)!.userTriggers = true;
      const refs = await client.query<{ confrelid: number; del: boolean; upd: boolean }>(
        `SELECT confrelid, bool_or(confdeltype NOT IN ('a', 'r')) AS del, bool_or(confupdtype NOT IN ('a', 'r')) AS upd
           FROM pg_constraint WHERE contype = 'f' AND confrelid = ANY($1::oid[]) GROUP BY confrelid`, [oids]);
      for (const r of refs.rows) byOid.get(r.confrelid)!.cascades = { delete: r.del, update: r.upd };
      const inh = await client.query<{ inhparent: number; n: number }>('SELECT inhparent, count(*)::int AS n FROM pg_inherits WHERE inhparent = ANY($1::oid[]) GROUP BY inhparent', [oids]);
      for (const r of inh.rows) byOid.get(r.inhparent)!.partitions = r.n;
      const parts = await client.query<{ partrelid: number; hasdef: boolean; cols: string[] | null; expr: boolean }>(
        `SELECT partrelid, partdefid <> 0 AS hasdef, 0 = ANY (partattrs::int2[]) AS expr,
                (SELECT array_agg(a.attname::text ORDER BY u.ord) FROM unnest(partattrs::int2[]) WITH ORDINALITY u(n, ord)
                   JOIN pg_attribute a ON a.attrelid = partrelid AND a.attnum = u.n) AS cols
           FROM pg_partitioned_table WHERE partrelid = ANY($1::oid[])`, [oids]);
      for (const r of parts.rows) {
        const t = byOid.get(r.partrelid)!;
        t.hasDefaultPartition = r.hasdef;
        if (!r.expr && r.cols) t.partitionKey = r.cols;
      }
    }
    const ext = await client.query<{ name: string; installed: boolean }>('SELECT name, installed_version IS NOT NULL AS installed FROM pg_available_extensions');
    const domains = await client.query<{ name: string; notnull: boolean }>(
      `SELECT t.typname AS name, t.typnotnull AS notnull FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typtype = 'd' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND (t.typnotnull OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contypid = t.oid))`);
    return {
      serverVersion, serverVersionNum: Number(version.rows[0].v), tables,
      constrainedDomains: new Map(domains.rows.map((r) => [r.name, { notNull: r.notnull }])),
      availableExtensions: new Set(ext.rows.map((r) => r.name)),
      installedExtensions: new Set(ext.rows.filter((r) => r.installed).map((r) => r.name)),
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

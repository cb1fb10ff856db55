/**
 * A database's schema as SQL without pg_dump: `@pgkit/schemainspect` reads the
 * catalog and `@pgkit/migra` writes the DDL that turns one schema into another
 * (from an empty database: the whole schema). What migra 0.6 gets wrong or
 * leaves out is filled in here from the catalog, each fix named below, and
 * proven by the round trips in test/schema.
 *
 * The inspecting session runs with an empty search_path, so every name in a
 * definition PostgreSQL prints (defaults, views, triggers) is schema-qualified
 * and the script means the same whatever search_path replays it.
 */
import { Migration, PostgreSQL } from '@pgkit/migra';
import type { Client } from 'pg';
import { types as pgTypes } from 'pg';
import { HELPER_SCHEMA } from './catalog';
import { COMPAT_SCHEMA_PATTERN } from '../compat/serving';

/** Statements to run before the data (types, tables, functions, views) and after it (indexes, keys, triggers). */
export interface SchemaScript {
  pre: string[];
  post: string[];
}

// Parsers as @pgkit/client sets them, which schemainspect's row handling expects.
const NUMBER_TYPES = new Set([20, 21, 23, 1700]);
const typeParsers = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') =>
    NUMBER_TYPES.has(oid) ? Number : (pgTypes.getTypeParser as (o: number, f?: string) => (v: string) => unknown)(oid, format),
};

type Query = { sql: string; values?: unknown[] };

/**
 * schemainspect reads domains and types only where the search_path sees them; the
 * inspecting session's search_path is empty (see above), and a schema other than
 * public would lose its domains anyway: those filters are dropped.
 */
const QUERY_FIXES: Array<[string, string]> = [
  ['AND pg_catalog.pg_type_is_visible(t.oid)', ''],
  ['AND pg_catalog.pg_type_is_visible ( t.oid )', ''],
];
const fixQuery = (sql: string): string => QUERY_FIXES.reduce((s, [from, to]) => s.split(from).join(to), sql);

/** The Queryable schemainspect needs (any, oneFirst), over a connection of ours — so it reads inside our transaction. */
function queryable(c: Client): Parameters<typeof PostgreSQL.create>[0] {
  const any = async (q: Query) => (await c.query({ text: fixQuery(q.sql), values: q.values as unknown[], types: typeParsers })).rows;
  return {
    any,
    oneFirst: async (q: Query) => Object.values((await any(q))[0] ?? {})[0],
  } as unknown as Parameters<typeof PostgreSQL.create>[0];
}

/** pgflip's own schemas (LIKE patterns), never part of the application's schema: a compatibility schema belongs to its side. */
export const PGFLIP_SCHEMAS = [HELPER_SCHEMA, COMPAT_SCHEMA_PATTERN.replace(/\*/g, '%')];

async function excludedSchemas(c: Client, patterns: string[]): Promise<string[]> {
  const { rows } = await c.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE nspname LIKE ANY($1)', [patterns]);
  return rows.map((r) => r.nspname);
}

/** Inspect the schema on `c`; the session's search_path is left empty (callers own the connection). */
export async function inspect(c: Client, exclude: string[] = PGFLIP_SCHEMAS): Promise<PostgreSQL> {
  await c.query("SELECT pg_catalog.set_config('search_path', '', false)");
  const inspected = await PostgreSQL.create(queryable(c));
  for (const s of await excludedSchemas(c, exclude)) inspected.exclude_schema(s);
  return inspected;
}

/** Statements migra generates from `from` to `to`, privileges included. */
export async function migraStatements(from: PostgreSQL, to: PostgreSQL): Promise<string[]> {
  const m = await Migration.create(from, to, {});
  m.set_safety(false);
  m.add_all_changes(true);
  // migra ends some statements (create domain) without a semicolon, and pads with `select 1;`
  return m.statements.array.map((s) => s.trim()).filter((s) => s && s !== 'select 1;' && !/^select 1;\s*(--[^\n]*\s*)*$/.test(s))
    .map((s) => (s.endsWith(';') ? s : `${s};`));
}

/** The whole schema of the database on `c`, as a script that builds it in an empty database. */
export async function schemaScript(c: Client, exclude: string[] = PGFLIP_SCHEMAS): Promise<SchemaScript> {
  const inspected = await inspect(c, exclude);
  const fixes = await catalogFixes(c, await excludedSchemas(c, exclude));
  return split(fixes.apply(await migraStatements(PostgreSQL.empty(), inspected)));
}

// ---- pre/post split ----

const POST_PATTERNS = [
  /^create\s+(unique\s+)?index\b/i,
  /^alter\s+table\s+(only\s+)?\S+\s+add\s+constraint\s+\S+\s+(primary\s+key|unique|foreign\s+key|exclude)\b/i,
  /^alter\s+index\s+\S+\s+attach\s+partition\b/i,
  /^create\s+(constraint\s+)?trigger\b/i,
  /^create\s+policy\b/i,
  /^comment\s+on\s+(index|constraint|trigger|policy)\b/i,
  /^refresh\s+materialized\s+view\b/i,
];

function split(statements: string[]): SchemaScript {
  const pre: string[] = [];
  const post: string[] = [];
  const postConstraints = new Set<string>();
  for (const s of statements) {
    const validate = /^alter\s+table\s+(\S+)\s+validate\s+constraint\s+(\S+?);?$/i.exec(s);
    const isPost = validate ? postConstraints.has(`${validate[1]} ${validate[2]}`) : POST_PATTERNS.some((p) => p.test(s));
    const added = /^alter\s+table\s+(\S+)\s+add\s+constraint\s+(\S+)/i.exec(s);
    if (isPost && added) postConstraints.add(`${added[1]} ${added[2]}`);
    // `set check_function_bodies = off` and the like hold for everything after them
    if (/^set\s/i.test(s)) { pre.push(s); post.push(s); continue; }
    (isPost ? post : pre).push(s);
  }
  return { pre, post };
}

// ---- what migra 0.6 gets wrong or leaves out ----

interface Fixes {
  apply(statements: string[]): string[];
}

/**
 * Read once from the catalog what the migra script needs amended:
 *  1. domains and composite types come after the tables that use them: moved before
 *     the first sequence or table;
 *  2. constraints a partition or child inherits are created by PostgreSQL with the
 *     parent's, and a second ADD fails: left out; keys of partitioned tables cannot be
 *     added USING INDEX: added as pg_dump does (ALTER TABLE ONLY), and partitions'
 *     indexes attached to their parent's;
 *  3. sequences lose their options (start, increment, bounds, cache, cycle, type);
 *  4. comments and owners are not written, nor grants on anything but tables;
 *  5. a populated materialized view is created from empty tables: refreshed after the data.
 */
async function catalogFixes(c: Client, excluded: string[]): Promise<Fixes> {
  const userNs = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%' AND NOT n.nspname = ANY($1)`;

  const inherited = new Set((await c.query<{ key: string }>(`
    SELECT json_build_array(n.nspname, r.relname, k.conname)::text AS key
      FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
     WHERE (NOT k.conislocal OR k.conparentid <> 0) AND ${userNs}`, [excluded])).rows.map((r) => rowKey(r.key)));
  // Keys of partitioned tables and their partitions cannot be added USING INDEX, as migra writes them
  const partitionKeys = new Map((await c.query<{ key: string; index: string; stmt: string }>(`
    SELECT json_build_array(n.nspname, r.relname, k.conname)::text AS key,
           json_build_array(n.nspname, i.relname)::text AS index,
           format('ALTER TABLE ONLY %I.%I ADD CONSTRAINT %I %s;', n.nspname, r.relname, k.conname, pg_get_constraintdef(k.oid)) AS stmt
      FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
      JOIN pg_class i ON i.oid = k.conindid
     WHERE k.contype IN ('p', 'u', 'x') AND (r.relkind = 'p' OR r.relispartition) AND ${userNs}`, [excluded])).rows
    .map((r) => [rowKey(r.key), { index: rowKey(r.index), stmt: r.stmt }]));
  const partitionKeyIndexes = new Set([...partitionKeys.values()].map((k) => k.index));
  // An index on a partitioned table is created ON ONLY it, and each partition's attached to it
  const attaches = (await c.query<{ stmt: string }>(`
    SELECT format('ALTER INDEX %I.%I ATTACH PARTITION %I.%I;', pn.nspname, p.relname, n.nspname, i.relname) AS stmt
      FROM pg_inherits h JOIN pg_class i ON i.oid = h.inhrelid AND i.relkind IN ('i', 'I') JOIN pg_namespace n ON n.oid = i.relnamespace
      JOIN pg_class p ON p.oid = h.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
     WHERE ${userNs} ORDER BY 1`, [excluded])).rows;

  const sequences = new Map((await c.query<{ name: string; def: string }>(`
    SELECT json_build_array(n.nspname, c.relname)::text AS name,
           format('AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s %s',
                  format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache,
                  CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END) AS def
      FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE ${userNs}`, [excluded])).rows.map((r) => [rowKey(r.name), r.def]));

  const comments = (await c.query<{ stmt: string; post: boolean }>(`
    SELECT format('COMMENT ON %s %s IS %L;',
             CASE o.type WHEN 'table column' THEN 'COLUMN' WHEN 'table constraint' THEN 'CONSTRAINT'
                         WHEN 'type' THEN CASE WHEN t.typtype = 'd' THEN 'DOMAIN' ELSE 'TYPE' END
                         ELSE upper(o.type) END,
             o.identity, d.description) AS stmt,
           o.type IN ('index', 'table constraint', 'trigger', 'policy') AS post
      FROM pg_description d
      CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) o
      LEFT JOIN pg_type t ON d.classoid = 'pg_type'::regclass AND t.oid = d.objoid
      LEFT JOIN pg_namespace n ON n.nspname = coalesce(o.schema, CASE WHEN o.type = 'schema' THEN o.identity END)
     WHERE o.type IN ('table', 'table column', 'view', 'materialized view', 'sequence', 'index', 'table constraint',
                      'trigger', 'policy', 'function', 'procedure', 'type', 'schema')
       AND (n.oid IS NULL OR ${userNs})
       AND (o.type <> 'trigger' OR EXISTS (SELECT 1 FROM pg_trigger g JOIN pg_class r ON r.oid = g.tgrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace
                                            WHERE g.oid = d.objoid AND NOT rn.nspname = ANY($1)))
       AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classoid AND e.objid = d.objoid AND e.deptype = 'e')
     ORDER BY 1`, [excluded])).rows;

  const owners = (await c.query<{ stmt: string }>(`
    WITH objs AS (
      SELECT 'pg_class'::regclass AS cls, c.oid, c.relowner AS owner, c.relnamespace AS ns FROM pg_class c
       WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
         -- a sequence owned by a column (serial, identity) takes its table's owner and refuses its own
         AND (c.relkind <> 'S' OR NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
      UNION ALL SELECT 'pg_proc'::regclass, p.oid, p.proowner, p.pronamespace FROM pg_proc p
      UNION ALL SELECT 'pg_type'::regclass, t.oid, t.typowner, t.typnamespace FROM pg_type t
       WHERE t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
      UNION ALL SELECT 'pg_namespace'::regclass, s.oid, s.nspowner, s.oid FROM pg_namespace s
       WHERE s.nspname <> 'public'
    )
    SELECT format('ALTER %s %s OWNER TO %I;',
             CASE WHEN o.type = 'type' AND t.typtype = 'd' THEN 'DOMAIN' ELSE upper(o.type) END,
             o.identity, pg_get_userbyid(x.owner)) AS stmt
      FROM objs x JOIN pg_namespace n ON n.oid = x.ns
      CROSS JOIN LATERAL pg_identify_object(x.cls, x.oid, 0) o
      LEFT JOIN pg_type t ON x.cls = 'pg_type'::regclass AND t.oid = x.oid
     WHERE ${userNs}
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = x.cls AND d.objid = x.oid AND d.deptype = 'e')
       AND o.type IN ('table', 'view', 'materialized view', 'sequence', 'foreign table', 'function', 'procedure', 'aggregate', 'type', 'schema')
     ORDER BY 1`, [excluded])).rows;

  // migra writes grants on tables only: every object's grants from its ACL, column grants too
  const grants = (await c.query<{ stmt: string }>(`
    WITH objs AS (
      SELECT 'pg_class'::regclass AS cls, c.oid, c.relacl AS acl, c.relowner AS owner, c.relnamespace AS ns,
             CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind, NULL::text AS col
        FROM pg_class c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relacl IS NOT NULL
      UNION ALL SELECT 'pg_class'::regclass, c.oid, a.attacl, c.relowner, c.relnamespace, 'TABLE', quote_ident(a.attname)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE a.attacl IS NOT NULL AND NOT a.attisdropped
      UNION ALL SELECT 'pg_proc'::regclass, p.oid, p.proacl, p.proowner, p.pronamespace, CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, NULL
        FROM pg_proc p WHERE p.proacl IS NOT NULL
      UNION ALL SELECT 'pg_type'::regclass, t.oid, t.typacl, t.typowner, t.typnamespace, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, NULL
        FROM pg_type t WHERE t.typacl IS NOT NULL
      UNION ALL SELECT 'pg_namespace'::regclass, s.oid, s.nspacl, s.nspowner, s.oid, 'SCHEMA', NULL
        FROM pg_namespace s WHERE s.nspacl IS NOT NULL
    )
    SELECT format('GRANT %s%s ON %s %s TO %s%s;', a.privilege_type, coalesce(' (' || x.col || ')', ''), x.kind,
                  CASE WHEN x.kind = 'SCHEMA' THEN quote_ident(n.nspname) ELSE o.identity END,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                  CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) AS stmt
      FROM objs x JOIN pg_namespace n ON n.oid = x.ns
      CROSS JOIN LATERAL pg_identify_object(x.cls, x.oid, 0) o
      CROSS JOIN LATERAL aclexplode(x.acl) a
     WHERE ${userNs} AND a.grantee <> x.owner
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = x.cls AND d.objid = x.oid AND d.deptype = 'e')
     ORDER BY 1`, [excluded])).rows;

  const matviews = (await c.query<{ name: string }>(`
    SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'm' AND c.relispopulated AND ${userNs} ORDER BY 1`, [excluded])).rows;

  return {
    apply(statements) {
      const kept = statements.flatMap((s) => {
        const con = /^alter\s+table\s+(\S+)\s+(add|validate)\s+constraint\s+(\S+)/i.exec(s);
        const conKey = con && key(...splitQualified(con[1]), unquoteIdent(con[3]));
        if (conKey && partitionKeys.has(conKey)) return con![2].toLowerCase() === 'add' ? [partitionKeys.get(conKey)!.stmt] : [];
        if (conKey && inherited.has(conKey)) return [];
        const idx = /^create\s+(?:unique\s+)?index\s+(\S+)\s+on\s+(?:only\s+)?(\S+?)\.\S+/i.exec(s);
        if (idx && partitionKeyIndexes.has(key(unquoteIdent(idx[2]), unquoteIdent(idx[1])))) return [];
        return [s];
      }).map((s) => {
        const seq = /^create\s+sequence\s+("(?:[^"]|"")+"\."(?:[^"]|"")+");?$/i.exec(s);
        const def = seq && sequences.get(key(...splitQualified(seq[1])));
        return def ? `CREATE SEQUENCE ${seq![1]} ${def};` : s;
      });
      // 1: domains before composite types, both before the first sequence or table
      const isType = (s: string) => /^create\s+domain\b/i.test(s) || /^create\s+type\s+\S+\s+as\s*\(/i.test(s);
      const types = kept.filter(isType).sort((a, b) => Number(/^create\s+type/i.test(a)) - Number(/^create\s+type/i.test(b)));
      const rest = kept.filter((s) => !isType(s));
      const at = rest.findIndex((s) => /^create\s+(sequence|table|unlogged\s+table)\b/i.test(s));
      const ordered = at < 0 ? [...rest, ...types] : [...rest.slice(0, at), ...types, ...rest.slice(at)];
      return [
        ...ordered,
        ...owners.map((o) => o.stmt),
        ...grants.map((g) => g.stmt),
        ...comments.map((x) => x.stmt),
        ...attaches.map((a) => a.stmt),
        ...matviews.map((m) => `REFRESH MATERIALIZED VIEW ${m.name};`),
      ];
    },
  };
}

/** The catalog's names as the queries above key them (json_build_array(...)::text) */
const key = (...names: string[]): string => JSON.stringify(names);
const rowKey = (text: string): string => JSON.stringify(JSON.parse(text));

function splitQualified(text: string): [string, string] {
  const m = /^("(?:[^"]|"")+"|[^."]+)\.("(?:[^"]|"")+"|[^."]+)$/.exec(text);
  if (!m) return ['public', unquoteIdent(text)];
  return [unquoteIdent(m[1]), unquoteIdent(m[2])];
}

function unquoteIdent(text: string): string {
  return text.startsWith('"') ? text.slice(1, -1).replace(/""/g, '"') : text;
}

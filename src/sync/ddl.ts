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
  // a domain over an enum has the enum's category: it would be written as an empty enum
  ["t.typcategory = 'E'", "t.typcategory = 'E' AND t.typtype = 'e'"],
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
export const PGFLIP_SCHEMAS = [HELPER_SCHEMA, COMPAT_SCHEMA_PATTERN].map((p) => p.replace(/_/g, '\\_').replace(/\*/g, '%'));

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
  return split(fixes.apply(await migraStatements(PostgreSQL.empty(), inspected)), fixes.afterData);
}

// ---- pre/post split ----

/** An identifier as PostgreSQL prints it (quoted where needed), and one qualified by its schema. */
const ID = String.raw`(?:"(?:[^"]|"")+"|[^\s."(),;]+)`;
const QN = String.raw`${ID}(?:\.${ID})?`;
const rx = (src: string) => new RegExp(src, 'i');

const POST_PATTERNS = [
  rx(String.raw`^create\s+(unique\s+)?index\b`),
  rx(String.raw`^alter\s+table\s+(only\s+)?${QN}\s+add\s+constraint\s+${ID}\s+(primary\s+key|unique|foreign\s+key|exclude)\b`),
  rx(String.raw`^alter\s+table\s+(only\s+)?${QN}\s+(replica\s+identity\s+using\s+index|cluster\s+on)\b`),
  rx(String.raw`^alter\s+index\s+${QN}\s+attach\s+partition\b`),
  rx(String.raw`^create\s+(constraint\s+)?trigger\b`),
  rx(String.raw`^create\s+(or\s+replace\s+)?rule\b`),
  rx(String.raw`^create\s+statistics\b`),
  rx(String.raw`^create\s+policy\b`),
  rx(String.raw`^comment\s+on\s+(index|constraint|trigger|policy|rule)\b`),
  rx(String.raw`^refresh\s+materialized\s+view\b`),
];
const VALIDATE_RE = rx(String.raw`^alter\s+table\s+(${QN})\s+validate\s+constraint\s+(${ID});?$`);
const ADD_CONSTRAINT_RE = rx(String.raw`^alter\s+table\s+(?:only\s+)?(${QN})\s+(add|validate)\s+constraint\s+(${ID})`);

function split(statements: string[], afterData: Set<string>): SchemaScript {
  const pre: string[] = [];
  const post: string[] = [];
  const postConstraints = new Set<string>();
  for (const s of statements) {
    const validate = VALIDATE_RE.exec(s);
    const isPost = afterData.has(s) || (validate ? postConstraints.has(`${validate[1]} ${validate[2]}`) : POST_PATTERNS.some((p) => p.test(s)));
    const added = ADD_CONSTRAINT_RE.exec(s);
    if (isPost && added) postConstraints.add(`${added[1]} ${added[3]}`);
    // `set check_function_bodies = off` and the like hold for everything after them
    if (/^set\s/i.test(s)) { pre.push(s); post.push(s); continue; }
    (isPost ? post : pre).push(s);
  }
  return { pre, post };
}

// ---- what migra 0.6 gets wrong or leaves out ----

interface Fixes {
  apply(statements: string[]): string[];
  /** statements of the script that must run after the data whatever they are */
  afterData: Set<string>;
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
 *  4. comments, owners, default privileges and revoked privileges are not written, nor grants on
 *     anything but tables; nor FORCE ROW LEVEL SECURITY, replica identity, storage options,
 *     statistics targets, identity options, column collations, rules, extended statistics;
 *  6. functions are written after the tables whose defaults, checks or domains call them: those
 *     whose signature needs no table's row type come before the tables;
 *  5. materialized views are created from empty tables: created WITH NO DATA, and those populated
 *     on the source refreshed after the data, each after those it is built on; a constraint NOT
 *     VALID on the source is not validated.
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
           -- (a foreign key's conindid is the referenced table's index: not its own)
           CASE WHEN k.contype <> 'f' THEN json_build_array(n.nspname, i.relname)::text END AS index,
           -- a foreign key is added to the parent alone and recurses; keys ON ONLY each, attached below
           format('ALTER TABLE %s %I.%I ADD CONSTRAINT %I %s;', CASE WHEN k.contype = 'f' THEN '' ELSE 'ONLY' END,
                  n.nspname, r.relname, k.conname, pg_get_constraintdef(k.oid)) AS stmt
      FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
      LEFT JOIN pg_class i ON i.oid = k.conindid
     WHERE ((k.contype IN ('p', 'u', 'x') AND (r.relkind = 'p' OR r.relispartition)) OR (k.contype = 'f' AND r.relkind = 'p' AND k.conparentid = 0))
       AND ${userNs}`, [excluded])).rows
    .map((r) => [rowKey(r.key), { index: r.index && rowKey(r.index), stmt: r.stmt.replace('ALTER TABLE  ', 'ALTER TABLE ') }]));
  const partitionKeyIndexes = new Set([...partitionKeys.values()].filter((k) => k.index).map((k) => k.index));
  // a constraint NOT VALID on the source stays so: migra validates every constraint it adds
  const notValidated = new Set((await c.query<{ key: string }>(`
    SELECT json_build_array(n.nspname, r.relname, k.conname)::text AS key
      FROM pg_constraint k JOIN pg_class r ON r.oid = k.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
     WHERE NOT k.convalidated AND ${userNs}`, [excluded])).rows.map((r) => rowKey(r.key)));
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
    , target AS (
      SELECT x.*, CASE WHEN x.kind = 'SCHEMA' THEN quote_ident(n.nspname) ELSE o.identity END AS ident
        FROM objs x JOIN pg_namespace n ON n.oid = x.ns
        CROSS JOIN LATERAL pg_identify_object(x.cls, x.oid, 0) o
       WHERE ${userNs} AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = x.cls AND d.objid = x.oid AND d.deptype = 'e')
    )
    -- the ACL exactly, as pg_dump writes it: what PUBLIC and the owner had by default revoked, then every entry granted
    SELECT stmt FROM (
      SELECT t.ident AS ident, 0 AS k, format('REVOKE ALL ON %s %s FROM PUBLIC;', t.kind, t.ident) AS stmt FROM target t WHERE t.col IS NULL
      UNION ALL
      SELECT t.ident, 1, format('REVOKE ALL ON %s %s FROM %I;', t.kind, t.ident, pg_get_userbyid(t.owner)) FROM target t WHERE t.col IS NULL
      UNION ALL
      SELECT t.ident, 2, format('GRANT %s%s ON %s %s TO %s%s;', a.privilege_type, coalesce(' (' || t.col || ')', ''), t.kind, t.ident,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                    CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
        FROM target t CROSS JOIN LATERAL aclexplode(t.acl) a
      UNION ALL
      -- default privileges: what objects created later get
      SELECT 'default', 3, format('ALTER DEFAULT PRIVILEGES FOR ROLE %I%s GRANT %s ON %s TO %s%s;', pg_get_userbyid(d.defaclrole),
                    CASE WHEN d.defaclnamespace = 0 THEN '' ELSE ' IN SCHEMA ' || quote_ident(dn.nspname) END, a.privilege_type,
                    CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' WHEN 'n' THEN 'SCHEMAS' END,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                    CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
        FROM pg_default_acl d LEFT JOIN pg_namespace dn ON dn.oid = d.defaclnamespace
        CROSS JOIN LATERAL aclexplode(d.defaclacl) a
       WHERE (d.defaclnamespace = 0 OR dn.nspname <> ALL($1)) AND a.grantee <> d.defaclrole
    ) g ORDER BY ident, k, stmt`, [excluded])).rows;

  // populated materialized views, refreshed after the data in dependency order (one built on another after it)
  const matviewRows = (await c.query<{ oid: number; name: string; deps: number[] }>(`
    SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name,
           ARRAY(SELECT DISTINCT d.refobjid::int FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                  JOIN pg_class dc ON dc.oid = d.refobjid AND dc.relkind = 'm' WHERE rw.ev_class = c.oid AND d.refobjid <> c.oid) AS deps
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'm' AND c.relispopulated AND ${userNs} ORDER BY 2`, [excluded])).rows;
  const matviews = topoSort(matviewRows);

  // table and column state migra does not write, each as the statement that sets it
  const tableState = (await c.query<{ stmt: string }>(`
    SELECT stmt FROM (
      SELECT 1 AS k, format('ALTER TABLE %I.%I FORCE ROW LEVEL SECURITY;', n.nspname, c.relname) AS stmt
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relforcerowsecurity AND ${userNs}
      UNION ALL
      SELECT 2, format('ALTER TABLE ONLY %I.%I REPLICA IDENTITY %s;', n.nspname, c.relname,
                       CASE c.relreplident WHEN 'f' THEN 'FULL' WHEN 'n' THEN 'NOTHING' END)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND c.relreplident IN ('f', 'n') AND ${userNs}
      UNION ALL
      SELECT 3, format('ALTER %s %I.%I SET (%s);', CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, n.nspname, c.relname, array_to_string(c.reloptions, ', '))
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm') AND c.reloptions IS NOT NULL AND ${userNs}
      UNION ALL
      SELECT 4, format('ALTER TABLE %I.%I ALTER COLUMN %I SET STATISTICS %s;', n.nspname, c.relname, a.attname, a.attstattarget)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND a.attstattarget >= 0 AND a.attislocal AND ${userNs}
      UNION ALL
      -- identity columns keep their sequence's options
      SELECT 5, format('ALTER TABLE %I.%I ALTER COLUMN %I SET INCREMENT BY %s SET MINVALUE %s SET MAXVALUE %s SET START WITH %s SET CACHE %s SET %s;',
                       n.nspname, c.relname, a.attname, s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END)
        FROM pg_depend d JOIN pg_sequence s ON s.seqrelid = d.objid
        JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
       WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'i' AND a.attidentity <> '' AND a.attislocal AND ${userNs}
    ) x ORDER BY k, stmt`, [excluded])).rows.map((r) => r.stmt);
  // column collations other than their type's: set right after the table is created, before anything depends on the column
  const collations = (await c.query<{ table: string; stmt: string }>(`
    SELECT json_build_array(n.nspname, c.relname)::text AS table,
           format('ALTER TABLE %I.%I ALTER COLUMN %I TYPE %s COLLATE %I.%I;', n.nspname, c.relname, a.attname,
                  format_type(a.atttypid, a.atttypmod), cn.nspname, co.collname) AS stmt
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_type t ON t.oid = a.atttypid JOIN pg_collation co ON co.oid = a.attcollation JOIN pg_namespace cn ON cn.oid = co.collnamespace
     WHERE c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped AND a.attislocal
       AND a.attcollation <> t.typcollation AND ${userNs} ORDER BY 2`, [excluded])).rows;
  const postState = (await c.query<{ stmt: string }>(`
    SELECT stmt FROM (
      SELECT 1 AS k, format('ALTER TABLE ONLY %I.%I REPLICA IDENTITY USING INDEX %I;', n.nspname, c.relname, i.relname) AS stmt
        FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE x.indisreplident AND ${userNs}
      UNION ALL
      SELECT 2, format('ALTER TABLE %I.%I CLUSTER ON %I;', n.nspname, c.relname, i.relname)
        FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE x.indisclustered AND ${userNs}
      UNION ALL
      SELECT 3, pg_get_ruledef(r.oid, false)
        FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE r.rulename <> '_RETURN' AND ${userNs}
      UNION ALL
      SELECT 4, pg_get_statisticsobjdef(s.oid) || ';'
        FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE ${userNs}
    ) x ORDER BY k, stmt`, [excluded])).rows.map((r) => r.stmt);
  // functions whose signature needs no table's row type can come before the tables (a default, a check or a domain may call them);
  // a SQL-standard body (PostgreSQL 14+) is checked when created, so it stays after the tables
  const version = Number((await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v);
  const tableTyped = new Set((await c.query<{ name: string }>(`
    SELECT DISTINCT json_build_array(n.nspname, p.proname)::text AS name
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE ${userNs} AND (${version >= 140000 ? 'p.prosqlbody IS NOT NULL' : 'false'} OR EXISTS (
             SELECT 1 FROM pg_depend d JOIN pg_type t ON t.oid = d.refobjid JOIN pg_class r ON r.oid = t.typrelid
              WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.refclassid = 'pg_type'::regclass AND r.relkind <> 'c'))`,
  [excluded])).rows.map((r) => rowKey(r.name)));
  // …and those whose signature uses a domain or a composite type come after the types, the others before them (a domain's CHECK may call one)
  const typeTyped = new Set((await c.query<{ name: string }>(`
    SELECT DISTINCT json_build_array(n.nspname, p.proname)::text AS name
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.refclassid = 'pg_type'::regclass
      JOIN pg_type t ON t.oid = d.refobjid
     WHERE ${userNs} AND (t.typtype = 'd' OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))`,
  [excluded])).rows.map((r) => rowKey(r.name)));

  const afterData = new Set<string>();
  return {
    afterData,
    apply(statements) {
      const kept = statements.flatMap((s) => {
        const con = ADD_CONSTRAINT_RE.exec(s);
        const conKey = con && key(...splitQualified(con[1]), unquoteIdent(con[3]));
        if (conKey && partitionKeys.has(conKey)) return con![2].toLowerCase() === 'add' ? [partitionKeys.get(conKey)!.stmt] : [];
        if (conKey && inherited.has(conKey)) return [];
        if (conKey && notValidated.has(conKey)) {
          // rows the source let in stay in: added after the data (as pg_dump does) and not validated
          if (con![2].toLowerCase() === 'validate') return [];
          afterData.add(s);
        }
        const idx = CREATE_INDEX_RE.exec(s);
        if (idx && partitionKeyIndexes.has(key(unquoteIdent(idx[2]), unquoteIdent(idx[1])))) return [];
        const seq = /^create\s+sequence\s+("(?:[^"]|"")+"\."(?:[^"]|"")+");?$/i.exec(s);
        const def = seq && sequences.get(key(...splitQualified(seq[1])));
        if (def) return [`CREATE SEQUENCE ${seq![1]} ${def};`];
        // filled after the data, in dependency order (a view over empty tables may not even compute)
        if (/^create\s+materialized\s+view\b/i.test(s)) return [`${s.replace(/\s*;\s*$/, '')}\nWITH NO DATA;`];
        return [s];
      });
      // 1: domains before composite types, then functions that need no table, all before the first sequence or table
      const isType = (s: string) => /^create\s+domain\b/i.test(s) || /^create\s+type\s+\S+\s+as\s*\(/i.test(s);
      const isEarlyFunction = (s: string) => {
        const f = FUNCTION_RE.exec(s);
        return !!f && !tableTyped.has(key(...splitQualified(f[1])));
      };
      const types = kept.filter(isType).sort((a, b) => Number(/^create\s+type/i.test(a)) - Number(/^create\s+type/i.test(b)));
      const usesTypes = (f: string) => typeTyped.has(key(...splitQualified(FUNCTION_RE.exec(f)![1])));
      const functions = kept.filter(isEarlyFunction);
      const rest = kept.filter((s) => !isType(s) && !isEarlyFunction(s));
      const early = [
        ...(functions.length ? ['SET check_function_bodies = false;'] : []),
        ...functions.filter((f) => !usesTypes(f)), ...types, ...functions.filter(usesTypes),
      ];
      const at = rest.findIndex((s) => /^create\s+(sequence|table|unlogged\s+table)\b/i.test(s));
      const ordered = at < 0 ? [...rest, ...early] : [...rest.slice(0, at), ...early, ...rest.slice(at)];
      // a column's collation right after its table is created
      for (const col of collations) {
        const [schema, name] = JSON.parse(col.table) as [string, string];
        const create = ordered.findIndex((s) => CREATE_TABLE_RE.exec(s)?.[1] === `${qid(schema)}.${qid(name)}`);
        if (create >= 0) ordered.splice(create + 1, 0, col.stmt); else ordered.push(col.stmt);
      }
      return [
        ...ordered,
        ...tableState,
        ...owners.map((o) => o.stmt),
        ...grants.map((g) => g.stmt),
        ...comments.map((x) => x.stmt),
        ...attaches.map((a) => a.stmt),
        ...postState,
        ...matviews.map((m) => `REFRESH MATERIALIZED VIEW ${m};`),
      ];
    },
  };
}

const CREATE_INDEX_RE = rx(String.raw`^create\s+(?:unique\s+)?index\s+(${ID})\s+on\s+(?:only\s+)?(${ID})\.${ID}`);
const FUNCTION_RE = rx(String.raw`^create\s+(?:or\s+replace\s+)?(?:function|procedure)\s+(${QN})\s*\(`);
const CREATE_TABLE_RE = rx(String.raw`^create\s+(?:unlogged\s+)?table\s+(${QN})`);
/** migra quotes every identifier */
const qid = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** Materialized views in an order where each comes after those it is built on. */
function topoSort(rows: Array<{ oid: number; name: string; deps: number[] }>): string[] {
  const byOid = new Map(rows.map((r) => [r.oid, r]));
  const out: string[] = [];
  const done = new Set<number>();
  const visit = (r: { oid: number; name: string; deps: number[] }, path: Set<number>) => {
    if (done.has(r.oid) || path.has(r.oid)) return;
    path.add(r.oid);
    for (const d of r.deps) { const dep = byOid.get(d); if (dep) visit(dep, path); }
    done.add(r.oid);
    out.push(r.name);
  };
  for (const r of rows) visit(r, new Set());
  return out;
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

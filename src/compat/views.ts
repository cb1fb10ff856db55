/**
 * The compatibility schema: after a risky migration ran on the new side, the old
 * application version keeps working through one view per changed table, under the
 * table's old name, showing the old columns over the new table. Old sessions get
 * this schema first in their search_path (elsewhere).
 *
 * A view whose columns are all plain column references (renames, added or reordered
 * columns) is automatically updatable: PostgreSQL itself runs INSERT, UPDATE, DELETE,
 * RETURNING and ON CONFLICT on it. A view with an expression column (type change,
 * dropped column) gets INSTEAD OF INSERT / UPDATE triggers that write the new table
 * through the forward expressions; DELETE stays automatic.
 */
import { Client } from 'pg';
import { SchemaMapping, TableMapping } from '../classifier/mapping';
import { ColumnInfo, TableCatalog, TableInfo } from '../sync/catalog';
import { isWidening, normaliseType } from '../sync/invert';
import { normaliseTableKey, parseTableName, qi, qtable, TableName, tableKey } from '../sync/sql';

/** table key → column → default expression (pg_get_expr, names schema-qualified). */
export type ColumnDefaults = Map<string, Record<string, string>>;

export interface CompatInput {
  schema: string;
  mapping: SchemaMapping;
  oldCatalog: TableCatalog;
  newCatalog: TableCatalog;
  /** roles of the old application: USAGE on the schema, and on each view what they hold on its table */
  roles: string[];
  /** the old side's defaults (readColumnDefaults), shown for dropped columns; absent = NULL */
  oldDefaults?: ColumnDefaults;
}

/** What the plan needs from the new side's catalog beyond readCatalog (readCompatFacts). */
export interface CompatFacts {
  /** the new tables' defaults, copied onto trigger views so omitted columns still get them */
  newDefaults: ColumnDefaults;
  /** new table key → role → privileges it holds there (SELECT/INSERT/UPDATE/DELETE) */
  privileges: Map<string, Record<string, string[]>>;
  /** PostgreSQL 15+: views check the caller's privileges and row security, as the table would */
  securityInvoker: boolean;
}

export interface CompatView {
  /** old qualified name */
  table: string;
  /** the view, qualified and quoted */
  view: string;
  writes: 'automatic' | 'triggers';
  /** old statements that will fail (or lose what they write), and why */
  fails: string[];
  /** this view's part of the plan */
  sql: string;
}

export interface CompatPlan {
  schema: string;
  sql: string;
  views: CompatView[];
  /** failures that have no view: tables the migration dropped */
  fails: string[];
}

const PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];

/** One old column as the view shows it. */
interface ViewColumn {
  old: ColumnInfo;
  /** the new column it reads and writes; undefined when dropped */
  target?: ColumnInfo;
  /** SQL over the new table giving the old value */
  show: string;
  /** SQL over the old-named columns (alias o) giving the new value */
  forward: string;
  plain: boolean;
}

function viewColumns(m: TableMapping, oldT: TableInfo, newT: TableInfo, oldDefaults: Record<string, string>): ViewColumn[] {
  return oldT.columns.map((old): ViewColumn => {
    if (m.droppedColumns.includes(old.name)) {
      const d = oldDefaults[old.name];
      // a sequence default would consume the sequence on every SELECT
      const value = d && !/\bnextval\s*\(/i.test(d) ? `(${d})` : 'NULL';
      return { old, show: `${value}::${old.type}`, forward: '', plain: false };
    }
    const name = m.renamedColumns[old.name] ?? old.name;
    const target = newT.columns.find((c) => c.name === name);
    if (!target) throw new Error(`${tableKey(newT)} has no column ${name} (old ${old.name}) that the mapping says it keeps`);
    const change = m.typeChanges.find((c) => c.column === name);
    // a wider type of the same kind (varchar(20) → varchar(40), numeric precision) reads and
    // writes as before: the column itself serves the old version
    if (!change || (!change.using && sameKindWidening(old.type, change.newType))) return { old, target, show: qi(name), forward: `o.${qi(old.name)}`, plain: true };
    // USING is written over the old row's unqualified names, which resolve in o
    const forward = change.using ? `(${change.using})::${change.newType}` : `o.${qi(old.name)}::${change.newType}`;
    return { old, target, show: `${qi(name)}::${old.type}`, forward, plain: false };
  });
}

/** Same base type, only wider: the wire type and what a client reads are unchanged. */
function sameKindWidening(from: string, to: string): boolean {
  return normaliseType(from).base === normaliseType(to).base && isWidening(from, to);
}

/** Dollar-quote `body` with a tag it does not contain. */
function dollar(body: string): string {
  let tag = '$compat$';
  while (body.includes(tag)) tag = `$${tag.slice(1, -1)}_$`;
  return `${tag}${body}${tag}`;
}

function triggerSql(view: string, fn: (kind: string) => string, base: TableName, cols: ViewColumn[], newT: TableInfo, fails: string[]): string {
  const out: string[] = [];
  const writable = cols.filter((c) => c.target && !c.target.generated);
  const returning = `RETURNING ${cols.map((c) => c.show).join(', ')} INTO NEW`;
  const insert = (into: ViewColumn[]) =>
    `INSERT INTO ${qtable(base)} AS t (${into.map((c) => qi(c.target!.name)).join(', ')})\n    SELECT ${into.map((c) => c.forward).join(', ')} FROM (SELECT NEW.*) AS o\n    ${returning};`;
  // an omitted identity column arrives as NULL: leave it out so the table numbers the row
  // (no sequence privilege needed); one given explicitly goes in as on the table itself
  const identity = writable.filter((c) => c.target!.identity);
  const insertBody = identity.length
    ? `IF ${identity.map((c) => `NEW.${qi(c.old.name)} IS NULL`).join(' AND ')} THEN\n    ${insert(writable.filter((c) => !c.target!.identity))}\n  ELSE\n    ${insert(writable)}\n  END IF;`
    : insert(writable);
  out.push(routine(fn('insert'), insertBody), `CREATE TRIGGER compat_insert INSTEAD OF INSERT ON ${view} FOR EACH ROW EXECUTE FUNCTION ${fn('insert')}();`);

  const keys = newT.keyColumns.map((k) => writable.find((c) => c.target!.name === k));
  if (!keys.length || keys.some((k) => !k)) {
    // without an UPDATE trigger PostgreSQL still updates the plain columns automatically
    fails.push(`UPDATE of ${cols.filter((c) => !c.plain).map((c) => c.old.name).join(', ')}: ${tableKey(newT)} has no primary key or replica identity index the view's columns carry, so no trigger can find the row (0A000)`);
  } else {
    // only changed columns go through the forward expression: a round trip could alter the others
    const updatable = writable.filter((c) => c.target!.identity !== 'a'); // refused by the table anyway
    const set = updatable.map((c) => c.plain ? c.forward : `CASE WHEN o.${qi(c.old.name)} IS DISTINCT FROM OLD.${qi(c.old.name)} THEN ${c.forward} ELSE t.${qi(c.target!.name)} END`);
    const where = keys.map((k) => `t.${qi(k!.target!.name)} = ${k!.plain ? `OLD.${qi(k!.old.name)}` : `(SELECT ${k!.forward} FROM (SELECT OLD.*) AS o)`}`).join(' AND ');
    out.push(routine(fn('update'), `UPDATE ${qtable(base)} AS t SET (${updatable.map((c) => qi(c.target!.name)).join(', ')}) = (SELECT ${set.join(', ')} FROM (SELECT NEW.*) AS o)\n    WHERE ${where}\n    ${returning};`),
      `CREATE TRIGGER compat_update INSTEAD OF UPDATE ON ${view} FOR EACH ROW EXECUTE FUNCTION ${fn('update')}();`);
  }
  return out.join('\n');
}

function routine(name: string, statement: string): string {
  // use_column: a column called like a PL/pgSQL variable (found, new) means the column
  return `CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql SECURITY INVOKER AS ${dollar(`\n#variable_conflict use_column\nBEGIN\n  ${statement}\n  RETURN NEW;\nEND\n`)};`;
}

/** The compatibility schema as SQL text; pure. `facts` from readCompatFacts (empty: no defaults, no grants). */
export function compatPlan(input: CompatInput, facts: CompatFacts = { newDefaults: new Map(), privileges: new Map(), securityInvoker: true }): CompatPlan {
  return planParts(input, facts).plan;
}

function planParts(input: CompatInput, facts: CompatFacts): { head: string; plan: CompatPlan } {
  const s = qi(input.schema);
  const tableSchemas = new Set([...input.oldCatalog.values(), ...input.newCatalog.values()].map((t) => t.schema));
  if (tableSchemas.has(input.schema)) throw new Error(`compat schema ${input.schema}: a schema holding tables cannot be the compatibility schema`);
  const views: CompatView[] = [];
  const seen = new Map<string, string>();
  for (const m of input.mapping.tables) {
    const oldKey = normaliseTableKey(m.table);
    const oldName = parseTableName(oldKey);
    const newName = m.renamedTo ? parseTableName(m.renamedTo, oldName.schema) : oldName;
    const oldT = input.oldCatalog.get(oldKey);
    const newT = input.newCatalog.get(tableKey(newName));
    if (!oldT) throw new Error(`compat view for ${oldKey}: not in the old side's catalog`);
    if (!newT) throw new Error(`compat view for ${oldKey}: the new side has no table ${tableKey(newName)}`);
    // one schema in the search path holds one name: same-named tables of two schemas collide
    if (seen.has(oldName.name)) throw new Error(`compat view for ${oldKey}: ${seen.get(oldName.name)} has the same name; one compatibility schema cannot serve both`);
    seen.set(oldName.name, oldKey);

    const view = `${s}.${qi(oldName.name)}`;
    const cols = viewColumns(m, oldT, newT, input.oldDefaults?.get(oldKey) ?? {});
    // the table as it is serves the old version: no view (added columns are new, not in the way)
    if (!m.renamedTo && cols.every((c) => c.plain && c.target!.name === c.old.name)) continue;
    const automatic = cols.every((c) => c.plain);
    const fails: string[] = [`statements naming ${oldKey} with its schema reach the new table, not this view`,
      'COPY … TO: PostgreSQL does not copy out of a view (COPY (SELECT …) TO works)'];
    const fed = new Set(cols.map((c) => c.target?.name));
    for (const c of newT.columns) {
      if (!fed.has(c.name) && c.notNull && !c.hasDefault && !c.generated && !c.identity) fails.push(`INSERT: ${c.name} is NOT NULL without a default and the old columns do not feed it (23502)`);
    }
    for (const c of cols) {
      if (!c.target) fails.push(`${c.old.name}: dropped; reads show ${c.show}, values written to it are discarded`);
      else if (!c.plain) {
        const using = m.typeChanges.find((t) => t.column === c.target!.name)?.using;
        if (using) fails.push(`${c.old.name}: USING ${using} is not undone; reads show the new value cast to ${c.old.type}, or fail where it does not convert`);
        else if (!isWidening(c.target.type, c.old.type)) fails.push(`${c.old.name}: SELECT fails for values the new version wrote that do not fit ${c.old.type}`);
      }
    }

    const sql: string[] = [
      `CREATE VIEW ${view}${facts.securityInvoker ? ' WITH (security_invoker = true)' : ''} AS SELECT ${cols.map((c) => `${c.show} AS ${qi(c.old.name)}`).join(', ')} FROM ${qtable(newName)};`,
    ];
    if (automatic) fails.push('COPY … FROM: PostgreSQL copies into a view only through an INSTEAD OF INSERT trigger, which this view has not: triggers would make upserts on it fail');
    if (!automatic) {
      // the view is not rewritten to the table, so PostgreSQL finds no index on it
      fails.push('INSERT … ON CONFLICT (…) / ON CONFLICT … DO UPDATE: refused on a view with INSTEAD OF triggers (42P10)');
      fails.push('INSERT … ON CONFLICT DO NOTHING: accepted, but a conflicting row fails (23505) instead of being skipped');
      // omitted columns arrive in NEW as NULL unless the view has the table's defaults
      const defaults = facts.newDefaults.get(tableKey(newName)) ?? {};
      for (const c of cols) {
        const d = c.target && !c.target.identity && defaults[c.target.name];
        if (d) sql.push(`ALTER VIEW ${view} ALTER COLUMN ${qi(c.old.name)} SET DEFAULT ${d};`);
      }
      const fn = (kind: string) => `${s}.${qi(`${oldName.name.slice(0, 48)}_compat_${kind}`)}`;
      sql.push(triggerSql(view, fn, newName, cols, newT, fails));
    }
    const grants = facts.privileges.get(tableKey(newName)) ?? {};
    for (const role of input.roles) if (grants[role]?.length) sql.push(`GRANT ${grants[role].join(', ')} ON ${view} TO ${qi(role)};`);
    views.push({ table: oldKey, view, writes: automatic ? 'automatic' : 'triggers', fails, sql: sql.join('\n') });
  }
  const head = [`CREATE SCHEMA ${s};`, ...input.roles.map((r) => `GRANT USAGE ON SCHEMA ${s} TO ${qi(r)};`)].join('\n');
  const fails = input.mapping.droppedTables.map((t) => `${normaliseTableKey(t)}: dropped by the migration; every statement on it fails (42P01)`);
  return { head, plan: { schema: input.schema, sql: [head, ...views.map((v) => v.sql)].join('\n\n') + '\n', views, fails } };
}

/** Every column default of the user tables, deparsed with every name schema-qualified. */
export async function readColumnDefaults(client: Client): Promise<ColumnDefaults> {
  const path = (await client.query('SHOW search_path')).rows[0].search_path as string;
  await client.query('SET search_path TO pg_catalog');
  try {
    const { rows } = await client.query(`
      SELECT n.nspname AS schema, c.relname AS name, a.attname AS column, pg_get_expr(d.adbin, d.adrelid) AS expr
        FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
        JOIN pg_class c ON c.oid = d.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE a.attgenerated = '' AND NOT a.attisdropped AND n.nspname NOT IN ('pg_catalog', 'information_schema')`);
    const out: ColumnDefaults = new Map();
    for (const r of rows) {
      const key = tableKey({ schema: r.schema, name: r.name });
      out.set(key, { ...out.get(key), [r.column]: r.expr });
    }
    return out;
  } finally {
    await client.query(`SELECT set_config('search_path', $1, false)`, [path]);
  }
}

/** The new side's defaults, the roles' privileges on the new tables and the server version. */
export async function readCompatFacts(client: Client, input: CompatInput): Promise<CompatFacts> {
  const tables = input.mapping.tables.map((m) => {
    const old = parseTableName(normaliseTableKey(m.table));
    return input.newCatalog.get(tableKey(m.renamedTo ? parseTableName(m.renamedTo, old.schema) : old));
  }).filter((t): t is TableInfo => !!t);
  const { rows } = await client.query(`
    SELECT t.key, r.role, array_agg(p.priv ORDER BY p.ord) AS privs
      FROM unnest($1::text[], $2::oid[]) AS t(key, oid) CROSS JOIN unnest($3::text[]) AS r(role)
     CROSS JOIN unnest($4::text[]) WITH ORDINALITY AS p(priv, ord)
     WHERE has_table_privilege(r.role, t.oid, p.priv) GROUP BY 1, 2`,
  [tables.map(tableKey), tables.map((t) => t.oid), input.roles, PRIVILEGES]);
  const privileges = new Map<string, Record<string, string[]>>();
  for (const r of rows) privileges.set(r.key, { ...privileges.get(r.key), [r.role]: r.privs });
  const version = Number((await client.query('SHOW server_version_num')).rows[0].server_version_num);
  return { newDefaults: await readColumnDefaults(client), privileges, securityInvoker: version >= 150000 };
}

/** Create the schema in one transaction: a failure leaves nothing behind and names the table. */
export async function createCompatSchema(client: Client, input: CompatInput): Promise<CompatPlan> {
  await client.query('BEGIN');
  try {
    const { head, plan } = planParts(input, await readCompatFacts(client, input));
    // nothing the old version uses changed shape: no schema
    if (!plan.views.length) { await client.query('ROLLBACK'); return plan; }
    await client.query(head);
    for (const v of plan.views) {
      try {
        await client.query(v.sql);
      } catch (e) {
        throw Object.assign(new Error(`compat view for ${v.table}: ${(e as Error).message}`), { code: (e as { code?: string }).code, cause: e });
      }
    }
    await client.query('COMMIT');
    return plan;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

export async function dropCompatSchema(client: Client, schema: string): Promise<void> {
  // a compatibility schema holds views and functions only: never cascade over tables
  const { rows } = await client.query(`SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'm', 'f')`, [schema]);
  if (rows[0].n) throw new Error(`compat schema ${schema}: holds tables, so it is not a compatibility schema; not dropped`);
  await client.query(`DROP SCHEMA IF EXISTS ${qi(schema)} CASCADE`);
}

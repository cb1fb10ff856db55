/**
 * Fencing the side traffic has left (docs/fleet.md): the application's
 * roles can no longer write there, and sessions that bypass pgflip are ended,
 * so no write lands on the old side once the new one serves. Reversible
 * exactly: unfence() restores what fence() changed, as recorded in the table
 * `pgflip.fence` of the fenced database.
 *
 * Three layers, because each alone has a gap:
 *  1. `ALTER ROLE r IN DATABASE d SET default_transaction_read_only = on`:
 *     new sessions of r get SQLSTATE 25006 on any write — a clear message —
 *     but a session can `SET default_transaction_read_only = off`;
 *  2. REVOKE INSERT, UPDATE, DELETE, TRUNCATE on every table (and column) of d
 *     where r holds them directly (owners included): such a session then gets
 *     42501. What was revoked, with grantor and grant option, is recorded;
 *  3. pg_terminate_backend for the sessions of r in d that are not pgflip's
 *     own (application_name prefix, or pids passed in): they started before
 *     the fence and would otherwise keep their read-write default.
 *
 * Not covered, and reported instead of hidden: write privileges r inherits
 * from a group role (revoking them from the group would fence its other
 * members too) — listed in `stillWritable`. Superuser roles bypass every
 * privilege check and are refused. The sync engine's reverse applier keeps
 * writing to the fenced side because it connects as a role not in `roles`.
 */
import { Client, escapeIdentifier as ident, escapeLiteral as literal, type QueryResult } from 'pg';
import { logger, redactUrl } from '../observability/logger';
import { sleep } from '../util/sleep';

export interface FenceOptions {
  /** the application's roles (those clients log in as through pgflip) */
  roles: string[];
  /** the database to fence (the application's) */
  database: string;
  /** sessions whose application_name starts with one of these are pgflip's own and stay (default ['pgflip']) */
  exceptApplicationNames?: string[];
  /** backend pids that stay (e.g. the proxy's own backend connections) */
  exceptPids?: number[];
}

export interface RevokedPrivilege {
  /** schema-qualified, quoted table name as PostgreSQL prints it */
  table: string;
  column?: string;
  role: string;
  privilege: string;
  grantor: string;
  grantable: boolean;
}

export interface TerminatedSession {
  pid: number;
  role: string;
  applicationName: string;
  clientAddr: string | null;
}

export interface FenceReport {
  /** a fence was already in place; only sessions were ended again */
  alreadyFenced: boolean;
  revoked: RevokedPrivilege[];
  terminated: TerminatedSession[];
  /** "table: PRIVILEGE for role" still held through group membership */
  stillWritable: string[];
}

export interface UnfenceReport {
  wasFenced: boolean;
  restored: RevokedPrivilege[];
  /** recorded privileges on tables dropped meanwhile */
  skipped: string[];
}

const WRITE_PRIVILEGES = ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'];
const COLUMN_WRITE_PRIVILEGES = ['INSERT', 'UPDATE'];

const SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS pgflip;
CREATE TABLE IF NOT EXISTS pgflip.fence (
  id          bigserial PRIMARY KEY,
  kind        text NOT NULL CHECK (kind IN ('setting', 'privilege')),
  role        name NOT NULL,
  -- setting: the role's previous default_transaction_read_only in this database (NULL: none)
  setting     text,
  -- privilege: table by oid (survives renames), column, privilege, grantor, grant option
  relid       oid,
  attname     name,
  privilege   text,
  grantor     name,
  grantable   boolean,
  fenced_at   timestamptz NOT NULL DEFAULT now()
);`;

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

async function connect(sideUrl: string, database: string): Promise<Client> {
  const c = new Client({ connectionString: withDatabase(sideUrl, database), application_name: 'pgflip-fence' });
  try {
    await c.connect();
  } catch (err) {
    throw new Error(`fencing: cannot connect to ${redactUrl(withDatabase(sideUrl, database))}: ${(err as Error).message}`);
  }
  return c;
}

async function tx<T>(c: Client, fn: () => Promise<T>): Promise<T> {
  await c.query('BEGIN');
  try {
    const r = await fn();
    await c.query('COMMIT');
    return r;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** runs one statement as `role` (inside the caller's transaction); PostgreSQL only accepts GRANTED BY the current user */
async function asRole(c: Client, role: string, sql: string): Promise<void> {
  await c.query(`SET LOCAL ROLE ${ident(role)}`);
  try {
    await c.query(sql);
  } finally {
    await c.query('RESET ROLE').catch(() => undefined);
  }
}

function validate(opts: FenceOptions): void {
  if (!opts.database) throw new Error('fencing: database is required');
  if (!opts.roles.length) throw new Error('fencing: at least one application role is required');
}

/** Makes `database` on the side at `sideUrl` read-only for `roles` (see the file comment). */
export async function fence(sideUrl: string, opts: FenceOptions): Promise<FenceReport> {
  const f = await Fencer.connect(sideUrl, opts);
  try {
    return await f.fence();
  } finally {
    await f.close();
  }
}

interface Grant { relid: number; tbl: string; attname: string | null; role: string; privilege: string; grantor: string; grantable: boolean }

const GRANTS_SQL = (roles: string) => `
  SELECT c.oid AS relid, c.oid::regclass::text AS tbl, NULL::name AS attname, g.rolname AS role, a.privilege_type AS privilege,
         gr.rolname AS grantor, a.is_grantable AS grantable
    FROM pg_class c
    CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
    JOIN pg_roles g ON g.oid = a.grantee JOIN pg_roles gr ON gr.oid = a.grantor
   WHERE c.relkind IN ('r', 'p', 'v', 'f', 'm') AND g.rolname = ANY(${roles}) AND a.privilege_type = ANY(${arrayLiteral(WRITE_PRIVILEGES)})
     AND c.relnamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', 'information_schema', 'pgflip'))
  UNION ALL
  SELECT c.oid, c.oid::regclass::text, att.attname, g.rolname, a.privilege_type, gr.rolname, a.is_grantable
    FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid
    CROSS JOIN LATERAL aclexplode(att.attacl) a
    JOIN pg_roles g ON g.oid = a.grantee JOIN pg_roles gr ON gr.oid = a.grantor
   WHERE att.attacl IS NOT NULL AND NOT att.attisdropped AND g.rolname = ANY(${roles}) AND a.privilege_type = ANY(${arrayLiteral(COLUMN_WRITE_PRIVILEGES)})
   ORDER BY 2, 3 NULLS FIRST, 4, 5`;

/** a text[] literal for SQL sent without parameters (several statements in one round trip) */
function arrayLiteral(xs: string[]): string {
  return `ARRAY[${xs.map(literal).join(', ')}]::text[]`;
}

/**
 * A fence made ready ahead of time: connect() opens the connection and creates the fence's
 * bookkeeping table; fence() then takes three round trips (read the roles, grants and
 * earlier state; revoke and record everything and commit; end the bypassing sessions), so it
 * costs little inside a flip's pause, whatever the number of tables.
 */
export class Fencer {
  private constructor(private readonly c: Client, private readonly opts: FenceOptions) {}

  static async connect(sideUrl: string, opts: FenceOptions): Promise<Fencer> {
    validate(opts);
    const c = await connect(sideUrl, opts.database);
    try {
      await c.query(SCHEMA_SQL);
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    return new Fencer(c, opts);
  }

  async close(): Promise<void> {
    await this.c.end().catch(() => undefined);
  }

  /** unfence() on this connection */
  unfence(): Promise<UnfenceReport> {
    return unfenceOn(this.c, this.opts);
  }

  /** isFenced() on this connection */
  async isFenced(): Promise<boolean> {
    return ((await this.c.query('SELECT 1 FROM pgflip.fence LIMIT 1')).rowCount ?? 0) > 0;
  }

  async fence(): Promise<FenceReport> {
    const { c, opts } = this;
    const log = logger().child({ component: 'fencing', database: opts.database });
    const roles = arrayLiteral(opts.roles);
    const read = await multi(c, `BEGIN;
      SELECT pg_advisory_xact_lock(hashtext('pgflip.fence'));
      SELECT rolname, rolsuper FROM pg_roles WHERE rolname = ANY(${roles});
      SELECT EXISTS (SELECT 1 FROM pgflip.fence) AS fenced;
      SELECT r.rolname AS role, (SELECT split_part(s, '=', 2) FROM unnest(d.setconfig) s WHERE s LIKE 'default\\_transaction\\_read\\_only=%') AS value
        FROM pg_db_role_setting d JOIN pg_roles r ON r.oid = d.setrole JOIN pg_database db ON db.oid = d.setdatabase
       WHERE r.rolname = ANY(${roles}) AND db.datname = current_database();
      ${GRANTS_SQL(roles)}`);
    let revoked: RevokedPrivilege[] = [];
    let alreadyFenced = false;
    try {
      const found = read[2].rows as { rolname: string; rolsuper: boolean }[];
      const missing = opts.roles.filter((r) => !found.some((x) => x.rolname === r));
      if (missing.length) throw new Error(`fencing: role(s) not found on this side: ${missing.join(', ')}`);
      const supers = found.filter((r) => r.rolsuper).map((r) => r.rolname);
      if (supers.length) throw new Error(`fencing: role(s) ${supers.join(', ')} are superusers and bypass every privilege check; the application must not connect as a superuser`);
      // one fencer at a time per database (the advisory lock); a second fence() must not record the fenced state as "before"
      alreadyFenced = (read[3].rows[0] as { fenced: boolean }).fenced;
      if (!alreadyFenced) {
        const settings = new Map((read[4].rows as { role: string; value: string | null }[]).map((r) => [r.role, r.value]));
        const grants = read[5].rows as Grant[];
        const sql = fenceStatements(opts, settings, grants);
        try {
          await c.query(sql);
        } catch (err) {
          // which statement failed is not told by a batch: redo one by one for the precise error
          await c.query('ROLLBACK').catch(() => undefined);
          await c.query(`BEGIN; SELECT pg_advisory_xact_lock(hashtext('pgflip.fence'))`);
          await revokeOneByOne(c, grants);
          throw err;
        }
        revoked = grants.map((g) => ({ table: g.tbl, ...(g.attname ? { column: g.attname } : {}), role: g.role, privilege: g.privilege, grantor: g.grantor, grantable: g.grantable }));
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    // after the commit: a client reconnecting at once already gets the read-only default
    const terminated = await terminateBypassing(c, opts);
    const stillWritable = await inheritedWrites(c, opts.roles);
    log.info({ roles: opts.roles, revoked: revoked.length, terminated: terminated.length, alreadyFenced, stillWritable }, 'side fenced');
    return { alreadyFenced, revoked, terminated, stillWritable };
  }
}

/** the results of several statements sent as one simple query */
async function multi(c: Client, sql: string): Promise<QueryResult[]> {
  const r = (await c.query(sql)) as unknown as QueryResult | QueryResult[];
  return Array.isArray(r) ? r : [r];
}

/** Everything fence() changes, recorded first, as one batch (inside the caller's transaction). */
function fenceStatements(opts: FenceOptions, settings: Map<string, string | null>, grants: Grant[]): string {
  const out: string[] = [];
  const lit = (v: string | number | boolean | null) => (v === null ? 'NULL' : typeof v === 'string' ? literal(v) : String(v));
  for (const role of opts.roles) {
    out.push(`INSERT INTO pgflip.fence (kind, role, setting) VALUES ('setting', ${lit(role)}, ${lit(settings.get(role) ?? null)})`);
    out.push(`ALTER ROLE ${ident(role)} IN DATABASE ${ident(opts.database)} SET default_transaction_read_only = on`);
  }
  for (const g of grants) {
    out.push(`INSERT INTO pgflip.fence (kind, role, relid, attname, privilege, grantor, grantable) VALUES ('privilege', ${lit(g.role)}, ${g.relid}, ${lit(g.attname)}, ${lit(g.privilege)}, ${lit(g.grantor)}, ${g.grantable})`);
    // as the grantor: a superuser's plain REVOKE only removes grants made by the table owner.
    // No CASCADE: grants the role passed on would vanish and unfence could not restore them.
    out.push(`SET LOCAL ROLE ${ident(g.grantor)}`, revokeSql(g), 'RESET ROLE');
  }
  return out.join(';\n');
}

function revokeSql(g: Grant): string {
  return `REVOKE ${g.privilege}${g.attname ? ` (${ident(g.attname)})` : ''} ON ${g.tbl} FROM ${ident(g.role)}`;
}

/** The slow path after a failed batch, to name the grant that cannot be revoked. */
async function revokeOneByOne(c: Client, grants: Grant[]): Promise<void> {
  for (const g of grants) {
    try {
      await asRole(c, g.grantor, revokeSql(g));
    } catch (err) {
      const col = g.attname ? ` (${ident(g.attname)})` : '';
      throw new Error(`fencing: cannot revoke ${g.privilege}${col} on ${g.tbl} from ${g.role}: ${(err as Error).message} (SQLSTATE ${(err as { code?: string }).code ?? '?'})`);
    }
  }
}

/** how long fence() waits for the sessions it terminated to end */
const TERMINATE_WAIT_MS = 5000;

async function terminateBypassing(c: Client, opts: FenceOptions): Promise<TerminatedSession[]> {
  const prefixes = (opts.exceptApplicationNames ?? ['pgflip']).map((p) => `${p.replace(/[\\%_]/g, '\\$&')}%`);
  // in the select list, so it runs only for the rows the WHERE clause kept
  const r = await c.query<{ pid: number; role: string; application_name: string; client_addr: string | null; idle: boolean }>(
    `SELECT pid, usename AS role, application_name, client_addr::text AS client_addr, state = 'idle' AS idle, pg_terminate_backend(pid) AS signalled
       FROM pg_stat_activity
      WHERE datname = current_database() AND usename = ANY($1) AND pid <> pg_backend_pid()
        AND NOT (pid = ANY($2::int[])) AND NOT (application_name LIKE ANY($3::text[]))`,
    [opts.roles, opts.exceptPids ?? [], prefixes]);
  // fence() returns only once the sessions that could still commit are gone: those running a
  // statement or inside a transaction, which may have passed their privilege checks before the
  // revoke. A session idle outside a transaction (read after the fence committed) starts its next
  // transaction under the revoked privileges, so it is only signalled: waiting for every one of
  // them to exit (a proxy's backends held at a transaction boundary, say) would lengthen a flip's
  // pause for nothing. pg_terminate_backend(pid, timeout) would wait one by one, and sleeps 100 ms
  // before its second look at each; all are signalled at once above and awaited together here.
  const deadline = Date.now() + TERMINATE_WAIT_MS;
  let alive = r.rows.filter((x) => !x.idle).map((x) => x.pid);
  for (let wait = 1; alive.length; wait = Math.min(wait * 2, 50)) {
    alive = (await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])', [alive])).rows.map((x) => x.pid);
    if (!alive.length) break;
    if (Date.now() > deadline) throw new Error(`fencing: sessions ${alive.join(', ')} did not end within ${TERMINATE_WAIT_MS / 1000} s of pg_terminate_backend`);
    await sleep(wait);
  }
  return r.rows.map((x) => ({ pid: x.pid, role: x.role, applicationName: x.application_name, clientAddr: x.client_addr }));
}

async function inheritedWrites(c: Client, roles: string[]): Promise<string[]> {
  const r = await c.query<{ item: string }>(
    `SELECT format('%s: %s for %s', c.oid::regclass, p.priv, r.rolname) AS item
       FROM pg_class c CROSS JOIN unnest($2::text[]) p(priv) JOIN pg_roles r ON r.rolname = ANY($1)
      WHERE c.relkind IN ('r', 'p', 'v', 'f', 'm')
        AND c.relnamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', 'information_schema', 'pgflip') OR nspname LIKE 'pg\\_toast%')
        AND has_table_privilege(r.oid, c.oid, p.priv)
      ORDER BY 1`, [roles, WRITE_PRIVILEGES]);
  return r.rows.map((x) => x.item);
}

/** Reverses fence() exactly: restores each recorded grant and each role's previous setting. */
export async function unfence(sideUrl: string, opts: Pick<FenceOptions, 'database'> & { roles?: string[] }): Promise<UnfenceReport> {
  if (!opts.database) throw new Error('fencing: database is required');
  const c = await connect(sideUrl, opts.database);
  try {
    return await unfenceOn(c, opts);
  } finally {
    await c.end().catch(() => undefined);
  }
}

interface FenceRow { id: string; kind: string; role: string; setting: string | null; tbl: string | null; relid: number | null; attname: string | null; privilege: string | null; grantor: string | null; grantable: boolean | null }

/** unfence() on an open connection: two round trips (read the record; restore, delete it, commit). */
async function unfenceOn(c: Client, opts: Pick<FenceOptions, 'database'> & { roles?: string[] }): Promise<UnfenceReport> {
  return tx(c, async () => {
    const has = await c.query("SELECT to_regclass('pgflip.fence') IS NOT NULL AS present");
    if (!has.rows[0].present) return { wasFenced: false, restored: [], skipped: [] };
    const read = await multi(c, `SELECT pg_advisory_xact_lock(hashtext('pgflip.fence'));
      SELECT f.id, f.kind, f.role, f.setting, c.oid::regclass::text AS tbl, f.relid, f.attname, f.privilege, f.grantor, f.grantable
        FROM pgflip.fence f LEFT JOIN pg_class c ON c.oid = f.relid
       WHERE ${opts.roles ? `f.role = ANY(${arrayLiteral(opts.roles)})` : 'true'}
       ORDER BY f.id`);
    const rows = read[1].rows as FenceRow[];
    const restored: RevokedPrivilege[] = [];
    const skipped: string[] = [];
    const stmts: string[] = [];
    const grants: { grantor: string; sql: string; what: string }[] = [];
    for (const r of rows) {
      if (r.kind === 'setting') {
        stmts.push(r.setting === null
          ? `ALTER ROLE ${ident(r.role)} IN DATABASE ${ident(opts.database)} RESET default_transaction_read_only`
          : `ALTER ROLE ${ident(r.role)} IN DATABASE ${ident(opts.database)} SET default_transaction_read_only = ${literal(r.setting)}`);
        continue;
      }
      if (r.tbl === null) { skipped.push(`${r.privilege} on relation ${r.relid} for ${r.role}: table no longer exists`); continue; }
      const col = r.attname ? ` (${ident(r.attname)})` : '';
      const sql = `GRANT ${r.privilege}${col} ON ${r.tbl} TO ${ident(r.role)}${r.grantable ? ' WITH GRANT OPTION' : ''}`;
      grants.push({ grantor: r.grantor!, sql, what: `${r.privilege}${col} on ${r.tbl} to ${r.role}` });
      stmts.push(`SET LOCAL ROLE ${ident(r.grantor!)}`, sql, 'RESET ROLE');
      restored.push({ table: r.tbl, ...(r.attname ? { column: r.attname } : {}), role: r.role, privilege: r.privilege!, grantor: r.grantor!, grantable: !!r.grantable });
    }
    if (rows.length) stmts.push(`DELETE FROM pgflip.fence WHERE id = ANY(ARRAY[${rows.map((r) => Number(r.id)).join(', ')}]::bigint[])`);
    if (stmts.length) {
      try {
        await c.query(stmts.join(';\n'));
      } catch (err) {
        // a batch does not tell which statement failed: redo the grants one by one to name it
        await c.query('ROLLBACK; BEGIN').catch(() => undefined);
        for (const g of grants) {
          try {
            await asRole(c, g.grantor, g.sql);
          } catch (e) {
            throw new Error(`fencing: cannot restore ${g.what}: ${(e as Error).message} (SQLSTATE ${(e as { code?: string }).code ?? '?'})`);
          }
        }
        throw err;
      }
    }
    logger().child({ component: 'fencing', database: opts.database }).info({ restored: restored.length, skipped }, 'side unfenced');
    return { wasFenced: rows.length > 0, restored, skipped };
  });
}

/** True while a fence recorded by fence() is in place on this database. */
export async function isFenced(sideUrl: string, database: string): Promise<boolean> {
  const c = await connect(sideUrl, database);
  try {
    const r = await c.query("SELECT to_regclass('pgflip.fence') IS NOT NULL AS present");
    if (!r.rows[0].present) return false;
    return ((await c.query('SELECT 1 FROM pgflip.fence LIMIT 1')).rowCount ?? 0) > 0;
  } finally {
    await c.end().catch(() => undefined);
  }
}

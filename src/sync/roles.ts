/**
 * Copies the source cluster's roles to the target before the schema copy.
 *
 * Roles are cluster-wide, so `pg_dump` of one database does not create them,
 * yet restoring objects owned by or granted to a role the target lacks fails
 * with `role … does not exist`. Roles missing on the target are created with
 * their attributes, then their memberships, then their role-wide settings, in
 * one transaction on the target (CREATE ROLE is transactional even though
 * roles are cluster-wide), so a failure leaves no role half-made.
 *
 * Password verifiers are secrets: they are never logged and never put into an
 * error message or the report.
 */
import type { Client } from 'pg';
import { qi, ql } from './sql';

export interface RoleCopyReport {
  /** roles created on the target, in creation order */
  created: string[];
  /** roles the source has that the target already had (left as they are) */
  existing: string[];
  /** created LOGIN roles whose password verifier could not be read from the source (not superuser): they cannot log in until a password is set */
  withoutPassword: string[];
  /** what the target connection may not grant (SUPERUSER, REPLICATION, BYPASSRLS, …), left out instead of failing */
  skippedAttributes: { role: string; attribute: string; reason: string }[];
  /** "member → role" grants made */
  memberships: string[];
}

// Literals (ql) assume standard_conforming_strings=on, which the transaction sets.

interface SourceRole {
  name: string;
  superuser: boolean;
  inherit: boolean;
  createrole: boolean;
  createdb: boolean;
  login: boolean;
  replication: boolean;
  bypassrls: boolean;
  connlimit: number;
  /** ISO 8601 with offset (JSON output of timestamptz: independent of DateStyle), or 'infinity' */
  validUntil: string | null;
  /** the verifier; null when the role has none or pg_authid is not readable */
  password: string | null;
}

interface SourceMembership {
  role: string;
  member: string;
  admin: boolean;
  /** PostgreSQL 16+ only, else null */
  inherit: boolean | null;
  set: boolean | null;
}

interface SourceSetting {
  role: string;
  /** `name=value` entries as in pg_db_role_setting.setconfig */
  config: string[];
}

interface Source {
  roles: SourceRole[];
  memberships: SourceMembership[];
  settings: SourceSetting[];
}

interface TargetUser {
  version: number;
  superuser: boolean;
  createdb: boolean;
  replication: boolean;
  bypassrls: boolean;
}

type GrantedAttribute = 'SUPERUSER' | 'CREATEDB' | 'REPLICATION' | 'BYPASSRLS';

const PG16 = 160000;

// The predefined roles (pg_monitor, pg_read_all_data, …) come with every cluster.
const NOT_PREDEFINED = `NOT LIKE 'pg\\_%'`;

/** Reads everything in one statement, so roles, memberships and settings come from one snapshot. */
async function readSource(source: Client): Promise<{ data: Source; canReadPasswords: boolean; version: number }> {
  const { rows: [info] } = await source.query<{ version: number; can_read: boolean }>(
    `SELECT current_setting('server_version_num')::int AS version,
            has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS can_read`);
  // pg_authid (where the verifiers are) is readable by superusers only; asking
  // first keeps a failed query from aborting a transaction the caller may have open.
  const passwordJoin = info.can_read ? 'LEFT JOIN pg_catalog.pg_authid a ON a.oid = r.oid' : '';
  const password = info.can_read ? 'a.rolpassword' : 'NULL::text';
  // On 16+ one pair can have several grants (one per grantor): they merge into
  // one grant as strong as the strongest; the grantor itself is not copied.
  const options = info.version >= PG16
    ? 'bool_or(am.inherit_option) AS inherit, bool_or(am.set_option) AS set'
    : 'NULL::boolean AS inherit, NULL::boolean AS set';
  const { rows: [data] } = await source.query<Source>(`
    SELECT
      (SELECT coalesce(json_agg(x ORDER BY x.name), '[]') FROM (
        SELECT r.rolname AS name, r.rolsuper AS superuser, r.rolinherit AS inherit, r.rolcreaterole AS createrole,
               r.rolcreatedb AS createdb, r.rolcanlogin AS login, r.rolreplication AS replication,
               r.rolbypassrls AS bypassrls, r.rolconnlimit AS connlimit, r.rolvaliduntil AS "validUntil",
               ${password} AS password
        FROM pg_catalog.pg_roles r ${passwordJoin}
        WHERE r.rolname ${NOT_PREDEFINED}) x) AS roles,
      (SELECT coalesce(json_agg(x ORDER BY x.member, x.role), '[]') FROM (
        SELECT g.rolname AS role, m.rolname AS member, bool_or(am.admin_option) AS admin, ${options}
        FROM pg_catalog.pg_auth_members am
        JOIN pg_catalog.pg_roles g ON g.oid = am.roleid
        JOIN pg_catalog.pg_roles m ON m.oid = am.member
        WHERE m.rolname ${NOT_PREDEFINED}
        GROUP BY g.rolname, m.rolname) x) AS memberships,
      -- Only settings for all databases (setdatabase = 0): a setting IN DATABASE
      -- names a database that the target may not have, or have under another oid.
      (SELECT coalesce(json_agg(x ORDER BY x.role), '[]') FROM (
        SELECT r.rolname AS role, s.setconfig AS config
        FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
        WHERE s.setdatabase = 0 AND r.rolname ${NOT_PREDEFINED}) x) AS settings`);
  return { data, canReadPasswords: info.can_read, version: info.version };
}

/** Why the target connection may not give a new role this attribute, or undefined when it may. */
function cannotGrant(attr: GrantedAttribute, t: TargetUser): string | undefined {
  if (t.superuser) return undefined;
  if (attr === 'SUPERUSER') return 'only a superuser can create a superuser, and the target connection is not one';
  if (attr === 'CREATEDB') {
    // Before 16 CREATEROLE alone may grant CREATEDB; from 16 the grantor must have it.
    return t.version >= PG16 && !t.createdb ? 'on PostgreSQL 16+ only a role that has CREATEDB may grant it, and the target connection has not' : undefined;
  }
  if (t.version < PG16) return `before PostgreSQL 16 only a superuser can grant ${attr}, and the target connection is not one`;
  const has = attr === 'REPLICATION' ? t.replication : t.bypassrls;
  return has ? undefined : `on PostgreSQL 16+ only a role that has ${attr} may grant it, and the target connection has not`;
}

// Parameters whose value is a list of (quoted) names: pg_dump's variable_is_guc_list_quote.
const LIST_QUOTE_PARAMETERS = new Set([
  'local_preload_libraries', 'search_path', 'session_preload_libraries',
  'shared_preload_libraries', 'temp_tablespaces', 'unix_socket_directories',
]);

/** Elements of a stored list value such as `"$user", public` (PostgreSQL's SplitGUCList). */
function splitList(value: string): string[] {
  const out: string[] = [];
  let i = 0;
  const skipSpace = () => { while (i < value.length && /\s/.test(value[i])) i++; };
  skipSpace();
  if (i === value.length) return out;
  for (;;) {
    let item = '';
    if (value[i] === '"') {
      for (i++; i < value.length; i++) {
        if (value[i] === '"') {
          if (value[i + 1] !== '"') break;
          i++;
        }
        item += value[i];
      }
      i++;
    } else {
      while (i < value.length && value[i] !== ',' && !/\s/.test(value[i])) item += value[i++];
    }
    out.push(item);
    skipSpace();
    if (value[i] !== ',') return out;
    i++;
    skipSpace();
  }
}

/**
 * `SET name TO …` as pg_dump writes it: a list parameter one literal per
 * element (one literal `'a, b'` would be a single schema named "a, b").
 */
function setClause(entry: string): { name: string; sql: string } {
  const eq = entry.indexOf('=');
  const name = entry.slice(0, eq);
  const value = entry.slice(eq + 1);
  const rhs = LIST_QUOTE_PARAMETERS.has(name.toLowerCase())
    ? splitList(value).map(ql).join(', ') || "''"
    : ql(value);
  return { name, sql: `SET ${qi(name)} TO ${rhs}` };
}

function createRoleSql(r: SourceRole, skip: Set<string>): string {
  const flag = (on: boolean, attr: string) => (on && !skip.has(attr) ? attr : `NO${attr}`);
  if (!Number.isInteger(r.connlimit)) throw new Error(`role ${JSON.stringify(r.name)}: connection limit ${String(r.connlimit)} is not an integer`);
  const parts = [
    flag(r.superuser, 'SUPERUSER'), flag(r.inherit, 'INHERIT'), flag(r.createrole, 'CREATEROLE'),
    flag(r.createdb, 'CREATEDB'), flag(r.login, 'LOGIN'), flag(r.replication, 'REPLICATION'),
    flag(r.bypassrls, 'BYPASSRLS'), `CONNECTION LIMIT ${r.connlimit}`,
  ];
  if (r.validUntil !== null) parts.push(`VALID UNTIL ${ql(r.validUntil)}`);
  return `CREATE ROLE ${qi(r.name)} WITH ${parts.join(' ')}`;
}

function grantSql(m: SourceMembership, sourceVersion: number, targetVersion: number): string {
  const grant = `GRANT ${qi(m.role)} TO ${qi(m.member)}`;
  if (sourceVersion >= PG16 && targetVersion >= PG16) {
    const tf = (b: boolean | null) => (b ? 'TRUE' : 'FALSE');
    return `${grant} WITH ADMIN ${tf(m.admin)}, INHERIT ${tf(m.inherit)}, SET ${tf(m.set)}`;
  }
  // Without per-grant options, a grant inherits as its member's INHERIT attribute says (copied above).
  return m.admin ? `${grant} WITH ADMIN OPTION` : grant;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function copyRoles(source: Client, target: Client): Promise<RoleCopyReport> {
  const { data, canReadPasswords, version: sourceVersion } = await readSource(source);
  const report: RoleCopyReport = { created: [], existing: [], withoutPassword: [], skippedAttributes: [], memberships: [] };

  // `what` names the role (and the step) in the error; the statement text is never
  // part of it, since one of them carries a password verifier.
  const run = async (sql: string, what: string, secret?: string): Promise<void> => {
    try {
      await target.query(sql);
    } catch (err) {
      let message = messageOf(err);
      if (secret) message = message.split(secret).join('<verifier>');
      throw new Error(`copying roles: ${what}: ${message}`, secret ? undefined : { cause: err });
    }
  };

  await target.query('BEGIN');
  try {
    await target.query('SET LOCAL standard_conforming_strings = on');
    const { rows: [me] } = await target.query<TargetUser>(
      `SELECT current_setting('server_version_num')::int AS version, rolsuper AS superuser, rolcreatedb AS createdb,
              rolreplication AS replication, rolbypassrls AS bypassrls
       FROM pg_catalog.pg_roles WHERE rolname = current_user`);
    const onTarget = new Set((await target.query<{ rolname: string }>('SELECT rolname FROM pg_catalog.pg_roles')).rows.map((r) => r.rolname));

    const roleInherits = new Map<string, boolean>();
    for (const r of data.roles) {
      roleInherits.set(r.name, r.inherit);
      if (onTarget.has(r.name)) { report.existing.push(r.name); continue; }
      const skip = new Set<string>();
      for (const attr of ['SUPERUSER', 'CREATEDB', 'REPLICATION', 'BYPASSRLS'] as const) {
        const has = { SUPERUSER: r.superuser, CREATEDB: r.createdb, REPLICATION: r.replication, BYPASSRLS: r.bypassrls }[attr];
        const reason = has ? cannotGrant(attr, me) : undefined;
        if (reason) { skip.add(attr); report.skippedAttributes.push({ role: r.name, attribute: attr, reason }); }
      }
      await run(createRoleSql(r, skip), `role ${qi(r.name)}`);
      // An already hashed value (SCRAM or md5) is stored as is, so the same password logs in.
      if (r.password !== null) await run(`ALTER ROLE ${qi(r.name)} PASSWORD ${ql(r.password)}`, `role ${qi(r.name)}: setting its password`, r.password);
      else if (r.login && !canReadPasswords) report.withoutPassword.push(r.name);
      report.created.push(r.name);
    }

    const created = new Set(report.created);
    for (const m of data.memberships) {
      // Only grants to a created role: granting to a role the target already had
      // would change what that existing role may do.
      if (!created.has(m.member)) continue;
      const attribute = `membership in ${m.role}`;
      if (!onTarget.has(m.role) && !created.has(m.role)) {
        // A predefined role of a newer PostgreSQL than the target's, say pg_maintain.
        report.skippedAttributes.push({ role: m.member, attribute, reason: `role ${qi(m.role)} does not exist on the target` });
        continue;
      }
      if (sourceVersion >= PG16 && me.version < PG16 && (m.set === false || m.inherit !== roleInherits.get(m.member))) {
        report.skippedAttributes.push({
          role: m.member, attribute: `${attribute}: INHERIT ${m.inherit ? 'TRUE' : 'FALSE'}, SET ${m.set ? 'TRUE' : 'FALSE'}`,
          reason: 'before PostgreSQL 16 a grant has no INHERIT or SET option of its own; granted with the defaults',
        });
      }
      await run(grantSql(m, sourceVersion, me.version), `role ${qi(m.member)}: membership in ${qi(m.role)}`);
      report.memberships.push(`${m.member} → ${m.role}`);
    }

    for (const s of data.settings) {
      if (!created.has(s.role)) continue;
      for (const entry of s.config) {
        const { name, sql } = setClause(entry);
        // Some parameters only a superuser (or a GRANT SET ON PARAMETER) may set:
        // those are skipped and reported, as the attributes above.
        await target.query('SAVEPOINT role_setting');
        try {
          await target.query(`ALTER ROLE ${qi(s.role)} ${sql}`);
          await target.query('RELEASE SAVEPOINT role_setting');
        } catch (err) {
          if ((err as { code?: string }).code !== '42501') throw new Error(`copying roles: role ${qi(s.role)}: setting ${name}: ${messageOf(err)}`, { cause: err });
          await target.query('ROLLBACK TO SAVEPOINT role_setting');
          report.skippedAttributes.push({ role: s.role, attribute: `SET ${name}`, reason: `the target connection may not set it: ${messageOf(err)}` });
        }
      }
    }
    await target.query('COMMIT');
  } catch (err) {
    await target.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return report;
}

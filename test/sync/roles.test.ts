/**
 * Roles copied from one cluster to the other before a schema copy: attributes,
 * memberships, role-wide settings and password verifiers; roles the target
 * already has left alone; what a non-superuser on either side cannot read or
 * grant reported instead of failing; a refused grant undoing the whole copy.
 *
 * Every role here starts with `rlt_` and is dropped on both clusters after
 * each test (the pair is this file's own, but roles are cluster-wide).
 */
import { Client } from 'pg';
import { startPair, TestCluster } from '../harness/clusters';
import { errorOf } from '../harness/error-of';
import { copyRoles } from '../../src/sync/roles';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
const opened: Client[] = [];

beforeAll(async () => {
  pair = await startPair();
}, 60_000);

afterAll(async () => {
  await pair?.stop();
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.end().catch(() => undefined)));
  for (const side of [pair.blue, pair.green]) {
    // Roles that made grants (a CREATEROLE connection on 16+) go after the roles they granted.
    let left = (await side.query<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'rlt\\_%'`)).map((r) => r.rolname);
    for (let pass = 0; left.length && pass < 5; pass++) {
      const failed: string[] = [];
      for (const name of left) await side.query(`DROP ROLE "${name.replace(/"/g, '""')}"`).catch(() => failed.push(name));
      left = failed;
    }
    expect(left).toEqual([]);
  }
});

/** A client of `side` logged in as `user` over TCP (password authentication, scram-sha-256). */
async function connectAs(side: TestCluster, user: string, password: string): Promise<Client> {
  const c = new Client({ host: '127.0.0.1', port: side.port, database: 'app', user, password });
  c.on('error', () => undefined);
  await c.connect();
  opened.push(c);
  return c;
}

function rolesOf(side: TestCluster) {
  return side.query(`SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
      rolbypassrls, rolconnlimit, rolvaliduntil, rolconfig
    FROM pg_roles WHERE rolname LIKE 'rlt\\_%' ORDER BY rolname`);
}

function membershipsOf(side: TestCluster) {
  // admin_option, and on 16+ inherit_option and set_option
  return side.query(`SELECT m.rolname AS member, g.rolname AS role, to_jsonb(am) - 'oid' - 'roleid' - 'member' - 'grantor' AS options
    FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
    WHERE m.rolname LIKE 'rlt\\_%' ORDER BY 1, 2`);
}

async function serverVersion(side: TestCluster): Promise<number> {
  const [row] = await side.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`);
  return row.v;
}

async function verifierOf(side: TestCluster, role: string): Promise<string | null> {
  const [row] = await side.query<{ rolpassword: string | null }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [role]);
  return row.rolpassword;
}

test('roles arrive with their attributes, memberships, settings and passwords; the verifier stays out of the report', async () => {
  const { blue, green } = pair;
  await blue.query(`
    CREATE ROLE rlt_app_owner NOLOGIN;
    CREATE ROLE rlt_app_rw LOGIN PASSWORD 'secret-xyz' CONNECTION LIMIT 5 IN ROLE rlt_app_owner;
    CREATE ROLE rlt_app_ro LOGIN NOINHERIT CREATEDB VALID UNTIL '2031-06-30 12:34:56.789+02';
    CREATE ROLE "rlt_Odd ""name""" NOLOGIN VALID UNTIL 'infinity';
    GRANT rlt_app_owner TO rlt_app_ro WITH ADMIN OPTION;
    GRANT pg_read_all_data TO rlt_app_ro ${await serverVersion(blue) >= 160000 ? 'WITH INHERIT TRUE, SET FALSE' : ''};
    ALTER ROLE rlt_app_ro SET search_path = reporting, "$user", "Mixed Case";
    ALTER ROLE rlt_app_ro SET statement_timeout = '5s';
    ALTER ROLE rlt_app_ro SET application_name = 'it''s';
    ALTER ROLE rlt_app_rw IN DATABASE app SET work_mem = '8MB';`);
  const source = await blue.connect();
  const target = await green.connect();

  const report = await copyRoles(source, target);

  expect(report).toEqual({
    created: ['rlt_Odd "name"', 'rlt_app_owner', 'rlt_app_ro', 'rlt_app_rw'],
    existing: ['postgres'],
    withoutPassword: [],
    skippedAttributes: [],
    memberships: ['rlt_app_ro → pg_read_all_data', 'rlt_app_ro → rlt_app_owner', 'rlt_app_rw → rlt_app_owner'],
  });
  expect(await rolesOf(green)).toEqual(await rolesOf(blue));
  expect(await membershipsOf(green)).toEqual(await membershipsOf(blue));
  if (await serverVersion(blue) >= 160000) {
    const [grant] = (await membershipsOf(green)).filter((m) => m.role === 'pg_read_all_data');
    expect(grant.options).toEqual({ admin_option: false, inherit_option: true, set_option: false });
  }
  const [ro] = await green.query<{ rolconfig: string[] }>(`SELECT rolconfig FROM pg_roles WHERE rolname = 'rlt_app_ro'`);
  expect(ro.rolconfig).toEqual(['search_path=reporting, "$user", "Mixed Case"', 'statement_timeout=5s', "application_name=it's"]);
  // settings IN DATABASE are not copied (by design: setdatabase = 0 only)
  expect(await green.query(`SELECT count(*)::int AS n FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = 'rlt_app_rw'`)).toEqual([{ n: 0 }]);

  const verifier = await verifierOf(blue, 'rlt_app_rw');
  expect(verifier).toMatch(/^SCRAM-SHA-256\$/);
  expect(await verifierOf(green, 'rlt_app_rw')).toBe(verifier);
  expect(JSON.stringify(report)).not.toContain(verifier);
  // The harness's pg_hba asks for scram-sha-256 over TCP: a real login with the source's password.
  const rw = await connectAs(green, 'rlt_app_rw', 'secret-xyz');
  expect((await rw.query('SELECT current_user AS u')).rows).toEqual([{ u: 'rlt_app_rw' }]);
  await expect(connectAs(green, 'rlt_app_rw', 'wrong')).rejects.toThrow(/password authentication failed/);
});

test('a role the target already has is reported as existing and left exactly as it was', async () => {
  const { blue, green } = pair;
  await blue.query(`
    CREATE ROLE rlt_app_owner NOLOGIN;
    CREATE ROLE rlt_app_rw LOGIN PASSWORD 'secret-xyz' CONNECTION LIMIT 5 CREATEDB IN ROLE rlt_app_owner;
    ALTER ROLE rlt_app_rw SET statement_timeout = '5s';`);
  await green.query(`CREATE ROLE rlt_app_rw NOLOGIN CONNECTION LIMIT 1`);
  const before = await rolesOf(green);

  const report = await copyRoles(await blue.connect(), await green.connect());

  expect(report).toEqual({ created: ['rlt_app_owner'], existing: ['postgres', 'rlt_app_rw'], withoutPassword: [], skippedAttributes: [], memberships: [] });
  const after = await rolesOf(green);
  expect(after.find((r) => r.rolname === 'rlt_app_rw')).toEqual(before.find((r) => r.rolname === 'rlt_app_rw'));
  expect(after.find((r) => r.rolname === 'rlt_app_rw')).toMatchObject({ rolcanlogin: false, rolconnlimit: 1, rolcreatedb: false, rolconfig: null });
  expect(await verifierOf(green, 'rlt_app_rw')).toBeNull();
  // Granting the existing role membership in a new one would change what it may do: not done.
  expect(await membershipsOf(green)).toEqual([]);
});

test('a source connection that cannot read pg_authid creates LOGIN roles without passwords and says which', async () => {
  const { blue, green } = pair;
  await blue.query(`
    CREATE ROLE rlt_reader LOGIN PASSWORD 'reader-pw';
    CREATE ROLE rlt_app_owner NOLOGIN;
    CREATE ROLE rlt_app_rw LOGIN PASSWORD 'secret-xyz' IN ROLE rlt_app_owner;
    ALTER ROLE rlt_app_owner SET statement_timeout = '7s';`);
  const source = await connectAs(blue, 'rlt_reader', 'reader-pw');

  const report = await copyRoles(source, await green.connect());

  expect(report).toEqual({
    created: ['rlt_app_owner', 'rlt_app_rw', 'rlt_reader'],
    existing: ['postgres'],
    withoutPassword: ['rlt_app_rw', 'rlt_reader'],
    skippedAttributes: [],
    memberships: ['rlt_app_rw → rlt_app_owner'],
  });
  expect(await rolesOf(green)).toEqual(await rolesOf(blue));
  expect(await verifierOf(green, 'rlt_app_rw')).toBeNull();
  expect(await verifierOf(green, 'rlt_reader')).toBeNull();
});

test('a target connection without SUPERUSER leaves out what it may not grant, reports it, and still creates the roles', async () => {
  const { blue, green } = pair;
  await green.query(`CREATE ROLE rlt_admin LOGIN CREATEROLE PASSWORD 'admin-pw'`);
  await blue.query(`
    CREATE ROLE rlt_su SUPERUSER LOGIN PASSWORD 'su-pw';
    CREATE ROLE rlt_repl REPLICATION BYPASSRLS LOGIN;
    CREATE ROLE rlt_app_ro LOGIN IN ROLE rlt_repl;
    ALTER ROLE rlt_app_ro SET log_statement = 'all';
    ALTER ROLE rlt_app_ro SET work_mem = '8MB';`);
  const target = await connectAs(green, 'rlt_admin', 'admin-pw');

  const report = await copyRoles(await blue.connect(), target);

  expect(report.created).toEqual(['rlt_app_ro', 'rlt_repl', 'rlt_su']);
  expect(report.withoutPassword).toEqual([]);
  expect(report.memberships).toEqual(['rlt_app_ro → rlt_repl']);
  expect(report.skippedAttributes.map(({ role, attribute }) => ({ role, attribute }))).toEqual([
    { role: 'rlt_repl', attribute: 'REPLICATION' },
    { role: 'rlt_repl', attribute: 'BYPASSRLS' },
    { role: 'rlt_su', attribute: 'SUPERUSER' },
    { role: 'rlt_app_ro', attribute: 'SET log_statement' },
  ]);
  for (const s of report.skippedAttributes) expect(s.reason).toMatch(/target connection/);
  expect(await green.query(`SELECT rolname, rolsuper, rolreplication, rolbypassrls, rolcanlogin, rolconfig FROM pg_roles
    WHERE rolname IN ('rlt_su', 'rlt_repl', 'rlt_app_ro') ORDER BY 1`)).toEqual([
    { rolname: 'rlt_app_ro', rolsuper: false, rolreplication: false, rolbypassrls: false, rolcanlogin: true, rolconfig: ['work_mem=8MB'] },
    { rolname: 'rlt_repl', rolsuper: false, rolreplication: false, rolbypassrls: false, rolcanlogin: true, rolconfig: null },
    { rolname: 'rlt_su', rolsuper: false, rolreplication: false, rolbypassrls: false, rolcanlogin: true, rolconfig: null },
  ]);
  // the verifier was readable on the source (superuser), so the role logs in as before, without its SUPERUSER
  const su = await connectAs(green, 'rlt_su', 'su-pw');
  expect((await su.query(`SELECT current_setting('is_superuser') AS s`)).rows).toEqual([{ s: 'off' }]);
});

test('a grant the target refuses undoes the whole copy, and the error names the role', async () => {
  const { blue, green } = pair;
  await green.query(`CREATE ROLE rlt_admin LOGIN CREATEROLE PASSWORD 'admin-pw'; CREATE ROLE rlt_boss SUPERUSER`);
  await blue.query(`
    CREATE ROLE rlt_boss SUPERUSER;
    CREATE ROLE rlt_app_owner NOLOGIN;
    CREATE ROLE rlt_app_rw LOGIN PASSWORD 'secret-xyz' IN ROLE rlt_app_owner, rlt_boss;`);
  const target = await connectAs(green, 'rlt_admin', 'admin-pw');
  const verifier = (await verifierOf(blue, 'rlt_app_rw'))!;

  const err = await errorOf(copyRoles(await blue.connect(), target));

  expect(err.message).toMatch(/^copying roles: role "rlt_app_rw": membership in "rlt_boss": /);
  expect(err.message).not.toContain(verifier);
  expect((await green.query(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'rlt\\_%' ORDER BY 1`)).map((r) => r.rolname)).toEqual(['rlt_admin', 'rlt_boss']);
  // the connection is usable again: the transaction was rolled back
  expect((await target.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
});

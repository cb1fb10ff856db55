/**
 * Fencing the side traffic has left, on a real cluster: the application's roles
 * cannot write, sessions that bypass pgflip are ended, reads still work, the
 * sync engine's own role still writes — and unfence restores grants exactly.
 */
import { Client } from 'pg';
import { startCluster, TestCluster } from '../harness/clusters';
import { fence, isFenced, unfence } from '../../src/switch/fencing';

let pg: TestCluster;

function urlAs(user: string, password: string): string {
  const u = new URL(pg.url('app'));
  u.username = user;
  u.password = password;
  return u.toString();
}

async function connectAs(user: string, applicationName = 'direct-client'): Promise<Client> {
  const c = new Client({ connectionString: urlAs(user, 'pw'), application_name: applicationName });
  c.on('error', () => undefined); // terminated sessions emit an error event
  await c.connect();
  return c;
}

async function sqlstate(c: Client, sql: string): Promise<string | undefined> {
  try {
    await c.query(sql);
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

/** every write-relevant grant and role setting that fencing may touch, as text */
async function grantsAndSettings(): Promise<string[]> {
  const rows = await pg.query<{ item: string }>(`
    SELECT format('%s %s %s by %s%s', c.oid::regclass, a.privilege_type, g.rolname, gr.rolname, CASE WHEN a.is_grantable THEN ' (grantable)' ELSE '' END) AS item
      FROM pg_class c CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
      JOIN pg_roles g ON g.oid = a.grantee JOIN pg_roles gr ON gr.oid = a.grantor
     WHERE c.relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('%s.%s %s %s by %s', c.oid::regclass, att.attname, a.privilege_type, g.rolname, gr.rolname)
      FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid CROSS JOIN LATERAL aclexplode(att.attacl) a
      JOIN pg_roles g ON g.oid = a.grantee JOIN pg_roles gr ON gr.oid = a.grantor
     WHERE c.relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('setting %s: %s', r.rolname, d.setconfig) FROM pg_db_role_setting d JOIN pg_roles r ON r.oid = d.setrole
    ORDER BY 1`);
  return rows.map((r) => r.item);
}

beforeAll(async () => {
  pg = await startCluster('fence');
  await pg.query(`
    CREATE ROLE app_rw LOGIN PASSWORD 'pw';
    CREATE ROLE "App Reporter" LOGIN PASSWORD 'pw';
    CREATE ROLE team_lead LOGIN PASSWORD 'pw';
    CREATE ROLE sync_writer LOGIN PASSWORD 'pw';
    ALTER ROLE "App Reporter" IN DATABASE app SET default_transaction_read_only = off;
    GRANT USAGE, CREATE ON SCHEMA public TO app_rw, "App Reporter", team_lead, sync_writer;
    CREATE TABLE orders (id int PRIMARY KEY, note text);
    GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO app_rw;
    GRANT INSERT ON orders TO team_lead WITH GRANT OPTION;
    GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO sync_writer;
    CREATE TABLE "Order Notes" (id int PRIMARY KEY, "Body" text);
    GRANT SELECT ON "Order Notes" TO app_rw, "App Reporter";
    GRANT UPDATE ("Body") ON "Order Notes" TO "App Reporter";
    INSERT INTO "Order Notes" VALUES (1, 'first');
    CREATE TABLE owned_by_app (id int);
    ALTER TABLE owned_by_app OWNER TO app_rw;
  `);
  // a second grantor: team_lead passes its INSERT on to app_rw
  const lead = await connectAs('team_lead');
  await lead.query('GRANT INSERT ON orders TO app_rw');
  await lead.end();
});

afterAll(async () => { await pg?.stop(); });

it('fences the side for the application roles and lifts the fence exactly', async () => {
  const before = await grantsAndSettings();
  const bypassing = await connectAs('app_rw', 'psql');
  const bypassPid = (await bypassing.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  const viaPgflip = await connectAs('app_rw', 'pgflip-proxy');
  expect(await isFenced(pg.url(), 'app')).toBe(false);

  const report = await fence(pg.url(), { roles: ['app_rw', 'App Reporter'], database: 'app' });
  expect(report.alreadyFenced).toBe(false);
  expect(report.terminated).toEqual([expect.objectContaining({ pid: bypassPid, role: 'app_rw', applicationName: 'psql' })]);
  expect(report.revoked.map((r) => `${r.table}${r.column ? `.${r.column}` : ''} ${r.privilege} ${r.role} by ${r.grantor}`).sort()).toEqual([
    '"Order Notes".Body UPDATE App Reporter by postgres',
    'orders DELETE app_rw by postgres',
    'orders INSERT app_rw by postgres',
    'orders INSERT app_rw by team_lead',
    'orders UPDATE app_rw by postgres',
    'owned_by_app DELETE app_rw by app_rw',
    'owned_by_app INSERT app_rw by app_rw',
    'owned_by_app TRUNCATE app_rw by app_rw',
    'owned_by_app UPDATE app_rw by app_rw',
  ]);
  expect(report.stillWritable).toEqual([]);
  expect(await isFenced(pg.url(), 'app')).toBe(true);

  // the session that bypassed pgflip is gone
  await expect(bypassing.query('SELECT 1')).rejects.toThrow(/terminat|closed|not queryable/i);
  const [gone] = await pg.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1', [bypassPid]);
  expect(Number(gone.n)).toBe(0);
  // pgflip's own session stays connected (and cannot write either)
  expect((await viaPgflip.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  expect(await sqlstate(viaPgflip, "INSERT INTO orders VALUES (99, 'x')")).toBe('42501');

  // a new direct session reads, and every write is refused
  const direct = await connectAs('app_rw');
  expect((await direct.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(0);
  expect(await sqlstate(direct, "INSERT INTO orders VALUES (1, 'x')")).toBe('25006'); // read-only transaction
  await direct.query('SET default_transaction_read_only = off'); // trying to get around it
  expect(await sqlstate(direct, "INSERT INTO orders VALUES (1, 'x')")).toBe('42501'); // insufficient privilege
  expect(await sqlstate(direct, 'INSERT INTO owned_by_app VALUES (1)')).toBe('42501');
  expect(await sqlstate(direct, 'TRUNCATE owned_by_app')).toBe('42501');
  await direct.end();
  const reporter = await connectAs('App Reporter');
  expect(await sqlstate(reporter, `UPDATE "Order Notes" SET "Body" = 'changed'`)).toBe('25006');
  await reporter.query('SET default_transaction_read_only = off');
  expect(await sqlstate(reporter, `UPDATE "Order Notes" SET "Body" = 'changed'`)).toBe('42501');
  await reporter.end();

  // the sync engine's role keeps writing (reverse sync into the fenced side)
  const sync = await connectAs('sync_writer', 'pgflip-sync');
  await sync.query("INSERT INTO orders VALUES (2, 'from reverse sync')");
  await sync.end();

  // fencing twice changes nothing more
  const again = await fence(pg.url(), { roles: ['app_rw', 'App Reporter'], database: 'app' });
  expect(again).toMatchObject({ alreadyFenced: true, revoked: [], terminated: [] });

  const lifted = await unfence(pg.url(), { database: 'app' });
  expect(lifted.wasFenced).toBe(true);
  expect(lifted.restored).toHaveLength(report.revoked.length);
  expect(lifted.skipped).toEqual([]);
  expect(await grantsAndSettings()).toEqual(before);
  expect(await isFenced(pg.url(), 'app')).toBe(false);

  const after = await connectAs('app_rw');
  await after.query("INSERT INTO orders VALUES (3, 'writes again')");
  await after.query('INSERT INTO owned_by_app VALUES (1)');
  await after.end();
  const reporterAfter = await connectAs('App Reporter');
  await reporterAfter.query(`UPDATE "Order Notes" SET "Body" = 'changed'`);
  await reporterAfter.end();
  await viaPgflip.end();
  expect(await unfence(pg.url(), { database: 'app' })).toEqual({ wasFenced: false, restored: [], skipped: [] });
});

it('reports writes a role still inherits from a group instead of claiming a full fence', async () => {
  await pg.query(`
    CREATE ROLE writers NOLOGIN;
    GRANT INSERT ON orders TO writers;
    CREATE ROLE app_member LOGIN PASSWORD 'pw' IN ROLE writers;
  `);
  try {
    const report = await fence(pg.url(), { roles: ['app_member'], database: 'app' });
    expect(report.stillWritable).toEqual(['orders: INSERT for app_member']);
  } finally {
    await unfence(pg.url(), { database: 'app' });
  }
});

it('refuses superuser and unknown roles, naming them', async () => {
  await expect(fence(pg.url(), { roles: ['postgres'], database: 'app' })).rejects.toThrow(/postgres are superusers/);
  await expect(fence(pg.url(), { roles: ['app_rw', 'no_such_role'], database: 'app' })).rejects.toThrow(/role\(s\) not found on this side: no_such_role/);
  expect(await isFenced(pg.url(), 'app')).toBe(false);
});

it('ends every bypassing session: those that could still commit gone when fence() returns, the idle ones signalled and refused', async () => {
  const sessions = await Promise.all(Array.from({ length: 6 }, () => connectAs('app_rw', 'worker')));
  const pids = await Promise.all(sessions.map(async (s) => (await s.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number));
  // one of them busy in a long query: it ends at its next interrupt check
  const busy = sessions[0].query('SELECT pg_sleep(30)').catch((err: Error) => err);
  // one inside a transaction that wrote before the fence: its COMMIT would need no privilege
  await sessions[1].query("BEGIN; INSERT INTO orders (id, note) VALUES (990001, 'written before the fence')");
  try {
    const report = await fence(pg.url(), { roles: ['app_rw'], database: 'app' });
    expect(report.terminated.map((t) => t.pid).sort()).toEqual([...pids].sort());
    expect(await pg.query('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids.slice(0, 2)])).toEqual([]);
    expect(String(await busy)).toMatch(/terminating connection due to administrator command/);
    await expect(sessions[1].query('COMMIT')).rejects.toThrow();
    expect(await pg.query("SELECT 1 FROM orders WHERE note = 'written before the fence'")).toEqual([]);
    // the idle ones end too, a moment later; none of them can write meanwhile
    for (const s of sessions.slice(2)) await expect(s.query("INSERT INTO orders (id, note) VALUES (990002, 'after the fence')")).rejects.toThrow();
    for (let i = 0; i < 100 && (await pg.query('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids])).length; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await pg.query('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids])).toEqual([]);
  } finally {
    await unfence(pg.url(), { database: 'app' });
    await Promise.all(sessions.map((s) => s.end().catch(() => undefined)));
  }
});

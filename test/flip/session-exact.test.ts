/**
 * A session moved by a flip finds exactly what PostgreSQL left it: each case
 * here is something a client did, read after a flip, and compared with what
 * PostgreSQL itself answers. Plus what pins a session (honoured by adopt too),
 * and what a pinned or long-running session may cost the others.
 */
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { startPair, TestCluster } from '../harness/clusters';
import { PROXY_PASSWORD, PROXY_USER, startProxyFor, TestProxy } from '../harness/proxy';
import { RawClient, RawMessage } from '../proxy/raw-client';
import { FlipCoordinator } from '../../src/switch/coordinator';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let px: TestProxy;
let coordinator: FlipCoordinator;
const clients: Array<{ end(): Promise<void> }> = [];
const raws: RawClient[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  pair = await startPair();
  for (const side of [pair.blue, pair.green]) {
    await side.query(`CREATE TABLE whoami AS SELECT '${side.name}'::text AS side;
      CREATE TABLE items (id int PRIMARY KEY, v text);
      CREATE SCHEMA other; CREATE ROLE limited; GRANT SELECT ON whoami TO limited`);
  }
  px = await startProxyFor(pair);
  coordinator = new FlipCoordinator(px.proxy.store, { commitWindowMs: 2000 });
});
afterAll(async () => {
  for (const r of raws) r.close();
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await coordinator?.close();
  await px?.stop();
  await pair?.stop();
});

let side: 'blue' | 'green' = 'blue';
async function flip(deadlineMs = 5000): Promise<void> {
  const target = side === 'blue' ? 'green' : 'blue';
  const out = await coordinator.flip({ target, deadlineMs });
  expect({ ok: out.ok, reason: out.reason, terminated: out.sessionsTerminated }).toEqual({ ok: true, reason: undefined, terminated: 0 });
  side = target;
}

async function connect(app: string, errors?: Error[]): Promise<Client> {
  const c = new Client({ connectionString: px.url(), application_name: app });
  c.on('error', (e) => errors?.push(e));
  await c.connect();
  clients.push(c);
  return c;
}

async function raw(): Promise<RawClient> {
  const r = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD);
  raws.push(r);
  return r;
}

const one = async (c: Client, sql: string): Promise<unknown> => Object.values((await c.query(sql)).rows[0])[0];
const dataRows = (ms: RawMessage[]): string[] => ms.filter((m) => m.type === 'D').map((m) => m.body.toString('utf8', 6));
const types = (ms: RawMessage[]): string => ms.map((m) => m.type).join('');

describe('after a flip the session finds what PostgreSQL left it', () => {
  test('SET ROLE then RESET ALL: still the role (RESET ALL skips role and session_authorization)', async () => {
    const c = await connect('role');
    await c.query('SET ROLE limited');
    await c.query('RESET ALL');
    await flip();
    expect(await one(c, 'SELECT current_user')).toBe('limited');
    expect(await one(c, 'SELECT side FROM whoami')).toBe(side);
  });

  test('the unnamed statement lives until the next unnamed Parse or simple Query (Parse+Describe+Sync, then Bind+Execute+Sync)', async () => {
    const r = await raw();
    r.send([serialize.parse({ name: '', text: 'SELECT side || $1::text FROM whoami', types: [25] }), serialize.describe({ type: 'S', name: '' }), serialize.sync()]);
    expect(types(await r.until('Z'))).toBe('1tTZ');
    await flip();
    r.send([serialize.bind({ statement: '', values: ['!'] }), serialize.execute({}), serialize.sync()]);
    const got = await r.until('Z');
    expect({ types: types(got), rows: dataRows(got) }).toEqual({ types: '2DCZ', rows: [`${side}!`] });
  });

  test('COPY FROM STDIN over the extended protocol (Sync after Execute, Sync after CopyDone): one ReadyForQuery, the session stays movable', async () => {
    const r = await raw();
    r.send([serialize.parse({ text: 'COPY items FROM STDIN' }), serialize.bind({}), serialize.execute({}), serialize.sync()]);
    expect(types(await r.until('G'))).toBe('12G');
    r.send([serialize.copyData(Buffer.from('1\tone\n2\ttwo\n')), serialize.copyDone(), serialize.sync()]);
    expect(types(await r.until('Z'))).toBe('CZ');
    await flip();
    await flip();
    r.send(serialize.query('SELECT count(*) FROM items'));
    expect(dataRows(await r.until('Z'))).toEqual(['2']);
  });

  test('a flip does not move a session in the middle of COPY FROM STDIN', async () => {
    const r = await raw();
    r.send([serialize.parse({ text: 'COPY items FROM STDIN' }), serialize.bind({}), serialize.execute({}), serialize.sync()]);
    expect(types(await r.until('G'))).toBe('12G');
    const target = side === 'blue' ? 'green' : 'blue';
    const flipping = coordinator.flip({ target, deadlineMs: 5000 });
    await sleep(300);
    r.send([serialize.copyData(Buffer.from('100\thundred\n')), serialize.copyDone(), serialize.sync()]);
    const done = await r.until('Z');
    expect({ types: types(done), tag: done[0].body.toString('latin1') }).toEqual({ types: 'CZ', tag: 'COPY 1\0' });
    expect(await flipping).toMatchObject({ ok: true });
    side = target;
  });

  test("set_config('search_path', 'other, public', false) in a SELECT", async () => {
    const c = await connect('set-config');
    await c.query("SELECT set_config('search_path', 'other, public', false)");
    await flip();
    expect(await one(c, 'SHOW search_path')).toBe('other, public');
  });

  test('BEGIN; SET x=kept; SAVEPOINT s; SET x=undone; ROLLBACK TO s; COMMIT', async () => {
    const c = await connect('savepoint');
    await c.query("BEGIN; SET x.v = 'kept'; SAVEPOINT s; SET x.v = 'undone'; ROLLBACK TO s; COMMIT");
    await flip();
    expect(await one(c, "SELECT current_setting('x.v')")).toBe('kept');
  });

  test('SET a=1; COMMIT; BEGIN; SET b=2; ROLLBACK in one query string keeps a; b is a placeholder with an empty value', async () => {
    const c = await connect('multi');
    await c.query('SET a.x = 1; COMMIT; BEGIN; SET a.y = 2; ROLLBACK');
    await flip();
    expect(await one(c, "SELECT current_setting('a.x') || '/' || current_setting('a.y')")).toBe('1/');
  });

  test('SET "TimeZone" then RESET timezone; RESET default_transaction_isolation after SET SESSION CHARACTERISTICS', async () => {
    const c = await connect('folding');
    const before = await one(c, 'SHOW TimeZone');
    await c.query(`SET "TimeZone" = 'Asia/Tokyo'; RESET timezone`);
    await c.query('SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE; RESET default_transaction_isolation');
    await flip();
    expect(await one(c, 'SHOW TimeZone')).toBe(before);
    expect(await one(c, 'SHOW default_transaction_isolation')).toBe('read committed');
  });

  test('a job queue that locks and unlocks an advisory lock per job is carried, not pinned', async () => {
    const c = await connect('job-queue');
    for (let job = 1; job <= 3; job++) {
      expect(await one(c, `SELECT pg_try_advisory_lock(${job})`)).toBe(true);
      expect(await one(c, `SELECT pg_advisory_unlock(${job})`)).toBe(true);
    }
    await flip();
    expect(await one(c, 'SELECT side FROM whoami')).toBe(side);
  });
});

describe('pinned and long-running sessions', () => {
  test('adopt (epoch catch-up) leaves a pinned session on its side, with its lock; it moves once it unlocks', async () => {
    const c = await connect('adopt-pinned');
    await c.query('SELECT pg_advisory_lock(4242)');
    const mover = await connect('adopt-mover');
    const from = side;
    const to = side === 'blue' ? 'green' : 'blue';
    await px.proxy.participant.adopt(to, px.proxy.participant.currentEpoch());
    for (let i = 0; i < 100 && (await one(mover, 'SELECT side FROM whoami')) !== to; i++) await sleep(20);
    expect(await one(mover, 'SELECT side FROM whoami')).toBe(to);
    expect(await one(c, 'SELECT side FROM whoami')).toBe(from);
    const held = await (from === 'blue' ? pair.blue : pair.green).query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242");
    expect(held).toEqual([{ n: 1 }]);
    expect(await one(c, 'SELECT pg_advisory_unlock(4242)')).toBe(true);
    for (let i = 0; i < 100 && (await one(c, 'SELECT side FROM whoami')) !== to; i++) await sleep(20);
    expect(await one(c, 'SELECT side FROM whoami')).toBe(to);
    // back to the fleet's side for the tests after this one
    await px.proxy.participant.adopt(from, px.proxy.participant.currentEpoch());
    for (let i = 0; i < 100 && px.proxy.sessions().some((s) => s.side !== from); i++) await sleep(20);
    expect(px.proxy.sessions().every((s) => s.side === from)).toBe(true);
  });

  test('a pinned session does not keep the others held until the deadline: it is decided when holding starts', async () => {
    const errors: Error[] = [];
    const pinned = await connect('temp-holder', errors);
    await pinned.query('CREATE TEMP TABLE scratch (x int)');
    const deadlineMs = 20_000;
    const out = await coordinator.flip({ target: side === 'blue' ? 'green' : 'blue', deadlineMs });
    expect(out).toMatchObject({ ok: true, sessionsTerminated: 1 });
    side = out.active as 'blue' | 'green';
    // committed long before the deadline: the pinned session was not waited for
    expect(out.durationMs).toBeLessThan(deadlineMs / 2);
    for (let i = 0; i < 100 && !errors.length; i++) await sleep(20);
    expect(errors[0]).toMatchObject({ code: '57P01' });
  });

  test('a statement running past the deadline fails the flip naming it as such, not as a transaction', async () => {
    const sleeper = await connect('sleeper');
    const running = sleeper.query('SELECT pg_sleep(3)');
    await sleep(100);
    const idle = await connect('idle-during-flip');
    const out = await coordinator.flip({ target: side === 'blue' ? 'green' : 'blue', deadlineMs: 1000 });
    expect(out.ok).toBe(false);
    expect(out.blockedSessions).toEqual([expect.stringMatching(/\(sleeper\): a statement still running for \d+\.\d s$/)]);
    expect(await one(idle, 'SELECT side FROM whoami')).toBe(side);
    await running;
  });
});

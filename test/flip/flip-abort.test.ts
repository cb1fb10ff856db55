/**
 * When a flip cannot move everyone: a transaction longer than the deadline, a client inside an
 * extended-protocol batch, pinned sessions under both policies — and fencing of the side left
 * behind. One pair of clusters; each proxy is its own fleet (in-process memory store).
 */
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { startPair, TestCluster } from '../harness/clusters';
import { PROXY_PASSWORD, PROXY_USER, startProxyFor, TestProxy } from '../harness/proxy';
import { RawClient } from '../proxy/raw-client';
import { FlipCoordinator } from '../../src/switch/coordinator';
import { fence, unfence } from '../../src/switch/fencing';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
const proxies: TestProxy[] = [];
const coordinators: FlipCoordinator[] = [];
const clients: Client[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  pair = await startPair();
  for (const side of [pair.blue, pair.green]) {
    await side.query(`CREATE TABLE whoami AS SELECT '${side.name}'::text AS side;
      CREATE TABLE notes (id serial PRIMARY KEY, note text);
      CREATE ROLE app_rw LOGIN PASSWORD 'rwpass';
      GRANT SELECT ON whoami TO app_rw; GRANT SELECT, INSERT ON notes TO app_rw; GRANT USAGE ON SEQUENCE notes_id_seq TO app_rw`);
  }
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  for (const c of coordinators) await c.close();
  for (const p of proxies) await p.stop();
  await pair?.stop();
});

async function proxyWith(overrides: Parameters<typeof startProxyFor>[1] = {}): Promise<{ px: TestProxy; coordinator: FlipCoordinator }> {
  const px = await startProxyFor(pair, overrides);
  proxies.push(px);
  const coordinator = new FlipCoordinator(px.proxy.store, { commitWindowMs: 2000 });
  coordinators.push(coordinator);
  return { px, coordinator };
}

async function connect(px: TestProxy, app: string, errors?: Error[]): Promise<Client> {
  const c = new Client({ connectionString: px.url(), application_name: app });
  c.on('error', (e) => errors?.push(e));
  await c.connect();
  clients.push(c);
  return c;
}

const sideOf = async (c: Client) => (await c.query({ name: 'side_q', text: 'SELECT side FROM whoami' })).rows[0].side;

describe('the flip aborts and nobody notices', () => {
  let px: TestProxy;
  let coordinator: FlipCoordinator;
  beforeAll(async () => { ({ px, coordinator } = await proxyWith()); });

  test('a transaction longer than the deadline: abort, everything stays on blue, no client error', async () => {
    const long = await connect(px, 'long-transaction');
    const idle = await connect(px, 'idle-client');
    await sideOf(idle);
    await long.query('BEGIN');
    await long.query("INSERT INTO notes (note) VALUES ('before the flip')");
    const flipping = coordinator.flip({ target: 'green', deadlineMs: 700 });
    // the idle client sends during the pause: held, then answered on blue after the abort
    await sleep(150);
    const held = sideOf(idle);
    const out = await flipping;
    expect(out).toMatchObject({ ok: false, active: 'blue', epoch: 0 });
    expect(out.blockedSessions).toEqual([expect.stringMatching(new RegExp(`^${px.proxy.id}/s\\d+ \\(long-transaction\\): in a transaction for \\d+\\.\\d s$`))]);
    expect(out.reason).toMatch(/1 session\(s\) could not be paused \(s\d+ \(long-transaction\): in a transaction for \d+\.\d s\)/);
    expect(await held).toBe('blue');
    await long.query("INSERT INTO notes (note) VALUES ('after the abort')");
    await long.query('COMMIT');
    expect(await sideOf(long)).toBe('blue');
    expect((await pair.blue.query("SELECT count(*)::int AS n FROM notes WHERE note IN ('before the flip', 'after the abort')"))[0].n).toBe(2);
    expect(px.proxy.activeSide).toBe('blue');
    expect(px.proxy.sessions().every((s) => s.side === 'blue')).toBe(true);
    expect(await px.registry.metrics()).toMatch(/pgflip_held_sessions 0/);
  });

  test('an extended-protocol batch without its Sync is not a boundary', async () => {
    const raw = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD, 'app', { application_name: 'half-batch' });
    raw.send([serialize.parse({ text: 'SELECT side FROM whoami' }), serialize.bind(), serialize.execute()]);
    // let the proxy read and relay the batch before the pause starts
    for (let i = 0; i < 100 && !px.proxy.sessions().some((s) => s.applicationName === 'half-batch' && s.prepared.length === 0); i++) await sleep(10);
    await sleep(200);
    const out = await coordinator.flip({ target: 'green', deadlineMs: 500 });
    expect(out).toMatchObject({ ok: false, active: 'blue' });
    expect(out.blockedSessions).toEqual([expect.stringMatching(/\(half-batch\): inside an extended-protocol batch/)]);
    raw.send(serialize.sync());
    const msgs = await raw.until('Z');
    expect(msgs.map((m) => m.type).join('')).toBe('12DCZ');
    expect(msgs[2].body.toString('utf8', 6)).toBe('blue');
    raw.close();
  });

  test('pinned sessions under policy terminate: ended with 57P01 saying why after the switch; the others move', async () => {
    const errors: Error[] = [];
    const pinned = await connect(px, 'temp-table-user', errors);
    await pinned.query('CREATE TEMP TABLE scratch (x int)');
    const mover = await connect(px, 'mover');
    const out = await coordinator.flip({ target: 'green', deadlineMs: 500 });
    expect(out).toMatchObject({ ok: true, active: 'green', sessionsTerminated: 1 });
    expect(out.noop).toBeUndefined();
    expect(await sideOf(mover)).toBe('green');
    for (let i = 0; i < 100 && !errors.length; i++) await sleep(20);
    expect(errors[0]).toMatchObject({ code: '57P01', severity: 'FATAL' });
    expect(errors[0].message).toMatch(/switched to the green side .*temporary table/);
    await expect(pinned.query('SELECT 1')).rejects.toThrow();
    // every other session (those of the tests before too) was carried
    expect(out.sessionsCarried).toBe(px.proxy.sessionCount());
    expect(px.proxy.sessions().every((s) => s.side === 'green')).toBe(true);
  });
});

test('pinned sessions under policy abort: the flip aborts and names them; they keep their state', async () => {
  const { px, coordinator } = await proxyWith({ proxy: { pinnedPolicy: 'abort' } });
  const pinned = await connect(px, 'advisory-locker');
  await pinned.query('SELECT pg_advisory_lock(42)');
  const out = await coordinator.flip({ target: 'green', deadlineMs: 400 });
  expect(out).toMatchObject({ ok: false, active: 'blue' });
  expect(out.blockedSessions).toEqual([expect.stringMatching(/\(advisory-locker\): pinned \(session advisory lock\)/)]);
  expect(await sideOf(pinned)).toBe('blue');
  expect((await pinned.query('SELECT pg_advisory_unlock(42) AS ok')).rows[0].ok).toBe(true);
});

test('fencing in beforeCommit: the old side refuses writes from a direct connection; flipping back works for the carried session', async () => {
  const rwUrl = (c: TestCluster) => `postgres://app_rw:rwpass@127.0.0.1:${c.port}/app`;
  const { px, coordinator } = await proxyWith({ blue: { url: rwUrl(pair.blue) }, green: { url: rwUrl(pair.green) } });
  const fenceOpts = { roles: ['app_rw'], database: 'app' };
  const flipTo = (to: TestCluster, from: TestCluster) => coordinator.flip({
    target: to.name as 'blue' | 'green', deadlineMs: 3000,
    beforeCommit: async () => { await unfence(to.url('app'), fenceOpts); await fence(from.url('app'), fenceOpts); },
    onAbort: async () => { await unfence(from.url('app'), fenceOpts); },
  });
  const errors: Error[] = [];
  const app = await connect(px, 'writer', errors);
  const insert = { name: 'ins', text: 'INSERT INTO notes (note) VALUES ($1) RETURNING (SELECT side FROM whoami)' };
  expect((await app.query({ ...insert, values: ['w1'] })).rows[0].side).toBe('blue');

  expect(await flipTo(pair.green, pair.blue)).toMatchObject({ ok: true, active: 'green', sessionsCarried: 1 });
  expect((await app.query({ ...insert, values: ['w2'] })).rows[0].side).toBe('green');
  const direct = new Client({ connectionString: rwUrl(pair.blue) });
  await direct.connect();
  clients.push(direct);
  await expect(direct.query("INSERT INTO notes (note) VALUES ('bypass')")).rejects.toMatchObject({ code: '25006' });

  // back to blue: blue was fenced while the switch pre-warmed connections to it
  expect(await flipTo(pair.blue, pair.green)).toMatchObject({ ok: true, active: 'blue', sessionsCarried: 1 });
  expect((await app.query({ ...insert, values: ['w3'] })).rows[0].side).toBe('blue');
  expect((await app.query('SHOW default_transaction_read_only')).rows[0].default_transaction_read_only).toBe('off');
  await app.query('DISCARD ALL');
  expect((await app.query("INSERT INTO notes (note) VALUES ('after discard') RETURNING id")).rowCount).toBe(1);
  const direct2 = new Client({ connectionString: rwUrl(pair.green) });
  await direct2.connect();
  clients.push(direct2);
  await expect(direct2.query("INSERT INTO notes (note) VALUES ('bypass')")).rejects.toMatchObject({ code: '25006' });
  expect(errors).toEqual([]);
  await unfence(pair.green.url('app'), fenceOpts);
});

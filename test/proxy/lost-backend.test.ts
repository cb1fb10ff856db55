/**
 * A side that goes down under its sessions: they stay connected and continue on the side that
 * takes over (a rollback flip, here the proxy's active side moved as a flip moves it) or on the
 * same side once it is back. What was in flight fails once; an open transaction is gone, and the
 * rest of it fails as PostgreSQL fails an aborted transaction. A backend that ends alone, on a
 * side that is up, is still the client's business: it hears the server's FATAL.
 */
import { Client } from 'pg';
import { startPair, TestCluster } from '../harness/clusters';
import { startProxyFor, TestProxy } from '../harness/proxy';
import { errorOf } from '../harness/error-of';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let px: TestProxy;
const clients: Client[] = [];

async function connect(): Promise<Client & { errors: Error[] }> {
  const c = new Client({ connectionString: px.url() }) as Client & { errors: Error[] };
  c.errors = [];
  c.on('error', (e) => c.errors.push(e));
  await c.connect();
  clients.push(c);
  return c;
}
const portOf = async (c: Client) => (await c.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0].p;

beforeAll(async () => {
  pair = await startPair();
  for (const side of [pair.blue, pair.green]) await side.query('CREATE TABLE t (id int PRIMARY KEY)');
  px = await startProxyFor(pair, { proxy: { healthCheck: { intervalMs: 200 }, lostBackendWaitMs: 20_000 } });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await px?.stop();
  await pair?.stop();
});

test('the active side dies: idle, in-transaction and busy sessions and a new client all continue on the side that takes over', async () => {
  const idle = await connect();
  await idle.query(`SET statement_timeout = '12s'`);
  const inTx = await connect();
  await inTx.query('BEGIN');
  await inTx.query('INSERT INTO t VALUES (1)');
  const busy = await connect();
  const running = errorOf(busy.query('SELECT pg_sleep(30)'));
  await new Promise((r) => setTimeout(r, 200));
  expect(await portOf(idle)).toBe(pair.blue.port);

  await pair.blue.kill();
  await new Promise((r) => setTimeout(r, 500));
  // a new client while the active side is down waits instead of failing
  const late = new Client({ connectionString: px.url() });
  clients.push(late);
  const lateConnected = late.connect();
  await new Promise((r) => setTimeout(r, 500));
  expect(px.proxy.sessionCount()).toBe(4);
  // what a rollback flip does to the proxy: the active side moves
  px.proxy.setActiveSide('green');

  // the statement in flight failed once, saying so; the session goes on
  const e = await running;
  expect(e.code).toBe('08006');
  expect(e.message).toBe('pgflip: the connection to the blue backend was lost while this statement ran; the session continues on green');
  expect(await portOf(busy)).toBe(pair.green.port);
  // the idle session noticed nothing, and kept its settings
  expect(await portOf(idle)).toBe(pair.green.port);
  expect((await idle.query('SHOW statement_timeout')).rows).toEqual([{ statement_timeout: '12s' }]);
  // the open transaction is gone: its remaining statements fail as in an aborted transaction, COMMIT answers ROLLBACK
  const inTxErr = await errorOf(inTx.query('INSERT INTO t VALUES (2)'));
  expect(inTxErr.code).toBe('25P02');
  const commit = await inTx.query('COMMIT');
  expect(commit.command).toBe('ROLLBACK');
  expect((await inTx.query<{ n: number }>('SELECT count(*)::int AS n FROM t')).rows).toEqual([{ n: 0 }]);
  await inTx.query('INSERT INTO t VALUES (3)');
  await lateConnected;
  expect(await portOf(late)).toBe(pair.green.port);
  expect((await pair.green.query('SELECT id FROM t')).map((r) => r.id)).toEqual([3]);
  for (const c of [idle, inTx, busy]) expect(c.errors).toEqual([]);
  await pair.blue.restart();
}, 60_000);

test('the side comes back: a session that lost its backend continues there', async () => {
  px.proxy.setActiveSide('blue');
  const c = await connect();
  await c.query(`SET application_name = 'comes-back'`);
  expect(await portOf(c)).toBe(pair.blue.port);
  await pair.blue.kill();
  await new Promise((r) => setTimeout(r, 300));
  await pair.blue.restart();
  const port = await portOf(c);
  expect(port).toBe(pair.blue.port);
  expect((await c.query('SHOW application_name')).rows).toEqual([{ application_name: 'comes-back' }]);
  expect(c.errors).toEqual([]);
}, 60_000);

test('a backend ended alone on a side that is up: the client hears the server\'s FATAL, as from PostgreSQL', async () => {
  const c = await connect();
  const ended = new Promise<{ code?: string; message: string }>((resolve) => c.on('error', (e) => resolve(e as { code?: string; message: string })));
  const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  await pair.blue.query('SELECT pg_terminate_backend($1)', [pid]);
  const e = await ended;
  expect(e.code).toBe('57P01');
  expect(e.message).toBe('terminating connection due to administrator command');
});

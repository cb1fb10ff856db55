/**
 * Faults and observability: an unreachable or dying backend, a client that
 * does not read, the admin port and proxy shutdown.
 */
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { freePort } from '../../src/pgcluster/local-cluster';
import { startPair, TestCluster } from '../harness/clusters';
import { PROXY_PASSWORD, PROXY_USER, startProxyFor, TestProxy } from '../harness/proxy';
import { RawClient } from './raw-client';
import { errorOf } from '../harness/error-of';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let px: TestProxy;
const extra: TestProxy[] = [];
const clients: Client[] = [];

async function connect(url: string): Promise<Client> {
  const c = new Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}
async function waitFor(what: string, cond: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const getJson = async (url: string) => { const r = await fetch(url); return { status: r.status, body: await r.json() as Record<string, any> }; };

beforeAll(async () => {
  pair = await startPair();
  // a session or client whose side is down waits this long for a flip or the side's return (lost-backend.test.ts)
  px = await startProxyFor(pair, { proxy: { lostBackendWaitMs: 500 } });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await Promise.all([px, ...extra].map((p) => p?.stop()));
  await pair?.stop();
});

test('an unreachable backend gets FATAL 08006 naming the side', async () => {
  const port = await freePort();
  const p = await startProxyFor(pair, { blue: { url: `postgres://postgres:postgres@127.0.0.1:${port}/app` }, proxy: { lostBackendWaitMs: 300 } });
  extra.push(p);
  const c = new Client({ connectionString: p.url() });
  const e = await errorOf(c.connect());
  expect(e.code).toBe('08006');
  expect(e.message).toBe(`pgflip: cannot connect to the blue backend at 127.0.0.1:${port}: ECONNREFUSED`);
  await p.proxy.checkHealth();
  const st = await getJson(`${p.adminUrl}/status`);
  expect(st.body.sides.blue).toMatchObject({ up: false, active: true });
  expect(st.body.sides.green).toMatchObject({ up: true, active: false });
  expect(p.proxy.sessionCount()).toBe(0);
});

test('wrong backend credentials are reported as 08006, not as the client\'s fault', async () => {
  const p = await startProxyFor(pair, { blue: { url: pair.blue.url('app').replace(':postgres@', ':wrong@') } });
  extra.push(p);
  const e = await errorOf(new Client({ connectionString: p.url() }).connect());
  expect(e.code).toBe('08006');
  expect(e.message).toMatch(/^pgflip: the blue backend at 127\.0\.0\.1:\d+ rejected pgflip's credentials: password authentication failed for user "postgres"$/);
  expect(JSON.stringify(p.proxy.status())).not.toContain('wrong');
});

test('a client that does not read makes the backend wait (backpressure), not the proxy buffer', async () => {
  const c = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD);
  const session = px.proxy.sessions().find((s) => s.user === PROXY_USER && s.applicationName === '')!;
  c.socket.pause();
  // ~400 MB of rows; the client reads none of it
  c.send(serialize.query("SELECT repeat('x', 2000) FROM generate_series(1, 200000)"));
  await waitFor('the backend to wait on its client', async () => {
    const r = await pair.blue.query<{ w: string | null }>('SELECT wait_event AS w FROM pg_stat_activity WHERE pid = $1', [session.backendPid]);
    return r[0]?.w === 'ClientWrite';
  });
  const rssBefore = process.memoryUsage().rss;
  await new Promise((r) => setTimeout(r, 500));
  // still waiting, and the proxy did not take the result into memory
  const [{ w }] = await pair.blue.query<{ w: string }>('SELECT wait_event AS w FROM pg_stat_activity WHERE pid = $1', [session.backendPid]);
  expect(w).toBe('ClientWrite');
  expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 1024 * 1024);
  c.close();
});

test('admin port: /healthz, /status and /metrics', async () => {
  const c = await connect(px.url());
  await c.query('SELECT 1');
  await errorOf(c.query('SELECT 1/0'));
  await errorOf(c.query('SELECT * FROM missing_table'));
  await px.proxy.checkHealth();
  const h = await getJson(`${px.adminUrl}/healthz`);
  expect(h).toEqual({ status: 200, body: { status: 'ok', activeSide: 'blue', activeSideUp: true } });
  const st = await getJson(`${px.adminUrl}/status`);
  expect(st.body).toMatchObject({ activeSide: 'blue', sides: { blue: { up: true, active: true }, green: { up: true, active: false } } });
  expect(st.body.sessions).toBeGreaterThanOrEqual(1);
  expect(st.body.sides.blue.url).not.toContain(':postgres@'); // password redacted
  expect(st.body.sessionList[0]).toMatchObject({ side: 'blue', txStatus: 'I' });
  const metrics = await (await fetch(`${px.adminUrl}/metrics`)).text();
  expect(metrics).toMatch(/^pgflip_client_connections [1-9]/m);
  expect(metrics).toMatch(/^pgflip_queries_total\{side="blue"\} [1-9]/m);
  expect(metrics).toMatch(/^pgflip_query_errors_total\{side="blue",sqlstate_class="22"\} 1$/m);
  expect(metrics).toMatch(/^pgflip_query_errors_total\{side="blue",sqlstate_class="42"\} 1$/m);
  expect(metrics).toMatch(/^pgflip_bytes_total\{direction="client_to_server"\} [1-9]/m);
  expect(metrics).toMatch(/^pgflip_active_side\{side="blue"\} 1$/m);
  expect(metrics).toMatch(/^pgflip_backend_up\{side="green"\} 1$/m);
  expect(metrics).toMatch(/^pgflip_held_sessions 0$/m);
  expect(metrics).toMatch(/^pgflip_query_duration_seconds_count\{side="blue"\} [1-9]/m);
  expect(metrics).toMatch(/^# TYPE pgflip_flip_pause_seconds histogram$/m);
  expect((await fetch(`${px.adminUrl}/nope`)).status).toBe(404);
});

test('closing the proxy ends sessions with 57P01', async () => {
  const p = await startProxyFor(pair);
  const c = new Client({ connectionString: p.url() });
  const ended = new Promise<{ code?: string }>((resolve) => c.on('error', (e) => resolve(e as { code?: string })));
  await c.connect();
  await p.stop();
  expect((await ended).code).toBe('57P01');
});

// last: it kills blue
test('a backend that dies mid-query with no side to take over gives the client an error after proxy.lostBackendWaitMs, not a hang', async () => {
  const c = await connect(px.url());
  const running = errorOf(c.query('SELECT pg_sleep(60)'));
  await new Promise((r) => setTimeout(r, 300));
  await pair.blue.kill();
  const e = await running;
  expect(['57P01', '57P02', '08006']).toContain(e.code ?? '08006');
  // every session on blue ended with it
  await waitFor('the sessions to end', () => px.proxy.sessionCount() === 0);
  // new sessions get a clear error while blue is down
  const down = await errorOf(new Client({ connectionString: px.url() }).connect());
  expect(down.code).toBe('08006');
  expect(down.message).toContain('blue backend');
  await px.proxy.checkHealth();
  expect((await getJson(`${px.adminUrl}/status`)).body.sides.blue.up).toBe(false);
});

/**
 * `pgflip proxy --workers 2` (proxy.workers): two processes on the one listener, each a fleet
 * member through a real Redis. Clients are spread over both; /metrics on the admin port is the
 * sum; a CancelRequest that reaches the other worker than its session's still cancels; a flip
 * moves every session of both workers with no client error; a worker that dies is started again;
 * SIGTERM ends the sessions with 57P01 and exits 0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { startPair, startRedis, TestCluster, TestRedis } from '../harness/clusters';
import { ProxyProcess, spawnProxyProcess } from '../harness/proxy-process';
import { RawClient } from '../proxy/raw-client';

const TOKEN = 'workers-test-token-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let redis: TestRedis;
let tmp: string;
let proxy: ProxyProcess;
const clients: Client[] = [];
const errors: string[] = [];

beforeAll(async () => {
  [pair, redis] = await Promise.all([startPair(), startRedis()]);
  tmp = mkdtempSync(path.join(os.tmpdir(), 'pgflip-workers-'));
  for (const side of [pair.blue, pair.green]) await side.query(`CREATE TABLE whoami AS SELECT '${side.name}'::text AS side; CREATE TABLE w (tag text)`);
  proxy = await spawnProxyProcess({ id: 'px', pair, redis, dir: tmp, token: TOKEN, workers: 2, logLevel: 'debug' });
}, 60_000);
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  proxy?.child.kill('SIGKILL');
  await redis?.stop();
  await pair?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function client(app: string): Promise<Client> {
  const c = new Client({ connectionString: proxy.url, application_name: app });
  c.on('error', (e) => errors.push(`${app}: ${e.message}`));
  await c.connect();
  clients.push(c);
  return c;
}
const sideOf = async (c: Client) => (await c.query({ name: 'side_q', text: 'SELECT side FROM whoami' })).rows[0].side;
const status = async () => (await (await fetch(`${proxy.admin}/status`)).json()) as { workers: Array<{ worker: number; id: string; sessions: number; activeSide: string }> };
const metric = async (line: string): Promise<number> => {
  const text = await (await fetch(`${proxy.admin}/metrics`)).text();
  const m = text.split('\n').find((l) => l.startsWith(`${line} `));
  return m ? Number(m.split(' ').pop()) : NaN;
};

test('two workers share the listener; /metrics sums them; cancels cross workers; a flip moves both; a dead worker comes back; SIGTERM ends it all', async () => {
  const cs: Client[] = [];
  for (let i = 0; i < 8; i++) cs.push(await client(`w-${i}`));
  expect(await Promise.all(cs.map(sideOf))).toEqual(Array(8).fill('blue'));

  // both workers are fleet members with sessions of their own
  const st = await status();
  expect(st.workers.map((w) => w.id)).toEqual(['px-w0', 'px-w1']);
  expect(st.workers.every((w) => w.sessions > 0)).toBe(true);
  expect(st.workers.reduce((n, w) => n + w.sessions, 0)).toBe(8);
  // each worker adds its hot counters when the primary asks: no second of lag
  const before = await metric('pgflip_queries_total{side="blue"}');
  for (const c of cs) await c.query('SELECT 1');
  expect(await metric('pgflip_queries_total{side="blue"}')).toBe(before + 8);
  expect(await metric('pgflip_client_connections')).toBe(8);
  expect(await metric('pgflip_active_side{side="blue"}')).toBe(1);

  // a CancelRequest arrives at whichever worker the listener hands it to (in turn): every one cancels,
  // the ones that reached the other worker through the state store
  for (const c of [cs[1], cs[0], cs[3], cs[2]]) {
    const key = c as unknown as { processID: number; secretKey: number };
    const sleeping = c.query('SELECT pg_sleep(20)').then(() => 'finished', (e) => (e as { code: string }).code);
    await sleep(150);
    const cancel = await RawClient.open(proxy.port);
    cancel.send(Buffer.from(serialize.cancel(key.processID, key.secretKey)));
    await cancel.waitClosed();
    expect(await sleeping).toBe('57014');
  }
  // the workers' log lines reach the harness through a pipe: wait for the fourth
  let how: string[] = [];
  for (let i = 0; i < 50 && how.length < 4; i++) {
    how = [...proxy.logs().matchAll(/"how":"(local|routed)"/g)].map((m) => m[1]);
    if (how.length < 4) await sleep(100);
  }
  expect(how).toHaveLength(4);
  expect(how).toContain('routed');

  // a flip through the primary's admin port, under writes on both workers: both pause and switch together
  const writers = await Promise.all([0, 1, 2, 3].map((k) => client(`writer-${k}`)));
  const acked: string[] = [];
  let writing = true;
  const loops = writers.map(async (c, k) => {
    for (let i = 0; writing; i++) { await c.query('INSERT INTO w VALUES ($1)', [`${k}-${i}`]); acked.push(`${k}-${i}`); }
  });
  await sleep(300);
  const res = await fetch(`${proxy.admin}/switch`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ target: 'green', deadlineMs: 5000 }) });
  const out = await res.json() as Record<string, unknown>;
  expect(res.status).toBe(200);
  expect(out).toMatchObject({ ok: true, active: 'green', proxies: ['px-w0', 'px-w1'], sessionsCarried: 12, sessionsTerminated: 0 });
  await sleep(300);
  writing = false;
  await Promise.all(loops);
  expect(await Promise.all(cs.map(sideOf))).toEqual(Array(8).fill('green'));
  expect(errors).toEqual([]);
  // every acknowledged write is on blue (before the switch) or green (after); the last ones on green
  const stored = new Set([...(await pair.blue.query<{ tag: string }>('SELECT tag FROM w')), ...(await pair.green.query<{ tag: string }>('SELECT tag FROM w'))].map((r) => r.tag));
  expect(acked.length).toBeGreaterThan(20);
  expect(acked.filter((t) => !stored.has(t))).toEqual([]);
  expect((await pair.green.query<{ n: number }>('SELECT count(*)::int AS n FROM w'))[0].n).toBeGreaterThan(0);

  // a worker that hangs (SIGSTOP) does not hang the admin port: the others are summed, its status says so
  const now = await status();
  const hung = now.workers[1] as { pid?: number };
  process.kill(hung.pid!, 'SIGSTOP');
  try {
    const t0 = Date.now();
    const sessionsOfW0 = (await (await fetch(`${proxy.admin}/metrics`)).text()).split('\n').find((l) => l.startsWith('pgflip_client_connections '));
    expect(Number(sessionsOfW0!.split(' ')[1])).toBe(now.workers[0].sessions);
    const s2 = await (await fetch(`${proxy.admin}/status`)).json() as { workers: Array<{ error?: string }> };
    expect(s2.workers[1].error).toMatch(/timeout|aborted/i);
    expect(Date.now() - t0).toBeLessThan(8000);
    expect((await fetch(`${proxy.admin}/healthz`)).status).toBe(200);
  } finally {
    process.kill(hung.pid!, 'SIGCONT');
  }

  // a worker killed is started again under its id; the other's sessions carry on
  const victim = (await status()).workers[0];
  const pid = (await (await fetch(`${proxy.admin}/status`)).json() as { workers: Array<{ pid?: number }> }).workers[0].pid;
  expect(typeof pid).toBe('number');
  process.kill(pid!, 'SIGKILL');
  let back = false;
  for (let i = 0; i < 50 && !back; i++) {
    await sleep(200);
    const w = (await status().catch(() => ({ workers: [] as Array<{ id: string; sessions: number; pid?: number }> }))).workers.find((x) => x.id === victim.id) as { pid?: number } | undefined;
    back = !!w?.pid && w.pid !== pid;
  }
  expect(back).toBe(true);
  const fresh = await client('after-restart');
  expect(await sideOf(fresh)).toBe('green');

  // SIGTERM: every session ends with 57P01, the primary exits 0
  const ended = new Promise<number | null>((resolve) => proxy.child.once('exit', (code) => resolve(code)));
  const terminated = new Promise<string>((resolve) => fresh.once('error', (e) => resolve((e as { code?: string }).code ?? e.message)));
  proxy.child.kill('SIGTERM');
  expect(await ended).toBe(0);
  expect(await terminated).toBe('57P01');
}, 120_000);

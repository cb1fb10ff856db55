/**
 * Two `pgflip proxy` processes in one fleet through a real Redis: they flip together (started by
 * the admin call POST /switch on one of them, then by a FlipCoordinator), a CancelRequest sent to
 * one reaches a session of the other, and a proxy killed (SIGKILL) mid-pause makes the flip abort
 * while the other proxy's clients carry on, on the old side, without an error.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { startPair, startRedis, TestCluster, TestRedis } from '../harness/clusters';
import { ProxyProcess, spawnProxyProcess } from '../harness/proxy-process';
import { RawClient } from '../proxy/raw-client';
import { RedisStateStore } from '../../src/state/redis-store';
import { FlipCoordinator } from '../../src/switch/coordinator';

const TOKEN = 'flip-test-token-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let redis: TestRedis;
let tmp: string;
let store: RedisStateStore;
let coordinator: FlipCoordinator;
const procs: ProxyProcess[] = [];
const clients: Client[] = [];
/** errors clients saw, by application_name */
const clientErrors: Record<string, string[]> = {};

async function spawnProxy(id: string): Promise<ProxyProcess> {
  const p = await spawnProxyProcess({ id, pair, redis, dir: tmp, token: TOKEN });
  procs.push(p);
  return p;
}

beforeAll(async () => {
  [pair, redis] = await Promise.all([startPair(), startRedis()]);
  tmp = mkdtempSync(path.join(os.tmpdir(), 'pgflip-fleet-'));
  for (const side of [pair.blue, pair.green]) await side.query(`CREATE TABLE whoami AS SELECT '${side.name}'::text AS side; CREATE TABLE notes (note text)`);
  store = await RedisStateStore.connect(redis.url, { prefix: redis.prefix });
  coordinator = new FlipCoordinator(store, { commitWindowMs: 2000, livenessPollMs: 100 });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  for (const p of procs) p.child.kill('SIGKILL');
  await coordinator?.close();
  await store?.close();
  await redis?.stop();
  await pair?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function client(p: ProxyProcess, app: string): Promise<Client> {
  const c = new Client({ connectionString: p.url, application_name: app });
  clientErrors[app] = [];
  c.on('error', (e) => clientErrors[app].push(e.message));
  await c.connect();
  clients.push(c);
  await c.query("SET statement_timeout = '7s'");
  return c;
}
const sideOf = async (c: Client) => (await c.query({ name: 'side_q', text: 'SELECT side FROM whoami' })).rows[0].side;

const postSwitch = (p: ProxyProcess, body: unknown, token = TOKEN) => fetch(`${p.admin}/switch`, {
  method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
});

test('two proxy processes flip together; cancels cross proxies; a proxy killed mid-pause aborts the flip', async () => {
  const [a, b] = [await spawnProxy('proxy-a'), await spawnProxy('proxy-b')];
  const ca = await client(a, 'on-a');
  const cb = await client(b, 'on-b');
  expect([await sideOf(ca), await sideOf(cb)]).toEqual(['blue', 'blue']);

  // the admin call: refused without the token, then a fleet flip with its report
  expect((await postSwitch(a, { target: 'green' }, 'wrong-token-0123456789')).status).toBe(401);
  expect((await postSwitch(a, { target: 'purple' })).status).toBe(400);
  const res = await postSwitch(a, { target: 'green', deadlineMs: 5000 });
  const out = await res.json() as Record<string, unknown>;
  expect(res.status).toBe(200);
  expect(out).toMatchObject({ ok: true, from: 'blue', active: 'green', epoch: 1, proxies: ['proxy-a', 'proxy-b'], sessionsCarried: 2, sessionsTerminated: 0 });
  expect(Object.keys(out.pauseMs as object).sort()).toEqual(['proxy-a', 'proxy-b']);
  expect(typeof out.maxPauseMs).toBe('number');
  expect([await sideOf(ca), await sideOf(cb)]).toEqual(['green', 'green']);
  expect((await ca.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('7s');

  // a CancelRequest for a session on proxy A, sent to proxy B, cancels its statement on green
  const key = ca as unknown as { processID: number; secretKey: number };
  const sleeping = ca.query('SELECT pg_sleep(20)').then(() => 'finished', (e) => (e as { code: string }).code);
  for (let i = 0; i < 200; i++) {
    if ((await pair.green.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'on-a' AND query LIKE 'SELECT pg_sleep%' AND state = 'active'")).length) break;
    await sleep(20);
  }
  const cancel = await RawClient.open(b.port);
  cancel.send(Buffer.from(serialize.cancel(key.processID, key.secretKey)));
  await cancel.waitClosed();
  expect(await sleeping).toBe('57014');

  // back to blue through a coordinator of our own
  expect(await coordinator.flip({ target: 'blue', deadlineMs: 5000 })).toMatchObject({ ok: true, active: 'blue', epoch: 2, sessionsCarried: 2 });
  expect([await sideOf(ca), await sideOf(cb)]).toEqual(['blue', 'blue']);

  // A's client stays in a transaction so the pause lasts; B pauses, then dies
  await ca.query('BEGIN');
  await ca.query("INSERT INTO notes VALUES ('in flight')");
  const flipping = coordinator.flip({ target: 'green', deadlineMs: 8000 });
  await sleep(400);
  b.child.kill('SIGKILL');
  const aborted = await flipping;
  expect(aborted).toMatchObject({ ok: false, active: 'blue', epoch: 2 });
  expect(aborted.blockedProxies).toEqual([{ proxyId: 'proxy-b', why: 'lost' }]);
  await ca.query('COMMIT');
  expect(await sideOf(ca)).toBe('blue');
  expect((await pair.blue.query("SELECT count(*)::int AS n FROM notes WHERE note = 'in flight'"))[0].n).toBe(1);
  expect(await store.getActive()).toEqual({ active: 'blue', epoch: 2 });
  expect(clientErrors['on-a']).toEqual([]);
  const status = await (await fetch(`${a.admin}/status`)).json() as Record<string, unknown>;
  expect(status).toMatchObject({ id: 'proxy-a', activeSide: 'blue', epoch: 2, store: 'redis' });
});

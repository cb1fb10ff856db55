/**
 * Redis is for coordinating flips, not for admitting clients. Two `pgflip proxy` processes on a
 * Redis that is then killed: sessions go on, new connections are admitted, cancels reach the
 * proxy's own sessions, a switch is refused with the reason (503). Redis comes back empty (no
 * persistence): the proxies write back the side and epoch they serve — not the default — and
 * flips work again, also for the sessions admitted during the outage.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { OwnRedis, startPair, startRedis, TestCluster } from '../harness/clusters';
import { ProxyProcess, spawnProxyProcess } from '../harness/proxy-process';
import { RawClient } from '../proxy/raw-client';
import { RedisStateStore } from '../../src/state/redis-store';
import { defaultConfig, merge, PgflipConfig } from '../../src/config';
import { ControllerHandle, startController } from '../../src/controller/wiring';

const TOKEN = 'outage-test-token-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let redis: OwnRedis;
let tmp: string;
let store: RedisStateStore;
let ctl: ControllerHandle | undefined;
const procs: ProxyProcess[] = [];
const clients: Client[] = [];
const clientErrors: string[] = [];

beforeAll(async () => {
  [pair, redis] = await Promise.all([startPair(), startRedis({ own: true })]);
  tmp = mkdtempSync(path.join(os.tmpdir(), 'pgflip-outage-'));
  for (const side of [pair.blue, pair.green]) await side.query(`CREATE TABLE whoami AS SELECT '${side.name}'::text AS side; CREATE TABLE notes (note text)`);
  store = await RedisStateStore.connect(redis.url, { prefix: redis.prefix });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  for (const p of procs) p.child.kill('SIGKILL');
  await ctl?.close();
  await store?.close();
  await redis?.stop();
  await pair?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function client(p: ProxyProcess, app: string): Promise<Client> {
  const c = new Client({ connectionString: p.url, application_name: app, connectionTimeoutMillis: 10_000 });
  c.on('error', (e) => clientErrors.push(`${app}: ${e.message}`));
  await c.connect();
  clients.push(c);
  return c;
}
const sideOf = async (c: Client) => (await c.query('SELECT side FROM whoami')).rows[0].side as string;
/** POST /switch on a proxy's admin port (with a pause deadline) or on the controller */
const postSwitch = (p: { admin: string }, target: string) => fetch(`${p.admin}/switch`, {
  method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
  body: JSON.stringify('child' in p ? { target, deadlineMs: 5000 } : { target }),
});

/** a CancelRequest for `c`'s session sent to proxy `via`: resolves with the SQLSTATE its pg_sleep ended with */
async function cancelThrough(c: Client, app: string, via: ProxyProcess, side: TestCluster): Promise<string> {
  const key = c as unknown as { processID: number; secretKey: number };
  const sleeping = c.query('SELECT pg_sleep(8)').then(() => 'finished', (e) => (e as { code: string }).code);
  for (let i = 0; i < 250; i++) {
    if ((await side.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = '${app}' AND query LIKE 'SELECT pg_sleep%' AND state = 'active'`)).length) break;
    await sleep(20);
  }
  const cancel = await RawClient.open(via.port);
  cancel.send(Buffer.from(serialize.cancel(key.processID, key.secretKey)));
  await cancel.waitClosed();
  return sleeping;
}

test('a Redis outage refuses only flips; an empty Redis is re-seeded from the fleet, not from the default', async () => {
  const a = await spawnProxyProcess({ id: 'proxy-a', pair, redis, dir: tmp, token: TOKEN });
  const b = await spawnProxyProcess({ id: 'proxy-b', pair, redis, dir: tmp, token: TOKEN });
  procs.push(a, b);
  const ca = await client(a, 'before-a');
  const cb = await client(b, 'before-b');
  // away from the default side, so that a re-seed from the default would show
  expect((await postSwitch(a, 'green')).status).toBe(200);
  expect(await store.getActive()).toEqual({ active: 'green', epoch: 1 });
  expect([await sideOf(ca), await sideOf(cb)]).toEqual(['green', 'green']);
  // a controller on the same Redis
  const cfg = merge(defaultConfig(), {
    blue: { url: pair.blue.url('app') }, green: { url: pair.green.url('app') }, redisUrl: redis.url,
    controller: { listen: { host: '127.0.0.1', port: 0 }, apiToken: TOKEN, backupDir: path.join(tmp, 'backups'), auditLog: path.join(tmp, 'audit.log') },
  }) as PgflipConfig;
  ctl = await startController(cfg, { prefix: redis.prefix, leaderWaitMs: 15_000 });
  const controller = { admin: ctl.url };

  await redis.kill();

  // sessions go on, on the side they are on
  await ca.query("INSERT INTO notes VALUES ('during outage, old session')");
  expect(await sideOf(cb)).toBe('green');
  // new sessions are admitted by both proxies
  const na = await client(a, 'during-a');
  const nb = await client(b, 'during-b');
  expect([await sideOf(na), await sideOf(nb)]).toEqual(['green', 'green']);
  await nb.query("INSERT INTO notes VALUES ('during outage, new session')");
  // a cancel for a session of this proxy needs no store
  expect(await cancelThrough(na, 'during-a', a, pair.green)).toBe('57014');
  // a switch is refused, with why
  const refused = await postSwitch(b, 'blue');
  expect(refused.status).toBe(503);
  expect(((await refused.json()) as { error: string }).error).toMatch(/^the state store is unreachable: switch to blue refused until it is back/);
  const refusedByController = await postSwitch(controller, 'blue');
  expect(refusedByController.status).toBe(503);
  expect(((await refusedByController.json()) as { error: string }).error).toMatch(/^the state store is unreachable: switch to blue refused/);
  expect(await sideOf(ca)).toBe('green');
  // each proxy says so once (at its next heartbeat), however long the outage lasts
  const OUTAGE = /state store unreachable: serving on the last committed side/g;
  for (let i = 0; i < 100 && ![a, b].every((p) => OUTAGE.test(p.logs())); i++) await sleep(50);
  await sleep(2500);

  // Redis comes back with nothing in it
  await redis.restart();
  let seeded = null;
  for (let i = 0; i < 200 && !seeded; i++) {
    seeded = await store.getActive().catch(() => null);
    if (!seeded) await sleep(50);
  }
  expect(seeded).toEqual({ active: 'green', epoch: 1 });
  // both proxies registered again: a flip reaches every session, also those admitted during the outage
  for (let i = 0; i < 100 && (await store.liveProxies()).length < 2; i++) await sleep(50);
  // the controller takes its lease again and switches
  let back: Response | undefined;
  for (let i = 0; i < 100; i++) {
    back = await postSwitch(controller, 'blue');
    if (back.status !== 409 && back.status !== 503) break;
    await sleep(100);
  }
  if (back!.status !== 200) throw new Error(`${back!.status} ${await back!.text()}`);
  expect(await back!.json()).toMatchObject({ active: 'blue', epoch: 2, changed: true });
  expect(await Promise.all([ca, cb, na, nb].map(sideOf))).toEqual(['blue', 'blue', 'blue', 'blue']);
  // the keys issued during the outage were claimed once Redis answered: a cancel crosses proxies again
  expect(await cancelThrough(na, 'during-a', b, pair.blue)).toBe('57014');

  expect((await pair.green.query('SELECT note FROM notes ORDER BY note')).map((r) => r.note))
    .toEqual(['during outage, new session', 'during outage, old session']);
  expect(clientErrors).toEqual([]);
  for (const p of [a, b]) {
    expect(p.logs().match(OUTAGE)).toHaveLength(1);
  }
  expect(a.logs() + b.logs()).toMatch(/wrote back the one this proxy serves/);
}, 120_000);

/**
 * Maintenance migrations: the controller holds every proxy of the fleet at
 * transaction boundaries (flip protocol over a real Redis), applies the file
 * on the active side, and resumes them on the same side — epoch unchanged.
 * The first tests' fleet members are the real FleetMember with a stand-in
 * proxy that records what the protocol made it do; the last one is a real
 * proxy with a client session held across the migration.
 */
import path from 'node:path';
import { copyFileSync } from 'node:fs';
import { Client } from 'pg';
import prom from 'prom-client';
import { startProxy } from '../../src/proxy';
import { RedisStateStore } from '../../src/state';
import { proxyConfigFor, PROXY_PASSWORD, PROXY_USER } from '../harness/proxy';
import { FleetMember } from '../../src/switch/fleet-member';
import { RecordingParticipant } from '../switch/recording-participant';
import { api, Env, ROOT, script, startEnv } from './helpers';

let env: Env;
let memberStore: RedisStateStore;
const members: FleetMember[] = [];

beforeAll(async () => {
  env = await startEnv({ redis: true, controller: { holdLimitSeconds: 5 } });
  memberStore = await RedisStateStore.connect(env.redis!.url, { prefix: env.redis!.prefix });
  await env.blue.query(`CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
    INSERT INTO users (id, name, email) SELECT g, 'u' || g, 'User' || g || '@Example.COM' FROM generate_series(1, 50) g`);
});
afterAll(async () => {
  for (const m of members) await m.stop().catch(() => undefined);
  await memberStore?.close();
  await env?.stop();
});

async function join(p: RecordingParticipant): Promise<void> {
  const m = new FleetMember(memberStore, p, { heartbeatMs: 200 });
  await m.start();
  members.push(m);
}

test('traffic is held while the file runs, then resumes on the same side; the epoch does not move', async () => {
  const events: Array<[string, number]> = [];
  const proxies = [new RecordingParticipant('proxy-a', { kind: 'pause' }, 3, (c) => events.push([c, Date.now()])), new RecordingParticipant('proxy-b')];
  for (const p of proxies) await join(p);
  const f = path.join(env.dir, '003_normalise_emails.sql');
  copyFileSync(path.join(ROOT, 'migrations', '003_normalise_emails.sql'), f);
  const r = await script('execute-migration.sh', ['--type', 'maintenance', '--yes', f], env.env);
  expect(r.stderr).toMatch(/hold traffic done — all proxies hold their sessions/);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/003_normalise_emails\.sql: completed — applied on blue with traffic held/);
  expect(await env.blue.query(`SELECT count(*)::int AS n FROM users WHERE email <> lower(email)`)).toEqual([{ n: 0 }]);
  for (const p of proxies) {
    expect(p.calls).toEqual(['adopt:blue:0', 'pause', 'abort']); // held, then released where they were
    expect(p).toMatchObject({ side: 'blue', epoch: 0, state: 'serving' });
  }
  expect(await env.ctl.store.getActive()).toEqual({ active: 'blue', epoch: 0 });
  // the statements ran inside the hold
  const [rec] = (await api(env, 'GET', '/migrations?limit=1')).body;
  const apply = rec.steps.find((s: { name: string }) => s.name === 'apply');
  const paused = events.find(([c]) => c === 'pause')![1];
  const resumed = events.find(([c]) => c === 'abort')![1];
  expect(Date.parse(apply.startedAt)).toBeGreaterThanOrEqual(paused - 50);
  expect(Date.parse(apply.finishedAt)).toBeLessThanOrEqual(resumed + 50);
  expect(rec.steps.map((s: { name: string; state: string }) => `${s.name}:${s.state}`))
    .toEqual(['validate:done', 'rollback point:done', 'hold traffic:done', 'apply:done', 'resume traffic:done']);
});

test('a proxy that cannot hold (sessions stay in a transaction) fails the migration before anything runs', async () => {
  const stuck = new RecordingParticipant('proxy-stuck', { kind: 'blocked', sessions: ['s1'] });
  await join(stuck);
  const r = await script('execute-migration.sh', ['--type', 'maintenance', '--yes', '--no-rollback', env.migration('020_touch.sql', "UPDATE users SET name = 'held' WHERE id = 1;\n")], env.env);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/020_touch\.sql: failed — could not hold traffic: proxy proxy-stuck: 1 session\(s\) could not be paused \(s1\); nothing applied, traffic resumed on blue/);
  expect(await env.blue.query(`SELECT name FROM users WHERE id = 1`)).toEqual([{ name: 'u1' }]);
  expect(stuck.state).toBe('serving');
  await members.pop()!.stop();
});

test('a file that fails while traffic is held: nothing applied, traffic resumed', async () => {
  const r = await script('execute-migration.sh', ['--type', 'maintenance', '--yes', '--no-rollback',
    env.migration('021_fails.sql', "UPDATE users SET name = 'x' WHERE id = 2;\nUPDATE users SET id = 1 WHERE id = 3;\n")], env.env);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/021_fails\.sql: failed — statement 2 \(line 2: UPDATE users SET id = 1 WHERE id = 3\) failed: duplicate key value violates unique constraint "users_pkey" \[SQLSTATE 23505\].*nothing applied.*; traffic resumed on blue/);
  expect(await env.blue.query(`SELECT name FROM users WHERE id = 2`)).toEqual([{ name: 'u2' }]);
  for (const m of members) expect(m).toBeDefined();
  expect(await env.ctl.store.getActive()).toEqual({ active: 'blue', epoch: 0 });
});

test('a client idle at a real proxy sends a query during the hold: it is answered after the migration, on the migrated data', async () => {
  for (const m of members.splice(0)) await m.stop();
  // a real proxy joined to the controller's fleet (same Redis, same prefix)
  const proxyStore = await RedisStateStore.connect(env.redis!.url, { prefix: env.redis!.prefix });
  const real = await startProxy(proxyConfigFor({ blue: env.blue, green: env.green }), { store: proxyStore, registry: new prom.Registry(), fleet: { heartbeatMs: 200 } });
  const client = new Client({ connectionString: `postgres://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${real.port}/app` });
  try {
    await client.connect();
    expect((await client.query(`SELECT email FROM users WHERE id = 4`)).rows).toEqual([{ email: 'user4@example.com' }]);
    await env.blue.query(`UPDATE users SET email = 'MIXED@Example.COM' WHERE id = 4`);
    const f = env.migration('022_slow.sql', "SELECT pg_sleep(1.5);\nUPDATE users SET email = lower(email) WHERE email <> lower(email);\n");
    const run = script('execute-migration.sh', ['--type', 'maintenance', '--yes', '--no-rollback', f], env.env);
    // wait until the statements run while traffic is held, then the idle client asks
    for (let i = 0; ; i++) {
      const [rec] = (await api(env, 'GET', '/migrations?limit=1')).body;
      if (rec?.name === '022_slow.sql' && rec.steps.some((s: { name: string; state: string }) => s.name === 'apply' && s.state === 'running')) break;
      if (i > 400) throw new Error('apply never started');
      await new Promise((r) => setTimeout(r, 25));
    }
    const asked = Date.now();
    const answer = await client.query(`SELECT email FROM users WHERE id = 4`);
    const answeredAt = Date.now();
    const r = await run;
    expect(r.code).toBe(0);
    // held, not refused: answered once the migration committed, with its result
    expect(answer.rows).toEqual([{ email: 'mixed@example.com' }]);
    const [rec] = (await api(env, 'GET', '/migrations?limit=1')).body;
    const applyEnd = Date.parse(rec.steps.find((s: { name: string }) => s.name === 'apply').finishedAt);
    expect(answeredAt).toBeGreaterThanOrEqual(applyEnd - 50);
    expect(answeredAt - asked).toBeGreaterThan(0);
    expect(real.activeSide).toBe('blue');
  } finally {
    await client.end().catch(() => undefined);
    await real.close();
    await proxyStore.close();
  }
});

test('the idle side down and a pinned session do not block maintenance: the hold prepares nothing there and moves nobody', async () => {
  for (const m of members.splice(0)) await m.stop();
  const proxyStore = await RedisStateStore.connect(env.redis!.url, { prefix: env.redis!.prefix });
  const real = await startProxy(proxyConfigFor({ blue: env.blue, green: env.green }), { store: proxyStore, registry: new prom.Registry(), fleet: { heartbeatMs: 200 } });
  const client = new Client({ connectionString: `postgres://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${real.port}/app` });
  const plain = new Client({ connectionString: `postgres://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${real.port}/app` });
  try {
    await client.connect();
    // a temporary table pins this session to its backend: a flip could not move it; a hold need not
    await client.query('CREATE TEMP TABLE scratch (n int); INSERT INTO scratch VALUES (1)');
    // and an ordinary session, which a flip would prepare a connection on green for
    await plain.connect();
    await plain.query('SELECT 1');
    await env.green.kill();
    const f = env.migration('023_idle_down.sql', "UPDATE users SET name = upper(name) WHERE id = 1;\n");
    const r = await script('execute-migration.sh', ['--type', 'maintenance', '--yes', '--no-rollback', f], env.env);
    expect(r.stderr).toMatch(/hold traffic done — all proxies hold their sessions/);
    expect(r.stdout).toMatch(/023_idle_down\.sql: completed — applied on blue with traffic held/);
    expect(r.code).toBe(0);
    expect((await client.query('SELECT (SELECT n FROM scratch) AS n, (SELECT name FROM users WHERE id = 1) AS name')).rows).toEqual([{ n: 1, name: 'U1' }]);
    expect((await plain.query('SELECT name FROM users WHERE id = 1')).rows).toEqual([{ name: 'U1' }]);
  } finally {
    await client.end().catch(() => undefined);
    await plain.end().catch(() => undefined);
    await real.close();
    await proxyStore.close();
    await env.green.restart();
  }
}, 60_000);

test('an apply that outlasts the proxies\' hold limit and then commits is recorded as applied, with the hold\'s early end said', async () => {
  env.cfg.controller.holdLimitSeconds = 1;
  await env.restart();
  try {
    await join(new RecordingParticipant('proxy-slow'));
    const f = env.migration('024_outlasts_hold.sql', "SELECT pg_sleep(3);\nUPDATE users SET name = 'outlasted' WHERE id = 2;\n");
    const r = await script('execute-migration.sh', ['--type', 'maintenance', '--yes', '--no-rollback', f], env.env);
    expect(r.stdout).toMatch(/024_outlasts_hold\.sql: completed — applied on blue; traffic was held only for part of it \(the proxies stopped holding at their limit \(controller\.holdLimitSeconds 1s\) before the apply finished\)/);
    expect(r.code).toBe(0);
    expect(await env.blue.query('SELECT name FROM users WHERE id = 2')).toEqual([{ name: 'outlasted' }]);
  } finally {
    for (const m of members.splice(0)) await m.stop();
    env.cfg.controller.holdLimitSeconds = 5;
    await env.restart();
  }
}, 60_000);

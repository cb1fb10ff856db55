/**
 * A rollback that cannot carry the new side's writes back does not happen: traffic stays on the
 * new side, where every acknowledged write is, and the migration ends failed with
 * "rollback impossible: …" (record, CLI exit code, /status, audit log, metric). A risky file
 * whose inverse is known to be impossible is refused before anything runs, unless --no-rollback.
 */
import prom from 'prom-client';
import { Client } from 'pg';
import { api, APP, Env, script, startEnv, useAppRole, waitFor } from './helpers';
import { startProxy } from '../../src/proxy';
import { RedisStateStore } from '../../src/state';
import { proxyConfigFor, PROXY_PASSWORD, PROXY_USER } from '../harness/proxy';

let env: Env;

beforeAll(async () => {
  env = await startEnv({ redis: true, controller: { watchWindowSeconds: 30, watchIntervalMs: 250, healthFailureLimit: 3 } });
  await useAppRole(env); // the application's role, fenced on the old side
  await env.blue.query(`
    CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL);
    INSERT INTO counters SELECT g, g FROM generate_series(1, 1000) g;
    CREATE TABLE legacy (id int PRIMARY KEY, note text, legacy text NOT NULL);
    INSERT INTO legacy SELECT g, 'n' || g, 'l' || g FROM generate_series(1, 100) g;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${APP.user};`);
});
afterAll(async () => { await env?.stop(); });

const slots = async () => [
  ...(await env.blue.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots')),
  ...(await env.green.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots')),
].map((r) => r.slot_name);

test('a risky file whose rollback would lose writes is refused, naming table, column and why; --no-rollback accepts it', async () => {
  const f = env.migration('040_drop_legacy.sql', 'ALTER TABLE legacy DROP COLUMN legacy;\n');
  const r = await script('execute-migration.sh', ['--type', 'risky', '--yes', f], env.env);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/040_drop_legacy\.sql: failed — refused: a rollback could not carry the writes made after the flip back to blue \(public\.legacy\.legacy: dropped column is NOT NULL without a default on the old side, so rows inserted after the flip cannot be written back\); make the change reversible, or run with --no-rollback/);
  expect(await env.green.query("SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'legacy'")).toEqual([{ n: 0 }]); // nothing ran
  expect(await env.ctl.store.getActive()).toMatchObject({ active: 'blue' });
  const dry = await script('execute-migration.sh', ['--type', 'risky', '--dry-run', '--no-rollback', f], env.env);
  expect(dry.stdout).toMatch(/040_drop_legacy\.sql: completed — dry run/);
  expect(dry.code).toBe(0);
}, 60_000);

test('int → bigint, then a value above 2^31 on the new side: the rollback is impossible, traffic stays there, nothing is lost', async () => {
  const proxyStore = await RedisStateStore.connect(env.redis!.url, { prefix: env.redis!.prefix });
  const proxy = await startProxy(proxyConfigFor({ blue: env.blue, green: env.green }), { store: proxyStore, registry: new prom.Registry(), fleet: { heartbeatMs: 200 } });
  env.cfg.controller.proxyAdminUrls = [`http://127.0.0.1:${proxy.adminPort}`];
  await env.restart();
  const c = new Client({ connectionString: `postgres://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${proxy.port}/app`, options: '-c pgflip.version=latest' }); // the new application version
  c.on('error', () => undefined); // the forced switch back at the end ends it: blue lacks its schema
  await c.connect();
  try {
    const f = env.migration('041_widen_counter.sql', 'ALTER TABLE counters ALTER COLUMN n TYPE bigint;\n');
    const run = script('execute-migration.sh', ['--type', 'risky', '--yes', f], env.env);
    for (let i = 0; i < 1200 && proxy.activeSide !== 'green'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(proxy.activeSide).toBe('green');
    // acknowledged on the new side: a value the old column cannot hold, and an ordinary one
    await c.query('INSERT INTO counters VALUES (5001, 3000000000), (5002, 7)');
    // then the application fails on the new side: the watch wants to roll back
    for (let i = 0; i < 80; i++) await c.query('SELECT 1/0').catch(() => undefined);
    const r = await run;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/041_widen_counter\.sql: failed — rollback impossible: the reverse stream cannot carry the writes made on green back to blue: .*out of range.*; traffic stays on green, where the migration is applied and every acknowledged write is \(the rollback was for: error rate/);

    // traffic stayed on the new side, with every acknowledged write; the application writes there
    expect(await env.ctl.store.getActive()).toMatchObject({ active: 'green' });
    expect(proxy.activeSide).toBe('green');
    expect((await c.query('SELECT n::text FROM counters WHERE id IN (5001, 5002) ORDER BY id')).rows).toEqual([{ n: '3000000000' }, { n: '7' }]);
    await c.query('INSERT INTO counters VALUES (5003, 4000000000)');
    // no replication slot left behind, in either direction
    expect(await slots()).toEqual([]);

    const [rec] = (await api(env, 'GET', '/migrations?limit=1')).body;
    expect(rec).toMatchObject({ state: 'failed', outcome: expect.stringMatching(/^rollback impossible: /) });
    expect(rec.steps.find((s: { name: string }) => s.name === 'roll back')).toMatchObject({ state: 'failed' });
    expect((await api(env, 'GET', '/status')).body).toMatchObject({ active: 'green', lastMigration: { id: rec.id, state: 'failed', outcome: rec.outcome } });
    expect(env.auditLines().find((l) => l.action === 'migration.finished' && l.target === rec.id)).toMatchObject({ outcome: 'failed', detail: { reason: expect.stringMatching(/^rollback impossible: /) } });
    const metrics = await (await fetch(`${env.ctl.url}/metrics`)).text();
    expect(metrics).toMatch(/^pgflip_rollback_impossible_total 1$/m);
    await waitFor(env, rec.id);

    // blue stopped receiving writes when the flip committed: a manual switch there is refused
    const back = await script('proxy-switch.sh', ['blue'], env.env);
    expect(back.code).toBe(1);
    expect(back.stderr).toMatch(/HTTP 409: blue is not in step with green \(041_widen_counter\.sql applied on green only\): it stopped receiving writes then, and a switch would serve old data; pass force to switch anyway/);
    expect(await env.ctl.store.getActive()).toMatchObject({ active: 'green' });
    // an operator who knows better says so
    const ended = new Promise<Error>((res) => c.once('error', res));
    const forced = await script('proxy-switch.sh', ['blue', '--force'], env.env);
    expect(forced.stdout).toMatch(/^active: blue \(epoch \d+/);
    expect(forced.code).toBe(0);
    // the new application version's session cannot go on on blue, which lacks its schema: ended, saying why
    expect((await ended).message).toMatch(/^pgflip: traffic went back to blue, which does not have the schema of migration 041_widen_counter\.sql that this session uses/);
  } finally {
    await c.end().catch(() => undefined);
    await proxy.close();
    await proxyStore.close();
  }
}, 180_000);

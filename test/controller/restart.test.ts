/**
 * A controller killed (SIGKILL) in the middle of a migration and started again
 * finds the unfinished migration in the state store (Redis) and resumes it or
 * rolls it back: never a half-applied file, never a leaked replication slot.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/pgcluster/local-cluster';
import { fence, isFenced } from '../../src/switch/fencing';
import { startPair, startRedis, TestCluster, TestRedis } from '../harness/clusters';
import { cli, ROOT, TOKEN } from './helpers';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let redis: TestRedis;
let dir: string;
let port: number;
let env: NodeJS.ProcessEnv;
let child: ChildProcess | undefined;

beforeAll(async () => {
  [pair, redis] = await Promise.all([startPair(), startRedis()]);
  dir = mkdtempSync(path.join(os.tmpdir(), 'pgflip-restart-'));
  port = await freePort();
  writeFileSync(path.join(dir, 'pgflip.yaml'), `controller:\n  lockTimeoutMs: 300\n  lockRetries: 1000\n  watchWindowSeconds: 1\n`);
  env = { PATH: process.env.PATH!, PGFLIP_CONTROLLER_URL: `http://127.0.0.1:${port}`, PGFLIP_API_TOKEN: TOKEN };
  await pair.blue.query(`CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 20000) g`);
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await Promise.all([pair?.stop(), redis?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function startControllerProcess(extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
  // a controller killed just before may not have exited yet and still hold the port: the new one would fail to listen
  const previous = child;
  if (previous && previous.exitCode === null && previous.signalCode === null) await new Promise((r) => previous.once('exit', r));
  child = spawn('node', [path.join(ROOT, 'dist/cli/main.js'), 'controller', '--config', path.join(dir, 'pgflip.yaml'), '--listen', `127.0.0.1:${port}`], {
    env: {
      PATH: process.env.PATH!, BLUE_DATABASE_URL: pair.blue.url(), GREEN_DATABASE_URL: pair.green.url(), REDIS_URL: redis.url,
      PGFLIP_API_TOKEN: TOKEN, PGFLIP_BACKUP_DIR: path.join(dir, 'backups'), PGFLIP_AUDIT_LOG: path.join(dir, 'audit.log'), ...extraEnv,
    },
    stdio: 'ignore',
  });
  for (let i = 0; i < 300; i++) {
    if (await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('controller did not start');
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const get = async (p: string): Promise<any> => (await fetch(`http://127.0.0.1:${port}${p}`)).json();
async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 40_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch((err: Error) => { if (/ended early/.test(err.message)) throw err; return undefined; });
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify((await get('/migrations?limit=1').catch(() => []))[0] ?? null).slice(0, 1500)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ENDED = ['completed', 'failed', 'rolled_back', 'aborted'];

/** the migration's record once it has ended */
function ended(id: string, what: string, ms?: number) {
  return until(what, async () => {
    const r = await get(`/migrations/${id}`);
    return ENDED.includes(r.state) ? r : undefined;
  }, ms);
}

/** the newest migration's record once it is `name` with a step `step` (in `state`, if given); fails if it ends first */
function atStep(name: string, step: string, state?: string) {
  return until(`${name}: ${step}`, async () => {
    const [r] = await get('/migrations?limit=1');
    if (r?.name !== name) return undefined;
    if (ENDED.includes(r.state)) throw new Error(`ended early: ${r.outcome}`);
    return r.steps.some((s: { name: string; state: string }) => s.name === step && (!state || s.state === state)) ? r : undefined;
  });
}

test('killed during a statement-by-statement file: the restarted controller resumes after the last committed statement', async () => {
  await startControllerProcess();
  const holder = await pair.blue.connect();
  await holder.query('BEGIN; LOCK users IN ACCESS SHARE MODE');
  const file = path.join(dir, '040_two_steps.sql');
  writeFileSync(file, 'CREATE TABLE step_one (id int PRIMARY KEY);\nCREATE INDEX CONCURRENTLY users_name_idx ON users (name);\nALTER TABLE users ADD COLUMN step_three text;\n');
  const run = cli(['migrate', '--type', 'safe', '--no-rollback', file], env);
  // statement 3 waits for the lock (retrying); statements 1 and 2 are committed
  const rec = await until('statement 3 blocked', async () => {
    const [r] = await get('/migrations?limit=1');
    return r?.statements?.committed === 2 && r.warnings.some((w: string) => /lock timeout on statement 3/.test(w)) ? r : undefined;
  });
  child!.kill('SIGKILL');
  expect((await run).code).toBe(1); // the client lost its controller
  await holder.query('COMMIT');
  await startControllerProcess();
  const done = await ended(rec.id, 'resumed migration ended');
  expect(done.outcome).toBe('applied on blue (active)');
  expect(done).toMatchObject({ state: 'completed', statements: { total: 3, committed: 3, mode: 'statements' } });
  expect(done.warnings).toContain('the controller restarted during apply');
  expect(await pair.blue.query(`SELECT to_regclass('step_one')::text AS a, to_regclass('users_name_idx')::text AS b`)).toEqual([{ a: 'step_one', b: 'users_name_idx' }]);
  expect((await pair.blue.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'step_three'`))).toHaveLength(1);
  expect(await pair.blue.query(`SELECT name, migration_id FROM pgflip.migrations`)).toEqual([{ name: '040_two_steps.sql', migration_id: rec.id }]);
});

test('killed during a risky migration before its flip: the restarted controller rolls it back and drops its slots', async () => {
  const file = path.join(dir, '041_drop_column.sql');
  writeFileSync(file, 'ALTER TABLE users DROP COLUMN step_three;\n');
  const run = cli(['migrate', '--type', 'risky', '--yes', '--no-rollback', '--switch-delay', '60', file], env);
  // the idle side is copied, migrated and streaming when the controller dies
  const rec = await atStep('041_drop_column.sql', 'switch delay');
  expect((await pair.blue.query(`SELECT count(*)::int AS n FROM pg_replication_slots`))).toEqual([{ n: 1 }]);
  child!.kill('SIGKILL');
  await run;
  await startControllerProcess();
  const done = await ended(rec.id, 'recovered');
  expect(done.state).toBe('rolled_back');
  expect(done.outcome).toMatch(/the controller restarted during .*; the idle side's sync state was discarded, blue unchanged/);
  for (const side of [pair.blue, pair.green]) {
    expect(await side.query(`SELECT slot_name FROM pg_replication_slots`)).toEqual([]);
    expect(await side.query(`SELECT pubname FROM pg_publication`)).toEqual([]);
  }
  expect(await get('/status')).toMatchObject({ active: 'blue', epoch: 0, migration: null });
  expect((await pair.blue.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'step_three'`))).toHaveLength(1);
});

test('killed after the flip: the restarted controller carries the new side\'s writes back before rolling back', async () => {
  child?.kill('SIGKILL');
  // a long watch window: the controller is killed while it watches the new side
  writeFileSync(path.join(dir, 'pgflip.yaml'), `controller:\n  lockTimeoutMs: 300\n  lockRetries: 1000\n  watchWindowSeconds: 300\n`);
  await startControllerProcess();
  // the killed controller's leader lease has to expire first
  await until('leadership', async () => ((await get('/status')).leader ? true : undefined));
  const file = path.join(dir, '042_rename_column.sql');
  writeFileSync(file, 'ALTER TABLE users RENAME COLUMN name TO full_name;\n');
  const run = cli(['migrate', '--type', 'risky', '--yes', file], env);
  const rec = await atStep('042_rename_column.sql', 'watch', 'running');
  expect(await get('/status')).toMatchObject({ active: 'green' });
  child!.kill('SIGKILL');
  await run;
  // the application keeps writing to the new side while no controller runs
  await pair.green.query(`INSERT INTO users (id, full_name) VALUES (900001, 'written while the controller was down')`);
  await pair.green.query(`UPDATE users SET full_name = 'changed while the controller was down' WHERE id = 7`);
  await pair.green.query(`DELETE FROM users WHERE id = 8`);
  await startControllerProcess();
  const done = await ended(rec.id, 'recovered', 60_000);
  expect(done.state).toBe('rolled_back');
  expect(done.warnings.filter((w: string) => !w.startsWith('lock_timeout is not set'))).toEqual(['the controller restarted during watch']);
  expect(done.outcome).toBe('rolled back to blue: the controller restarted after the flip; the writes made on green since the flip were synced back first');
  // the outage's backlog is applied while writes still run, before the rollback flip holds them
  expect(done.steps.slice(-2).map((s: { name: string; state: string }) => [s.name, s.state])).toEqual([['reverse catch-up', 'done'], ['roll back', 'done']]);
  expect(await get('/status')).toMatchObject({ active: 'blue', migration: null });
  // the old side has the writes, under its own column name
  expect(await pair.blue.query(`SELECT id, name FROM users WHERE id IN (7, 8, 900001) ORDER BY id`)).toEqual([
    { id: 7, name: 'changed while the controller was down' },
    { id: 900001, name: 'written while the controller was down' },
  ]);
  for (const side of [pair.blue, pair.green]) {
    expect(await side.query(`SELECT slot_name FROM pg_replication_slots`)).toEqual([]);
    expect(await side.query(`SELECT pubname FROM pg_publication`)).toEqual([]);
  }
}, 120_000);

test('a controller that died in a flip\'s pause after fencing the side it was leaving: the next one lifts that fence', async () => {
  child?.kill('SIGKILL');
  // the application's role, whose writes fencing takes away (roles are per cluster: both sides have it)
  await pair.green.query(`CREATE ROLE app_rw LOGIN PASSWORD 'pw'`);
  await pair.blue.query(`CREATE ROLE app_rw LOGIN PASSWORD 'pw'; GRANT INSERT, SELECT ON users TO app_rw`);
  // what the dead controller did inside the pause, before its commit that never came
  await fence(pair.blue.url(), { roles: ['app_rw'], database: 'app' });
  expect(await isFenced(pair.blue.url(), 'app')).toBe(true);
  await startControllerProcess({ DB_USER: 'app_rw' });
  expect(await get('/status')).toMatchObject({ active: 'blue' });
  await until('the fence lifted', async () => (!(await isFenced(pair.blue.url(), 'app')) ? true : undefined));
  const app = new URL(pair.blue.url());
  app.username = 'app_rw';
  app.password = 'pw';
  const { Client } = await import('pg');
  const c = new Client({ connectionString: app.toString() });
  await c.connect();
  try {
    await c.query(`INSERT INTO users (id) VALUES (910001)`);
  } finally { await c.end(); }
  const audit = readFileSync(path.join(dir, 'audit.log'), 'utf8');
  expect(audit).toMatch(/"action":"fence\.lift","target":"blue"/);
});

test('killed after the flip of a --no-rollback migration: the restarted controller finishes it on the new side', async () => {
  child?.kill('SIGKILL');
  await startControllerProcess();
  await until('leadership', async () => ((await get('/status')).leader ? true : undefined));
  const file = path.join(dir, '043_rename_for_good.sql');
  writeFileSync(file, 'ALTER TABLE users RENAME COLUMN name TO display_name;\n');
  const run = cli(['migrate', '--type', 'risky', '--yes', '--no-rollback', file], env);
  const rec = await atStep('043_rename_for_good.sql', 'watch', 'running');
  child!.kill('SIGKILL');
  await run;
  await startControllerProcess();
  const done = await ended(rec.id, 'recovered', 60_000);
  expect(done).toMatchObject({ state: 'completed', outcome: 'switched to green; the controller restarted during watch and finished it' });
  expect(await get('/status')).toMatchObject({ active: 'green', migration: null });
  expect(await pair.green.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'display_name'`)).toEqual([{ n: 1 }]);
  for (const side of [pair.blue, pair.green]) expect(await side.query(`SELECT slot_name FROM pg_replication_slots`)).toEqual([]);
}, 120_000);

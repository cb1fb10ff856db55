/**
 * `pgflip up` as a newcomer runs it: the built CLI, one JSON line on stdout,
 * an application connecting through the proxy, the controller's API, a clean
 * stop on SIGTERM, and a restart on the same data directory.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { alive, api, gone, migrate, postmasterPid as serverPid, ROOT, runCli, Running, startUp, stopUp, tempDataDir, UpRun } from './helpers';

const dir = tempDataDir('pgflip-up-test-');
const dataDir = path.join(dir, 'data');
const running: Running[] = [];

afterAll(async () => {
  for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) await stopUp(r);
  rmSync(dir, { recursive: true, force: true });
});

const up = async (extra: string[] = []): Promise<UpRun> => {
  const r = await startUp(dataDir, extra);
  running.push(r);
  return r;
};

async function query<T = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try { return (await c.query(sql, params)).rows as T[]; } finally { await c.end(); }
}

const postmasterPid = (side: 'blue' | 'green') => serverPid(dataDir, side);

test('up --json: one line with real ports, SCRAM through the proxy, an authenticated API, a clean stop on SIGTERM', async () => {
  const r = await up();
  const { info } = r;
  expect(Object.keys(info).sort()).toEqual(['apiToken', 'appUrl', 'blueUrl', 'controllerUrl', 'greenUrl']);
  // --proxy-port 0 / --api-port 0: the ports actually bound, not 0
  const app = new URL(info.appUrl);
  expect(Number(app.port)).toBeGreaterThan(0);
  expect(Number(new URL(info.controllerUrl).port)).toBeGreaterThan(0);
  for (const u of [info.blueUrl, info.greenUrl]) expect(Number(new URL(u).port)).toBeGreaterThan(0);
  expect(info.apiToken.length).toBeGreaterThanOrEqual(16);

  // the application: SCRAM at the proxy (a wrong password is refused), its own role on the backend
  expect(await query(info.appUrl, 'SELECT current_user AS u, current_database() AS d')).toEqual([{ u: 'app', d: 'app' }]);
  const wrong = new URL(info.appUrl);
  wrong.password = 'not-the-password';
  await expect(query(wrong.toString(), 'SELECT 1')).rejects.toMatchObject({ code: '28P01' });

  // the controller: /health without a token; a POST without or with a wrong token is refused
  const health = await api(info, 'GET', '/health', undefined, null);
  expect(health.status).toBe(200);
  expect(Object.keys(health.body.components)).toEqual(expect.arrayContaining(['controller', 'blue', 'green']));
  const sql = readFileSync(path.join(ROOT, 'migrations/000_example_schema.sql'), 'utf8');
  expect((await api(info, 'POST', '/migrations', { name: '000_example_schema.sql', sql, type: 'safe' }, null)).status).toBe(401);
  expect((await api(info, 'POST', '/migrations', { name: '000_example_schema.sql', sql, type: 'safe' }, 'wrong-token-0123456789')).status).toBe(403);
  expect((await api(info, 'GET', '/migrations')).body).toEqual([]);
  // with the token: the example schema, usable by the application through the proxy
  const rec = await migrate(info, '000_example_schema.sql', sql, 'safe');
  expect(rec.state).toBe('completed');
  await query(info.appUrl, `INSERT INTO users (name, email) VALUES ('kept', 'kept@example.com')`);

  // stdout is the one line; the logs on stderr carry no secret
  expect(r.stdout().trim().split('\n')).toHaveLength(1);
  expect(r.stderr()).toMatch(/controller listening/);
  for (const secret of [info.apiToken, decodeURIComponent(app.password)]) expect(r.stderr()).not.toContain(secret);

  const pids = (['blue', 'green'] as const).map(postmasterPid);
  expect(pids.every((p) => p !== undefined && alive(p))).toBe(true);
  expect(await stopUp(r)).toEqual({ code: 0, signal: null });
  for (const side of ['blue', 'green'] as const) expect(postmasterPid(side)).toBeUndefined();
  for (const p of pids) expect(await gone(p!)).toBe(true);
}, 120_000);

test('a second up on the same data dir keeps the clusters and secrets; after a risky migration the next one serves the new side', async () => {
  const first = (running[0] as UpRun).info;
  const r = await up(['--watch-seconds', '1']);
  expect(r.info.apiToken).toBe(first.apiToken); // no --api-token: the one kept in the data dir
  expect(new URL(r.info.appUrl).password).toBe(new URL(first.appUrl).password);
  expect(await query(r.info.appUrl, `SELECT email FROM users WHERE name = 'kept'`)).toEqual([{ email: 'kept@example.com' }]);
  // the ledger survived too: the same file again is skipped, not re-run
  const sql = readFileSync(path.join(ROOT, 'migrations/000_example_schema.sql'), 'utf8');
  expect(await migrate(r.info, '000_example_schema.sql', sql, 'safe')).toMatchObject({ state: 'completed', outcome: expect.stringMatching(/already applied/) });

  const drop = readFileSync(path.join(ROOT, 'migrations/002_drop_unused_table.sql'), 'utf8');
  const risky = await migrate(r.info, '002_drop_unused_table.sql', drop, 'risky');
  expect(risky).toMatchObject({ state: 'completed', outcome: 'switched to green' });

  // one up per data dir: a second one says so and leaves the first alone
  const second = runCli(['up', '--json', '--data-dir', dataDir, '--proxy-port', '0', '--api-port', '0']);
  expect((await second.exited).code).toBe(1);
  expect(second.stderr()).toContain(`pgflip: --data-dir ${dataDir} is in use by another pgflip up (pid ${r.child.pid})`);
  expect((await api(r.info, 'GET', '/health')).status).toBe(200);

  // killed outright: no clean stop, its PostgreSQL servers keep running
  const orphans = (['blue', 'green'] as const).map(postmasterPid);
  r.child.kill('SIGKILL');
  await r.exited;
  expect(orphans.every((p) => p !== undefined && alive(p))).toBe(true);

  // the next up takes the data dir over (restarting the servers) and serves green,
  // the side the flip committed (blue is the stale, fenced old side)
  const again = await up();
  for (const p of orphans) expect(await gone(p!)).toBe(true);
  expect((await api(again.info, 'GET', '/status')).body).toMatchObject({ active: 'green' });
  expect(await query(again.info.appUrl, `SELECT to_regclass('legacy_sessions') AS t`)).toEqual([{ t: null }]);
  await query(again.info.appUrl, `INSERT INTO users (name, email) VALUES ('after-restart', 'a@example.com')`);
  expect(await query(again.info.greenUrl, `SELECT name FROM users WHERE name IN ('kept', 'after-restart') ORDER BY name`))
    .toEqual([{ name: 'after-restart' }, { name: 'kept' }]);
  expect(await stopUp(again)).toEqual({ code: 0, signal: null });
  for (const side of ['blue', 'green'] as const) expect(postmasterPid(side)).toBeUndefined();
}, 150_000);

test('bad flags are usage errors (exit 2) naming the option; nothing is started', async () => {
  const bad = runCli(['up', '--data-dir', path.join(dir, 'never'), '--api-port', '99999']);
  expect((await bad.exited).code).toBe(2);
  expect(bad.stderr()).toMatch(/option '--api-port <n>' argument '99999' is invalid\. expected a port from 0 to 65535/);
  const watch = runCli(['up', '--data-dir', path.join(dir, 'never'), '--watch-seconds', 'soon']);
  expect((await watch.exited).code).toBe(2);
  expect(watch.stderr()).toMatch(/option '--watch-seconds <n>' argument 'soon' is invalid/);
  expect(existsSync(path.join(dir, 'never'))).toBe(false);
});

test('a data dir below a private directory: refused with the reason when root (PostgreSQL then runs as "postgres"), used otherwise', async () => {
  const priv = mkdtempSync(path.join(os.tmpdir(), 'pgflip-up-private-')); // mode 0700
  try {
    const target = path.join(priv, 'data');
    if (process.getuid?.() === 0) {
      const r = runCli(['up', '--json', '--data-dir', target, '--proxy-port', '0', '--api-port', '0']);
      expect((await r.exited).code).toBe(1);
      expect(r.stderr()).toContain(`pgflip: --data-dir ${target}: running as root, pgflip runs PostgreSQL as the "postgres" OS user, which cannot reach this directory`);
      expect(r.stdout()).toBe('');
    } else {
      const r = await startUp(target);
      expect(await query(r.info.appUrl, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
      expect(await stopUp(r)).toEqual({ code: 0, signal: null });
    }
  } finally {
    rmSync(priv, { recursive: true, force: true });
  }
}, 60_000);

test('without --json: the URLs, the token and commands that work as printed', async () => {
  const d = path.join(dir, 'plain');
  const r = runCli(['up', '--data-dir', d, '--proxy-port', '0', '--api-port', '0', '--watch-seconds', '1']);
  running.push(r);
  for (let i = 0; i < 900 && !/Ctrl-C stops everything/.test(r.stdout()); i++) await new Promise((res) => setTimeout(res, 100));
  const out = r.stdout();
  expect(out).toMatch(/^pgflip is up\.$/m);
  expect(out).toMatch(/application URL +postgres:\/\/app:[^@]+@127\.0\.0\.1:[1-9]\d*\/app$/m);
  const exported = /^ {2}export PGFLIP_CONTROLLER_URL=(\S+) PGFLIP_API_TOKEN=(\S+)$/m.exec(out);
  expect(exported).not.toBeNull();
  const env = { ...process.env, PGFLIP_CONTROLLER_URL: exported![1], PGFLIP_API_TOKEN: exported![2] };
  const commands = [...out.matchAll(/^ {2}(scripts\/migration\/execute-migration\.sh .*)$/gm)].map((m) => m[1]);
  expect(commands).toHaveLength(2);
  for (const cmd of commands) {
    const [file, ...args] = cmd.split(' ');
    const res = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(path.join(ROOT, file), args, { cwd: ROOT, env }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    });
    expect(res).toMatchObject({ code: 0, stdout: expect.stringMatching(/: completed — /) });
  }
  expect(await stopUp(r)).toEqual({ code: 0, signal: null });
}, 120_000);

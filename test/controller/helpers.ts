/**
 * A controller on a real blue/green pair for the controller's tests, and the
 * CLI / scripts as a user runs them (child processes of the built dist/).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { defaultConfig, merge, PgflipConfig } from '../../src/config';
import { startController, ControllerHandle, StartOptions } from '../../src/controller/wiring';
import { startPair, startRedis, TestCluster, TestRedis } from '../harness/clusters';

const run = promisify(execFile);
export const ROOT = path.resolve(__dirname, '../..');
export const TOKEN = 'test-token-0123456789abcdef';

export interface Env {
  blue: TestCluster;
  green: TestCluster;
  redis?: TestRedis;
  dir: string;
  cfg: PgflipConfig;
  ctl: ControllerHandle;
  /** env for the CLI and scripts */
  env: NodeJS.ProcessEnv;
  migration(name: string, sql: string): string;
  auditLines(): Array<Record<string, unknown>>;
  restart(opts?: StartOptions): Promise<void>;
  stop(): Promise<void>;
}

export async function startEnv(o: { redis?: boolean; controller?: Partial<PgflipConfig['controller']>; start?: StartOptions } = {}): Promise<Env> {
  const [pair, redis] = await Promise.all([startPair(), o.redis ? startRedis() : Promise.resolve(undefined)]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgflip-ctl-'));
  const cfg = merge(defaultConfig(), {
    blue: { url: pair.blue.url() },
    green: { url: pair.green.url() },
    redisUrl: redis?.url,
    controller: {
      listen: { host: '127.0.0.1', port: 0 },
      apiToken: TOKEN,
      backupDir: path.join(dir, 'backups'),
      auditLog: path.join(dir, 'audit.log'),
      lockTimeoutMs: 200,
      lockRetries: 3,
      watchWindowSeconds: 2,
      watchIntervalMs: 250,
      // the validate step's trace has tests of its own (validate-trace.test.ts); the others skip its seconds
      trace: 'off',
      ...o.controller,
    },
  }) as PgflipConfig;
  const startOpts = { prefix: redis?.prefix, leaderWaitMs: 15_000, ...o.start };
  let ctl = await startController(cfg, startOpts);
  const env: Env = {
    blue: pair.blue, green: pair.green, redis, dir, cfg, ctl,
    env: { ...process.env, PGFLIP_CONTROLLER_URL: ctl.url, PGFLIP_API_TOKEN: TOKEN, NODE_ENV: 'test' },
    migration(name, sql) { const f = path.join(dir, name); writeFileSync(f, sql); return f; },
    auditLines() {
      try { return readFileSync(cfg.controller.auditLog, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)); } catch { return []; }
    },
    async restart(opts) {
      await env.ctl.close();
      ctl = await startController({ ...cfg, controller: { ...cfg.controller, listen: { host: '127.0.0.1', port: env.ctl.port } } }, { ...startOpts, ...opts });
      env.ctl = ctl;
    },
    async stop() {
      await env.ctl.close().catch(() => undefined);
      await Promise.all([pair.stop(), redis?.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

export interface Ran { code: number; stdout: string; stderr: string }

/** Runs a built CLI command or a script, never throwing on a non-zero exit. */
export async function runCmd(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Ran> {
  try {
    const r = await run(file, args, { env, cwd: ROOT, timeout: 120_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

export const cli = (args: string[], env: NodeJS.ProcessEnv) => runCmd('node', [path.join(ROOT, 'dist/cli/main.js'), ...args], env);
export const script = (name: string, args: string[], env: NodeJS.ProcessEnv) => runCmd(path.join(ROOT, 'scripts/migration', name), args, env);

/** Schema of a database as pg_dump prints it, for before/after comparisons. */
export async function schemaDump(c: TestCluster): Promise<string> {
  const { connectionArgs } = await import('../../src/controller/rollback-points');
  const { clientTool } = await import('../../src/pgcluster/binaries');
  const conn = connectionArgs(c.url());
  const r = await run(clientTool('pg_dump'), ['--schema-only', '--no-password', '--dbname', conn.dbname], { env: conn.env });
  return r.stdout.replace(/^\\(un)?restrict .*$/gm, ''); // a random key per dump
}

export async function api(env: Env, method: 'GET' | 'POST', p: string, body?: unknown, token: string | null = TOKEN): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const send = () => fetch(env.ctl.url + p, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  // after env.restart() a kept-alive socket to the controller that closed can be picked before its close is seen:
  // the request never reached a server, so it is sent again once
  const res = await send().catch((err: { cause?: { code?: string } }) => {
    if (err.cause?.code === 'UND_ERR_SOCKET') return send();
    throw err;
  });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = JSON.parse(text); } catch { /* text */ }
  return { status: res.status, body: parsed };
}

export async function waitFor(env: Env, id: string, timeoutMs = 60_000): Promise<any> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await api(env, 'GET', `/migrations/${id}`);
    if (['completed', 'failed', 'aborted', 'rolled_back'].includes(r.body.state)) return r.body;
    if (Date.now() > end) throw new Error(`migration ${id} still ${r.body.state}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** The application's own role (the one fencing binds), as the controller tests use it. */
export const APP = { user: 'app', password: 'apppass' };

/** Makes APP the application's role of `env`'s controller and creates it on both sides. */
export async function useAppRole(env: Env): Promise<void> {
  env.cfg.app.user = APP.user;
  await env.restart();
  for (const side of [env.blue, env.green]) await side.query(`CREATE ROLE ${APP.user} LOGIN PASSWORD '${APP.password}'`, [], 'postgres');
}

/**
 * docker-compose.migrations.yml and the Dockerfile, checked without a Docker
 * engine: the YAML's services, health checks and environment, then the
 * controller service's own command run as a plain process against real
 * clusters and Redis with the environment the file gives it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { freePort } from '../../src/pgcluster/local-cluster';
import { startPair, startRedis } from '../harness/clusters';
import { ROOT, TOKEN } from './helpers';

type Service = { image?: string; build?: string; command?: string[]; environment?: Record<string, string>; healthcheck?: { test: string[] }; depends_on?: Record<string, { condition: string }>; ports?: string[] };

const compose = YAML.parse(readFileSync(path.join(ROOT, 'docker-compose.migrations.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;

/** ${VAR}, ${VAR:-default} and ${VAR:?message} as docker compose substitutes them. */
function interpolate(v: string, env: Record<string, string>): string {
  return v.replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_m, name: string, op?: string, arg?: string) => {
    if (env[name]) return env[name];
    if (op === '-') return arg ?? '';
    if (op === '?') throw new Error(`${name}: ${arg}`);
    return '';
  });
}

test('five services with health checks; both sides decode logically; the pgflip services wait for healthy dependencies', () => {
  expect(Object.keys(services).sort()).toEqual(['migration-controller', 'migration-proxy', 'postgres-blue', 'postgres-green', 'redis']);
  for (const [name, s] of Object.entries(services)) expect([name, Array.isArray(s.healthcheck?.test)]).toEqual([name, true]);
  for (const side of ['postgres-blue', 'postgres-green']) {
    expect(services[side].command).toEqual(expect.arrayContaining(['postgres', 'wal_level=logical']));
    expect(services[side].healthcheck!.test.join(' ')).toMatch(/pg_isready/);
  }
  for (const name of ['migration-proxy', 'migration-controller']) {
    const s = services[name];
    expect(s.build).toBe('.');
    for (const dep of ['postgres-blue', 'postgres-green', 'redis']) expect(s.depends_on?.[dep]).toEqual({ condition: 'service_healthy' });
    for (const key of ['BLUE_DATABASE_URL', 'GREEN_DATABASE_URL', 'DB_NAME', 'DB_USER', 'DB_PASSWORD', 'REDIS_URL']) expect(Object.keys(s.environment!)).toContain(key);
  }
  const ctl = services['migration-controller'];
  for (const key of ['PGFLIP_API_TOKEN', 'PGFLIP_BACKUP_DIR']) expect(Object.keys(ctl.environment!)).toContain(key);
  expect(ctl.depends_on?.['migration-proxy']).toEqual({ condition: 'service_healthy' });
  // the token is required, not defaulted
  expect(() => interpolate(ctl.environment!.PGFLIP_API_TOKEN, {})).toThrow(/PGFLIP_API_TOKEN/);
  // the proxy reaches the sides as the application's role, the controller as their superuser
  expect(interpolate(services['migration-proxy'].environment!.BLUE_DATABASE_URL, {})).toBe('postgres://app:apppass@postgres-blue:5432/app');
  expect(interpolate(ctl.environment!.BLUE_DATABASE_URL, {})).toBe('postgres://postgres:postgres@postgres-blue:5432/app');
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  expect(dockerfile).toMatch(/ENTRYPOINT \["node", "\/app\/dist\/cli\/main\.js"\]/);
  expect(dockerfile).toMatch(/COPY proxy\/pgflip\.yaml \/etc\/pgflip\/pgflip\.yaml/);
  expect(dockerfile).toMatch(/postgresql-client/);
});

test('the controller service\'s command runs as a plain process with the file\'s environment and stops cleanly', async () => {
  const [pair, redis] = await Promise.all([startPair(), startRedis()]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgflip-compose-'));
  try {
    const ctl = services['migration-controller'];
    const port = await freePort();
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(ctl.environment!)) env[k] = interpolate(v, { PGFLIP_API_TOKEN: TOKEN });
    // the containers' hosts become the test's processes
    env.BLUE_DATABASE_URL = pair.blue.url();
    env.GREEN_DATABASE_URL = pair.green.url();
    env.REDIS_URL = redis.url;
    env.PGFLIP_BACKUP_DIR = path.join(dir, 'backups');
    env.PGFLIP_AUDIT_LOG = path.join(dir, 'audit.log');
    env.PGFLIP_PROXY_ADMIN_URLS = 'http://127.0.0.1:1';
    const args = ctl.command!.map((a) => (a === '/etc/pgflip/pgflip.yaml' ? path.join(ROOT, 'proxy/pgflip.yaml') : a === '0.0.0.0:8080' ? `127.0.0.1:${port}` : a));
    expect(args.slice(0, 1)).toEqual(['controller']);
    const child = spawn('node', [path.join(ROOT, 'dist/cli/main.js'), ...args], { env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // /health answers as soon as the HTTP server listens; the "listening" line follows once the
    // controller holds the leader lock and has checked for unfinished work
    const listening = new RegExp(`pgflip controller listening on http://127\\.0\\.0\\.1:${port} \\(state store: redis\\)`);
    let health: { status: string } | undefined;
    for (let i = 0; i < 300 && !(health && listening.test(out)); i++) {
      await new Promise((r) => setTimeout(r, 100));
      health ??= await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.json() as Promise<{ status: string }>, () => undefined);
    }
    expect(out).toMatch(listening);
    expect(health).toMatchObject({ status: 'ok' });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  } finally {
    await Promise.all([pair.stop(), redis.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad controller config stops start-up with one line naming the key', async () => {
  const { cli } = await import('./helpers');
  const r = await cli(['controller', '--listen', '127.0.0.1:0'], { PATH: process.env.PATH!, BLUE_DATABASE_URL: 'postgres://x@127.0.0.1:1/app', GREEN_DATABASE_URL: 'postgres://x@127.0.0.1:1/app', PGFLIP_API_TOKEN: 'short' });
  expect(r.code).toBe(1);
  expect(r.stderr).toBe('pgflip: config controller.apiToken: must be at least 16 characters\n');
});

test('docker-compose accepts the file (config is checked without an engine)', () => {
  // Debian's docker-compose (installed by .ci/run) validates and interpolates locally
  const run = (env: Record<string, string>) => spawnSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.migrations.yml'), 'config', '-q'],
    { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
  const ok = run({ PGFLIP_API_TOKEN: TOKEN });
  expect(ok.error).toBeUndefined();
  expect([ok.status, ok.stderr]).toEqual([0, '']);
  // without the token the file refuses to produce a controller
  const missing = run({});
  expect(missing.status).not.toBe(0);
  expect(missing.stderr).toMatch(/PGFLIP_API_TOKEN/);
});

/**
 * Real PostgreSQL clusters and a real Redis for integration tests.
 *
 * Every cluster lives in its own directory under REGISTRY_ROOT, named after the
 * test run, so the global teardown (and the next run) can stop and delete any
 * cluster a crashed or timed-out test left behind.
 */
import { ChildProcess, spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { freePort, LocalCluster } from '../../src/pgcluster/local-cluster';

export const REGISTRY_ROOT = path.join(os.tmpdir(), 'pgflip-test-clusters');

export function runId(): string {
  return process.env.PGFLIP_TEST_RUN ?? `solo${process.pid}`;
}

export interface TestCluster {
  name: string;
  cluster: LocalCluster;
  port: number;
  /** superuser URL of the given database (default `app`, created at start). */
  url(database?: string): string;
  /** a connected superuser client; closed by stop(). */
  connect(database?: string): Promise<Client>;
  /** run SQL as superuser on `app` (or another database) and return rows. */
  query<T extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[], database?: string): Promise<T[]>;
  /** stop the server but keep its files (crash simulation: mode immediate). */
  kill(): Promise<void>;
  /** start again after kill(). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<TestCluster>();
const liveRedis = new Set<ChildProcess>();

// Last resort when a worker exits without afterAll (timeouts kill the worker's
// pending hooks, not its exit handlers): signal the postmasters synchronously.
process.on('exit', () => {
  for (const c of live) {
    const pid = c.cluster.postmasterPid();
    if (pid) try { process.kill(pid, 'SIGQUIT'); } catch { /* gone */ }
  }
  for (const r of liveRedis) try { r.kill('SIGKILL'); } catch { /* gone */ }
});

export async function startCluster(name = 'pg', settings: Record<string, string | number> = {}): Promise<TestCluster> {
  mkdirSync(REGISTRY_ROOT, { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(path.join(REGISTRY_ROOT, `${runId()}-${name}-`));
  const cluster = new LocalCluster({ dir, settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', ...settings } });
  await cluster.start();
  const clients: Client[] = [];
  const tc: TestCluster = {
    name,
    cluster,
    get port() { return cluster.port; },
    url: (database = 'app') => cluster.url(database),
    async connect(database = 'app') {
      const c = new Client({ connectionString: cluster.url(database) });
      await c.connect();
      clients.push(c);
      return c;
    },
    async query(sql, params, database = 'app') {
      const c = new Client({ connectionString: cluster.url(database) });
      await c.connect();
      try { return (await c.query(sql, params as unknown[])).rows; } finally { await c.end(); }
    },
    async kill() { await cluster.stop('immediate'); },
    async restart() { await cluster.start(); },
    async stop() {
      live.delete(tc);
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await cluster.destroy();
    },
  } as TestCluster;
  live.add(tc);
  await tc.query('CREATE DATABASE app', [], 'postgres');
  return tc;
}

/** Blue and green side by side, each with database `app`. */
export async function startPair(settings: Record<string, string | number> = {}): Promise<{ blue: TestCluster; green: TestCluster; stop(): Promise<void> }> {
  const [blue, green] = await Promise.all([startCluster('blue', settings), startCluster('green', settings)]);
  return { blue, green, stop: async () => { await Promise.all([blue.stop(), green.stop()]); } };
}

export interface TestRedis {
  url: string;
  /** a key prefix unique to this test file, for a shared REDIS_URL */
  prefix: string;
  stop(): Promise<void>;
}

/** A redis-server of this test's own, for outages: killed, and started again on its port. */
export interface OwnRedis extends TestRedis {
  /** SIGKILL: connections drop at once, nothing is kept */
  kill(): Promise<void>;
  /** a new server on the same port, empty (no persistence) */
  restart(): Promise<void>;
}

async function spawnRedis(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  liveRedis.add(child);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      execFileSync('redis-cli', ['-p', String(port), 'ping'], { stdio: 'pipe' });
      return child;
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function killRedis(child: ChildProcess): Promise<void> {
  liveRedis.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => { child.once('exit', () => resolve()); child.kill('SIGKILL'); });
}

/** REDIS_URL when set (unless `own`), else a redis-server of our own on a free port. */
export async function startRedis(): Promise<TestRedis>;
export async function startRedis(o: { own: true }): Promise<OwnRedis>;
export async function startRedis(o: { own?: boolean } = {}): Promise<TestRedis | OwnRedis> {
  const prefix = `pgflip-test:${runId()}:${process.pid}:${Date.now()}:`;
  if (process.env.REDIS_URL && !o.own) return { url: process.env.REDIS_URL, prefix, stop: async () => undefined };
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgflip-redis-'));
  let child = await spawnRedis(port, dir);
  return {
    url: `redis://127.0.0.1:${port}`,
    prefix,
    kill: () => killRedis(child),
    async restart() { await killRedis(child); child = await spawnRedis(port, dir); },
    async stop() {
      await killRedis(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * What every real-client test stands on: a blue/green pair, the pgflip proxy in front of it,
 * and three connection targets — PostgreSQL directly, through the proxy in session mode and
 * through it in transaction mode — so that each test runs one body against each and compares
 * what the client saw.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { startPair, TestCluster } from '../harness/clusters';
import { startProxyFor } from '../harness/proxy';

export interface Target {
  /** proxy: session mode; pooled: transaction mode (proxy.poolMode = transaction) */
  name: 'direct' | 'proxy' | 'pooled';
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** postgres:// URL with credentials */
  url: string;
  /** libpq environment (PGHOST, PGPASSWORD, …) for psql and pgbench; sslmode=prefer (libpq's
   * default) so every connection starts with an SSLRequest that each answers with N */
  env: NodeJS.ProcessEnv;
}

export interface ClientEnv {
  blue: TestCluster;
  direct: Target;
  proxy: Target;
  /** the same pair through a transaction-mode proxy with a pool of 2: leases change hands between transactions */
  pooled: Target;
  /** a scratch directory removed by stop() */
  tmp: string;
  /** superuser SQL on the active side, outside the targets (setup and cleanup) */
  admin(sql: string): Promise<void>;
  /**
   * Runs `body` against PostgreSQL directly, then through the proxy in session mode and in
   * transaction mode, each after `reset` SQL (run as admin) so all start from the same state.
   */
  compare<T>(reset: string, body: (t: Target) => Promise<T>): Promise<{ direct: T; proxy: T; pooled: T }>;
  stop(): Promise<void>;
}

export function targetFrom(name: Target['name'], url: string): Target {
  const u = new URL(url);
  const t = {
    name,
    host: u.hostname,
    port: Number(u.port),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname.slice(1)),
    url,
  };
  return {
    ...t,
    env: {
      ...process.env,
      PGHOST: t.host, PGPORT: String(t.port), PGUSER: t.user, PGPASSWORD: t.password, PGDATABASE: t.database,
      PGSSLMODE: 'prefer', PGCONNECT_TIMEOUT: '10', LC_ALL: 'C', LANG: 'C',
    },
  };
}

export async function startClientEnv(): Promise<ClientEnv> {
  const pair = await startPair();
  const direct = targetFrom('direct', pair.blue.url('app'));
  const proxies = await Promise.all([
    startProxyFor(pair),
    startProxyFor(pair, { proxy: { poolMode: 'transaction', poolSize: 2 } }),
  ]).catch(async (e) => { await pair.stop(); throw e; });
  const proxy = targetFrom('proxy', proxies[0].url());
  const pooled = targetFrom('pooled', proxies[1].url());
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'pgflip-clients-'));
  const admin = async (sql: string) => {
    const c = new Client({ connectionString: direct.url });
    await c.connect();
    try { await c.query(sql); } finally { await c.end(); }
  };
  return {
    blue: pair.blue,
    direct,
    proxy,
    pooled,
    tmp,
    admin,
    async compare(reset, body) {
      const out = [];
      for (const t of [direct, proxy, pooled]) {
        await admin(reset);
        out.push(await body(t));
      }
      return { direct: out[0], proxy: out[1], pooled: out[2] };
    },
    async stop() {
      rmSync(tmp, { recursive: true, force: true });
      await Promise.all(proxies.map((p) => p.stop()));
      await pair.stop();
    },
  };
}

/** Fails with the Debian package to install when a client program is not on this machine. */
export function requireTool(file: string, debianPackage: string): string {
  const found = file.startsWith('/') ? (existsSync(file) ? file : '') : which(file);
  if (!found) throw new Error(`${file} not found: install the Debian package ${debianPackage} (.ci/run does)`);
  return found;
}

function which(cmd: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

export interface RunResult { code: number; stdout: string; stderr: string }

/** Runs a program to its end and returns its exit code and output (never throws on exit code). */
export function runProgram(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: opts.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 256 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr}`));
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      });
  });
}

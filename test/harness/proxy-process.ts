/**
 * A `pgflip proxy` as its own process (the built CLI), joined to a fleet through Redis:
 * what a fleet of machines runs, for tests that kill proxies or the store under it.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TestCluster, TestRedis } from './clusters';
import { PROXY_PASSWORD, PROXY_USER } from './proxy';

const MAIN = path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js');

export interface ProxyProcess {
  id: string;
  child: ChildProcess;
  port: number;
  admin: string;
  /** the application's URL through this proxy */
  url: string;
  /** its stderr so far (JSON log lines) */
  logs(): string;
}

export interface ProxyProcessOptions {
  id: string;
  pair: { blue: TestCluster; green: TestCluster };
  redis: TestRedis;
  /** where the config file goes */
  dir: string;
  /** PGFLIP_API_TOKEN: enables POST /switch on the admin port */
  token: string;
  logLevel?: string;
  env?: NodeJS.ProcessEnv;
  /** proxy.workers (default 1: what `auto` means on a small machine, and the same on any) */
  workers?: number;
}

export async function spawnProxyProcess(o: ProxyProcessOptions): Promise<ProxyProcess> {
  const cfgFile = path.join(o.dir, `${o.id}.json`);
  writeFileSync(cfgFile, JSON.stringify({
    blue: { url: o.pair.blue.url('app') },
    green: { url: o.pair.green.url('app') },
    proxy: {
      listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 },
      users: { [PROXY_USER]: { password: PROXY_PASSWORD } },
      healthCheck: { intervalMs: 500, query: 'SELECT 1', timeoutMs: 1000 },
    },
  }));
  const child = spawn(process.execPath, [MAIN, 'proxy', '--config', cfgFile], {
    env: {
      ...process.env, REDIS_URL: o.redis.url, PGFLIP_REDIS_PREFIX: o.redis.prefix, PGFLIP_PROXY_ID: o.id,
      PGFLIP_API_TOKEN: o.token, PGFLIP_LOG_LEVEL: o.logLevel ?? 'warn', PGFLIP_PROXY_WORKERS: String(o.workers ?? 1), ...o.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => { err += d; });
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => { out += d; if (/pgflip proxy \S+ joined the fleet.*\n/.test(out)) resolve(out); });
    child.once('exit', (code) => reject(new Error(`proxy ${o.id} exited ${code}: ${out}${err}`)));
  });
  const m = /pgflip proxy listening on 127\.0\.0\.1:(\d+) \(admin (http:\/\/[^)]+)\)/.exec(line)!;
  return { id: o.id, child, port: Number(m[1]), admin: m[2], url: `postgres://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:${m[1]}/app`, logs: () => err };
}

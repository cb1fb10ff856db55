/**
 * A pgflip proxy in front of a test pair. Clients log in at the proxy as
 * `app` / `apppass` (SCRAM); the proxy reaches each side with that cluster's
 * superuser URL of database `app`, so no role has to exist on the clusters.
 * Listen and admin ports are chosen by the OS.
 */
import prom from 'prom-client';
import { defaultConfig, merge, PgflipConfig, validateConfig } from '../../src/config';
import { ProxyServer, startProxy } from '../../src/proxy';
import type { TestCluster } from './clusters';

export const PROXY_USER = 'app';
export const PROXY_PASSWORD = 'apppass';

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export interface TestProxy {
  proxy: ProxyServer;
  /** the registry the proxy's metrics live in (one per test proxy) */
  registry: prom.Registry;
  /** postgres:// URL of the proxy (password included for the default user) */
  url(user?: string, db?: string): string;
  adminUrl: string;
  stop(): Promise<void>;
}

export function proxyConfigFor(pair: { blue: TestCluster; green: TestCluster }, overrides: DeepPartial<PgflipConfig> = {}): PgflipConfig {
  let cfg = defaultConfig();
  cfg = merge(cfg, {
    blue: { url: pair.blue.url('app') },
    green: { url: pair.green.url('app') },
    proxy: {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      auth: 'scram',
      users: { [PROXY_USER]: { password: PROXY_PASSWORD } },
      healthCheck: { intervalMs: 500, query: 'SELECT 1', timeoutMs: 1000 },
      connectTimeoutMs: 3000,
    },
  });
  cfg = merge(cfg, overrides);
  validateConfig(cfg, ['backends']);
  return cfg;
}

export async function startProxyFor(pair: { blue: TestCluster; green: TestCluster }, overrides: DeepPartial<PgflipConfig> = {}): Promise<TestProxy> {
  const cfg = proxyConfigFor(pair, overrides);
  const registry = new prom.Registry();
  const proxy = await startProxy(cfg, { registry });
  return {
    proxy,
    registry,
    url(user = PROXY_USER, db = 'app') {
      const pw = cfg.proxy.users[user]?.password;
      const auth = pw !== undefined ? `${encodeURIComponent(user)}:${encodeURIComponent(pw)}` : encodeURIComponent(user);
      return `postgres://${auth}@127.0.0.1:${proxy.port}/${encodeURIComponent(db)}`;
    },
    adminUrl: `http://127.0.0.1:${proxy.adminPort}`,
    stop: () => proxy.close(),
  };
}

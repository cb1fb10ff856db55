/**
 * The wiring `pgflip up` gives (src/up/stack.ts), on a test pair: the proxy reaches each side as
 * the application's own role (the one fencing binds), the controller and sync engine as the
 * superuser, one shared state store, no controller.proxyAdminUrls.
 */
import { defaultConfig, merge, PgflipConfig } from '../../src/config';
import type { TestCluster } from './clusters';
import path from 'node:path';

export const UP_APP = { user: 'app', password: 'app-secret-pass' };

/** a side's URL as the application's role */
export function appUrlOf(c: TestCluster): string {
  const u = new URL(c.url());
  u.username = UP_APP.user;
  u.password = UP_APP.password;
  return u.toString();
}

export function upLikeConfig(pair: { blue: TestCluster; green: TestCluster }, o: { dir: string; token: string; controller?: Partial<PgflipConfig['controller']> }): PgflipConfig {
  return merge(defaultConfig(), {
    blue: { url: appUrlOf(pair.blue), adminUrl: pair.blue.url() },
    green: { url: appUrlOf(pair.green), adminUrl: pair.green.url() },
    app: { database: 'app', user: UP_APP.user, password: UP_APP.password },
    proxy: {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      users: { [UP_APP.user]: { password: UP_APP.password } },
      healthCheck: { intervalMs: 500, query: 'SELECT 1', timeoutMs: 1000 },
    },
    controller: {
      listen: { host: '127.0.0.1', port: 0 },
      apiToken: o.token,
      backupDir: path.join(o.dir, 'backups'),
      auditLog: path.join(o.dir, 'audit.log'),
      watchIntervalMs: 250,
      trace: 'off', // covered by test/controller/validate-trace.test.ts and the README flow (test/up/node-only.test.ts)
      ...o.controller,
    },
  }) as PgflipConfig;
}

import type { PgflipConfig } from '../config';

/** The application's roles: those clients log in as through the proxies. */
export function applicationRoles(cfg: PgflipConfig): string[] {
  return [...new Set([cfg.app.user, ...Object.keys(cfg.proxy.users)].filter((r): r is string => !!r))];
}

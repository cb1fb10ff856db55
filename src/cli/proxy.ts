import { Command } from 'commander';
import { ConfigError, loadConfig, parseHostPort, PgflipConfig } from '../config';
import { logger } from '../observability/logger';
import { startProxy } from '../proxy';

interface ProxyFlags { config?: string; listen?: string; blue?: string; green?: string; active?: string; auth?: string }

/** Flags as a partial config (flags override env, env overrides the file). */
export function proxyFlagsToConfig(f: ProxyFlags): Record<string, unknown> {
  const proxy: Record<string, unknown> = {};
  if (f.listen !== undefined) proxy.listen = parseHostPort('--listen', f.listen);
  if (f.auth !== undefined) proxy.auth = f.auth;
  const out: Record<string, unknown> = { proxy };
  if (f.blue !== undefined) out.blue = { url: f.blue };
  if (f.green !== undefined) out.green = { url: f.green };
  if (f.active !== undefined) out.active = f.active;
  return out;
}

export function registerProxy(program: Command): void {
  program.command('proxy')
    .description('run the wire-protocol proxy in front of the blue/green pair')
    .option('--config <file>', 'YAML or JSON configuration file')
    .option('--listen <host:port>', 'address for PostgreSQL clients (default 127.0.0.1:6432)')
    .option('--blue <url>', 'postgres:// URL of the blue side (env BLUE_DATABASE_URL)')
    .option('--green <url>', 'postgres:// URL of the green side (env GREEN_DATABASE_URL)')
    .option('--active <side>', 'side that serves sessions: blue or green')
    .option('--auth <method>', 'client authentication: scram or trust')
    .action(async (flags: ProxyFlags) => {
      let cfg: PgflipConfig;
      try {
        cfg = loadConfig({ file: flags.config, flags: proxyFlagsToConfig(flags), require: ['backends'] });
      } catch (e) {
        if (e instanceof ConfigError) { process.stderr.write(`pgflip: ${e.message}\n`); process.exitCode = 1; return; }
        throw e;
      }
      let proxy;
      try {
        // PGFLIP_REDIS_PREFIX: several installations (or test runs) sharing one Redis; PGFLIP_PROXY_ID: a stable fleet id
        proxy = await startProxy(cfg, { storePrefix: process.env.PGFLIP_REDIS_PREFIX || undefined, id: process.env.PGFLIP_PROXY_ID || undefined });
      } catch (e) {
        if (e instanceof ConfigError) { process.stderr.write(`pgflip: ${e.message}\n`); process.exitCode = 1; return; }
        throw e;
      }
      process.stdout.write(`pgflip proxy listening on ${cfg.proxy.listen.host}:${proxy.port} (admin http://${cfg.proxy.admin.host}:${proxy.adminPort}), active side ${proxy.activeSide}\n`);
      process.stdout.write(`pgflip proxy ${proxy.id} joined the fleet (${proxy.store.kind} state store, epoch ${proxy.participant.currentEpoch()})\n`);
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          logger().info({ signal: sig }, 'stopping proxy');
          proxy.close().then(resolve, resolve);
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
    });
}

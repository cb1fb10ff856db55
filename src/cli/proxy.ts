import { Command } from 'commander';
import { ConfigError, loadConfig, parseHostPort, PgflipConfig } from '../config';
import { logger } from '../observability/logger';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { startProxy } from '../proxy';
import { resolveWorkers, runAsWorker, startWorkersPrimary, workerConfig, workerIndex } from '../proxy/workers';

interface ProxyFlags { config?: string; listen?: string; blue?: string; green?: string; active?: string; auth?: string; workers?: string }

/** Flags as a partial config (flags override env, env overrides the file). */
export function proxyFlagsToConfig(f: ProxyFlags): Record<string, unknown> {
  const proxy: Record<string, unknown> = {};
  if (f.listen !== undefined) proxy.listen = parseHostPort('--listen', f.listen);
  if (f.auth !== undefined) proxy.auth = f.auth;
  if (f.workers !== undefined) proxy.workers = f.workers === 'auto' ? 'auto' : Number(f.workers);
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
    .option('--workers <n>', 'proxy processes on the one listener, each a fleet member (needs REDIS_URL for more than 1); auto: the cores on a machine of 4 or more (env PGFLIP_PROXY_WORKERS)')
    .action(async (flags: ProxyFlags) => {
      let cfg: PgflipConfig;
      try {
        cfg = loadConfig({ file: flags.config, flags: proxyFlagsToConfig(flags), require: ['backends'] });
      } catch (e) {
        if (e instanceof ConfigError) { process.stderr.write(`pgflip: ${e.message}\n`); process.exitCode = 1; return; }
        throw e;
      }
      const workers = resolveWorkers(cfg);
      const index = workerIndex();
      if (index !== undefined) { await runWorker(cfg, workers, index); return; }
      if (workers > 1) { await runPrimary(cfg, workers); return; }
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

const waitForSignal = (): Promise<string> => new Promise((resolve) => {
  process.once('SIGINT', () => resolve('SIGINT'));
  process.once('SIGTERM', () => resolve('SIGTERM'));
});

/** The primary of proxy.workers: the workers, the admin port, and the lines `pgflip proxy` prints. */
async function runPrimary(cfg: PgflipConfig, workers: number): Promise<void> {
  const baseId = process.env.PGFLIP_PROXY_ID || `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  // a signal while the workers start stops them too
  const stop = new AbortController();
  const signalled = waitForSignal().then((sig) => { stop.abort(); return sig; });
  let primary;
  try {
    primary = await startWorkersPrimary(cfg, workers, baseId, logger().child({ component: 'proxy-workers' }), stop.signal);
  } catch (e) {
    if (!stop.signal.aborted) {
      process.stderr.write(`pgflip: ${(e as Error).message}\n`);
      process.exitCode = 1;
    }
    return;
  }
  process.stdout.write(`pgflip proxy listening on ${cfg.proxy.listen.host}:${primary.port} (admin http://${cfg.proxy.admin.host}:${primary.adminPort}), active side ${primary.activeSide}, ${workers} workers\n`);
  process.stdout.write(`pgflip proxy ${baseId} joined the fleet (redis state store, epoch ${primary.epoch}) as ${primary.ids.join(', ')}\n`);
  const sig = await signalled;
  logger().info({ signal: sig }, 'stopping proxy workers');
  await primary.close();
}

/** One worker: a whole proxy with its own admin port, its readiness told to the primary. */
async function runWorker(cfg: PgflipConfig, workers: number, index: number): Promise<void> {
  let proxy;
  try {
    proxy = await startProxy(workerConfig(cfg, workers), { storePrefix: process.env.PGFLIP_REDIS_PREFIX || undefined, id: process.env.PGFLIP_PROXY_ID || undefined });
  } catch (e) {
    process.stderr.write(`pgflip: proxy worker ${index}: ${(e as Error).message}\n`);
    process.exit(1);
  }
  runAsWorker(proxy, { index, id: proxy.id, port: proxy.port, adminPort: proxy.adminPort, activeSide: proxy.activeSide, epoch: proxy.participant.currentEpoch() });
  const sig = await waitForSignal();
  logger().info({ signal: sig, worker: index }, 'stopping proxy worker');
  await proxy.close().catch(() => undefined);
  process.exit(0);
}

/**
 * `proxy.workers: N` (docs/proxy.md, "Workers"): N proxy processes on the one listener, through
 * Node's cluster module — the primary accepts each connection and hands it to the workers in
 * turn (Node 20 has no SO_REUSEPORT for net servers). Each worker is a whole proxy and its own
 * fleet member (`<id>-w<i>`), so a flip, the health reports and the routing of CancelRequests go
 * as across a fleet of proxies: a cancel that reaches another worker than its session's goes
 * through the state store to the owner of the key (cancel-router.ts). That is why more than one
 * worker needs the Redis store.
 *
 * The primary serves the configured admin port: /metrics summed over the workers (prom-client's
 * AggregatorRegistry), /healthz and POST /switch through a worker, /status with every worker's.
 * Each worker's own admin port (ephemeral, not shared) is what it registers in the fleet, so the
 * controller reads each one's error rate and latency. A worker that dies is started again.
 */
import cluster, { Worker } from 'node:cluster';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import { AggregatorRegistry } from 'prom-client';
import type { Logger } from 'pino';
import { ConfigError, PgflipConfig } from '../config';

/** Below this many cores a second event loop competes with PostgreSQL and the clients for the same CPUs. */
const MIN_CORES_FOR_WORKERS = 4;
/** A worker that exits is started again after this long (not in a tight loop when it cannot start). */
const RESTART_DELAY_MS = 1000;
/** How long a stopping worker gets to end its sessions (57P01) before it is killed. */
const STOP_TIMEOUT_MS = 30_000;

/** The environment variable that tells a process it is worker `i` of the primary. */
export const WORKER_ENV = 'PGFLIP_PROXY_WORKER';

/** How many workers `proxy.workers` means on this machine. */
export function resolveWorkers(cfg: PgflipConfig, cores = os.availableParallelism()): number {
  if (cfg.proxy.workers !== 'auto') return cfg.proxy.workers;
  return cfg.redisUrl && cores >= MIN_CORES_FOR_WORKERS ? cores : 1;
}

/** This process is a worker of a primary (and which one), or undefined. */
export function workerIndex(): number | undefined {
  const v = process.env[WORKER_ENV];
  return cluster.isWorker && v !== undefined ? Number(v) : undefined;
}

/**
 * A worker's own config: an admin port of its own (the primary has the configured one) and its
 * share of proxy.maxClientConnections.
 */
export function workerConfig(cfg: PgflipConfig, workers: number): PgflipConfig {
  return {
    ...cfg,
    proxy: { ...cfg.proxy, admin: { host: cfg.proxy.admin.host, port: 0 }, maxClientConnections: Math.ceil(cfg.proxy.maxClientConnections / workers) },
  };
}

/** What a worker tells the primary once it listens and has joined the fleet. */
export interface WorkerReady { type: 'pgflip-worker-ready'; index: number; id: string; port: number; adminPort: number; activeSide: string; epoch: number }

export interface WorkersPrimary {
  port: number;
  adminPort: number;
  ids: string[];
  activeSide: string;
  epoch: number;
  /** stops every worker (each ends its sessions with 57P01) and the admin port */
  close(): Promise<void>;
}

interface Slot { index: number; worker?: Worker; ready?: WorkerReady }

/**
 * Starts `n` workers (this process's own command line again, with WORKER_ENV set) and the admin
 * port; resolves once every worker is ready.
 */
export async function startWorkersPrimary(cfg: PgflipConfig, n: number, baseId: string, log: Logger): Promise<WorkersPrimary> {
  const slots: Slot[] = Array.from({ length: n }, (_, index) => ({ index }));
  let stopping = false;
  const aggregator = new AggregatorRegistry();

  const fork = (slot: Slot): Promise<WorkerReady> => new Promise((resolve, reject) => {
    const w = cluster.fork({ [WORKER_ENV]: String(slot.index), PGFLIP_PROXY_ID: `${baseId}-w${slot.index}` });
    slot.worker = w;
    slot.ready = undefined;
    w.on('message', (m: WorkerReady) => {
      if (m?.type !== 'pgflip-worker-ready') return;
      slot.ready = m;
      resolve(m);
    });
    w.once('exit', (code, signal) => {
      const wasReady = slot.ready !== undefined;
      slot.ready = undefined;
      if (!wasReady) reject(new Error(`proxy worker ${slot.index} exited before it was ready (${signal ?? `exit ${code}`})`));
      if (stopping) return;
      log.error({ worker: slot.index, code, signal }, 'proxy worker exited; starting it again');
      setTimeout(() => { if (!stopping) fork(slot).catch((e: Error) => log.error({ worker: slot.index, err: e.message }, 'proxy worker did not start again')); }, RESTART_DELAY_MS).unref();
    });
  });

  const stopAll = async (): Promise<void> => {
    stopping = true;
    await Promise.all(slots.map((s) => new Promise<void>((resolve) => {
      const w = s.worker;
      if (!w || w.isDead()) { resolve(); return; }
      const kill = setTimeout(() => w.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
      w.once('exit', () => { clearTimeout(kill); resolve(); });
      w.process.kill('SIGTERM');
    })));
  };

  let readies: WorkerReady[];
  try {
    readies = await Promise.all(slots.map(fork));
  } catch (e) {
    await stopAll();
    throw e;
  }

  const anyWorker = (): WorkerReady => {
    const r = slots.find((s) => s.ready)?.ready;
    if (!r) throw new Error('no proxy worker is ready');
    return r;
  };
  const workerUrl = (r: WorkerReady, p: string) => `http://${cfg.proxy.admin.host.includes(':') ? `[${cfg.proxy.admin.host}]` : cfg.proxy.admin.host === '0.0.0.0' ? '127.0.0.1' : cfg.proxy.admin.host}:${r.adminPort}${p}`;
  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const admin = http.createServer((req, res) => {
    void (async () => {
      const p = (req.url ?? '/').split('?')[0];
      if (p === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
        const text = await aggregator.clusterMetrics();
        res.writeHead(200, { 'content-type': aggregator.contentType });
        res.end(text);
        return;
      }
      if (p === '/status' && req.method === 'GET') {
        const each = await Promise.all(slots.map(async (s) => (s.ready ? { worker: s.index, ...(await (await fetch(workerUrl(s.ready, '/status'))).json() as object) } : { worker: s.index, ready: false })));
        return send(res, 200, { workers: each });
      }
      // the rest as one worker answers it: /healthz, POST /switch (which goes through the state store anyway)
      const body = await new Promise<Buffer>((resolve) => { const parts: Buffer[] = []; req.on('data', (d: Buffer) => parts.push(d)); req.on('end', () => resolve(Buffer.concat(parts))); });
      const headers: Record<string, string> = {};
      for (const h of ['content-type', 'authorization']) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h] as string;
      const r = await fetch(workerUrl(anyWorker(), req.url ?? '/'), { method: req.method, headers, ...(body.length ? { body } : {}) });
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
      res.end(Buffer.from(await r.arrayBuffer()));
    })().catch((e) => send(res, 502, { error: `pgflip proxy workers: ${(e as Error).message}` }));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      admin.once('error', (e: NodeJS.ErrnoException) => reject(new ConfigError('proxy.admin', `cannot listen on ${cfg.proxy.admin.host}:${cfg.proxy.admin.port}: ${e.code ?? e.message}`)));
      admin.listen(cfg.proxy.admin.port, cfg.proxy.admin.host, () => resolve());
    });
  } catch (e) {
    await stopAll();
    throw e;
  }
  const first = readies[0];
  log.info({ workers: n, ids: readies.map((r) => r.id), port: first.port }, 'proxy workers ready');
  return {
    port: first.port,
    adminPort: (admin.address() as net.AddressInfo).port,
    ids: readies.map((r) => r.id),
    activeSide: first.activeSide,
    epoch: first.epoch,
    async close() {
      await stopAll();
      await new Promise<void>((r) => { admin.close(() => r()); admin.closeAllConnections(); });
    },
  };
}

/** In a worker: hand the proxy's registry to the primary's aggregation, and say it is ready. */
export function reportWorkerReady(registry: import('prom-client').Registry, r: Omit<WorkerReady, 'type'>): void {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // its constructor is what makes a worker answer the primary's requests
  process.send?.({ type: 'pgflip-worker-ready', ...r } satisfies WorkerReady);
}

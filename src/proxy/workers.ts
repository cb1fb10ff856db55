/**
 * `proxy.workers: N` (docs/proxy.md, "Workers"): N proxy processes on the one listener, through
 * Node's cluster module — the primary accepts each connection and hands it to the workers in
 * turn (Node 20 has no SO_REUSEPORT for net servers). Each worker is a whole proxy and its own
 * fleet member (`<id>-w<i>`), so a flip, the health reports and the routing of CancelRequests go
 * as across a fleet of proxies: a cancel that reaches another worker than its session's goes
 * through the state store to the owner of the key (cancel-router.ts). That is why more than one
 * worker needs the Redis store.
 *
 * The primary serves the configured admin port: /metrics summed over the workers that answer
 * (prom-client's AggregatorRegistry.aggregate), /healthz from the workers' readiness, /status with
 * every worker's, the rest (POST /switch) through a worker that answers. Each worker's own admin
 * port (ephemeral, not shared) is what it registers in the fleet, so the controller reads each
 * one's error rate and latency. A worker that dies is started again, later each time it dies
 * before it was ready; a worker whose primary is gone ends its sessions and exits.
 */
import cluster, { Worker } from 'node:cluster';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import { AggregatorRegistry, MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Logger } from 'pino';
import { ConfigError, PgflipConfig } from '../config';
import { within } from '../util/sleep';

/** Below this many cores a second event loop competes with PostgreSQL and the clients for the same CPUs. */
const MIN_CORES_FOR_WORKERS = 4;
const MAX_WORKERS = 64;
/** A worker that exits is started again after this long, doubled (to the cap) each time it dies before it was ready. */
const RESTART_DELAY_MS = 1000;
const RESTART_DELAY_MAX_MS = 30_000;
/** How long a stopping worker gets to end its sessions (57P01) before it is killed. */
const STOP_TIMEOUT_MS = 30_000;
/** How long the primary waits for a worker's answer (metrics, status, a forwarded call). */
const WORKER_ANSWER_MS = 2000;

/** The environment variable that tells a process it is worker `i` of the primary. */
export const WORKER_ENV = 'PGFLIP_PROXY_WORKER';

/** How many workers `proxy.workers` means on this machine. */
export function resolveWorkers(cfg: PgflipConfig, cores = os.availableParallelism()): number {
  if (cfg.proxy.workers !== 'auto') return cfg.proxy.workers;
  return cfg.redisUrl && cores >= MIN_CORES_FOR_WORKERS ? Math.min(cores, MAX_WORKERS) : 1;
}

/** This process is a worker of a primary (and which one), or undefined. */
export function workerIndex(): number | undefined {
  const v = process.env[WORKER_ENV];
  return cluster.isWorker && v !== undefined ? Number(v) : undefined;
}

/**
 * A worker's own config: an admin port of its own (the primary has the configured one) and its
 * share of proxy.maxClientConnections (rounded down: the workers together never take more).
 */
export function workerConfig(cfg: PgflipConfig, workers: number): PgflipConfig {
  return {
    ...cfg,
    proxy: { ...cfg.proxy, admin: { host: cfg.proxy.admin.host, port: 0 }, maxClientConnections: Math.max(1, Math.floor(cfg.proxy.maxClientConnections / workers)) },
  };
}

/** What a worker tells the primary once it listens and has joined the fleet. */
export interface WorkerReady { type: 'pgflip-worker-ready'; index: number; id: string; port: number; adminPort: number; activeSide: string; epoch: number }
type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];
interface MetricsRequest { type: 'pgflip-metrics'; request: number }
interface MetricsAnswer { type: 'pgflip-metrics'; request: number; metrics: MetricsJson }

export interface WorkersPrimary {
  port: number;
  adminPort: number;
  ids: string[];
  activeSide: string;
  epoch: number;
  /** stops every worker (each ends its sessions with 57P01) and the admin port */
  close(): Promise<void>;
}

interface Slot { index: number; worker?: Worker; ready?: WorkerReady; failures: number }

/**
 * Starts `n` workers (this process's own command line again, with WORKER_ENV set) and the admin
 * port; resolves once every worker is ready. An abort (SIGTERM while starting) stops what started.
 */
export async function startWorkersPrimary(cfg: PgflipConfig, n: number, baseId: string, log: Logger, signal?: AbortSignal): Promise<WorkersPrimary> {
  const slots: Slot[] = Array.from({ length: n }, (_, index) => ({ index, failures: 0 }));
  let stopping = false;
  let nextRequest = 0;
  const pending = new Map<number, (m: MetricsJson) => void>();

  const fork = (slot: Slot): Promise<WorkerReady> => new Promise((resolve, reject) => {
    const w = cluster.fork({ [WORKER_ENV]: String(slot.index), PGFLIP_PROXY_ID: `${baseId}-w${slot.index}` });
    slot.worker = w;
    slot.ready = undefined;
    w.on('message', (m: WorkerReady | MetricsAnswer) => {
      if (m?.type === 'pgflip-metrics') { pending.get(m.request)?.(m.metrics); return; }
      if (m?.type !== 'pgflip-worker-ready') return;
      slot.ready = m;
      slot.failures = 0;
      resolve(m);
    });
    w.once('exit', (code, signalName) => {
      const wasReady = slot.ready !== undefined;
      slot.ready = undefined;
      if (!wasReady) { slot.failures++; reject(new Error(`proxy worker ${slot.index} exited before it was ready (${signalName ?? `exit ${code}`})`)); }
      if (stopping) return;
      const delay = Math.min(RESTART_DELAY_MS * 2 ** Math.max(0, slot.failures - 1), RESTART_DELAY_MAX_MS);
      log.error({ worker: slot.index, code, signal: signalName, restartInMs: delay, failedStarts: slot.failures }, 'proxy worker exited; starting it again');
      setTimeout(() => { if (!stopping) fork(slot).catch((e: Error) => log.error({ worker: slot.index, err: e.message }, 'proxy worker did not start again')); }, delay).unref();
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
  const onAbort = () => { void stopAll(); };
  signal?.addEventListener('abort', onAbort, { once: true });

  let readies: WorkerReady[];
  try {
    readies = await Promise.all(slots.map(fork));
    if (signal?.aborted) throw new Error('stopped while starting');
  } catch (e) {
    await stopAll();
    throw e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }

  const ready = (): Slot[] => slots.filter((s) => s.ready && s.worker && !s.worker.isDead());
  const host = cfg.proxy.admin.host.includes(':') ? `[${cfg.proxy.admin.host}]` : cfg.proxy.admin.host === '0.0.0.0' ? '127.0.0.1' : cfg.proxy.admin.host;
  const workerUrl = (r: WorkerReady, p: string) => `http://${host}:${r.adminPort}${p}`;
  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  /** a worker's metrics over IPC (its hot counters flushed first), or undefined when it does not answer in time */
  const metricsOf = (s: Slot): Promise<MetricsJson | undefined> => {
    const request = nextRequest++;
    const answer = new Promise<MetricsJson>((resolve) => { pending.set(request, resolve); });
    s.worker!.send({ type: 'pgflip-metrics', request } satisfies MetricsRequest);
    return within<MetricsJson | undefined>(answer, WORKER_ANSWER_MS, undefined).finally(() => pending.delete(request));
  };

  const admin = http.createServer((req, res) => {
    void (async () => {
      const p = (req.url ?? '/').split('?')[0];
      if (p === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
        const all = (await Promise.all(ready().map(metricsOf))).filter((m): m is MetricsJson => m !== undefined);
        const registry = AggregatorRegistry.aggregate(all);
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(await registry.metrics());
        return;
      }
      if (p === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
        const up = ready().length;
        return send(res, up > 0 ? 200 : 503, { status: up === n ? 'ok' : up > 0 ? 'degraded' : 'down', workers: n, workersReady: up });
      }
      if (p === '/status' && req.method === 'GET') {
        const each = await Promise.all(slots.map(async (s) => {
          if (!s.ready) return { worker: s.index, ready: false };
          try {
            const r = await fetch(workerUrl(s.ready, '/status'), { signal: AbortSignal.timeout(WORKER_ANSWER_MS) });
            return { worker: s.index, ...(await r.json() as object) };
          } catch (e) { return { worker: s.index, ready: true, error: (e as Error).message }; }
        }));
        return send(res, 200, { workers: each });
      }
      // the rest as a worker answers it (POST /switch, which goes through the state store anyway): the first that does
      const body = await new Promise<Buffer>((resolve) => { const parts: Buffer[] = []; req.on('data', (d: Buffer) => parts.push(d)); req.on('end', () => resolve(Buffer.concat(parts))); });
      const headers: Record<string, string> = {};
      for (const h of ['content-type', 'authorization']) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h] as string;
      let last: Error | undefined;
      for (const s of ready()) {
        try {
          // a switch waits for the fleet: as long as its deadline allows (at most 10 minutes), not the short answer time
          const r = await fetch(workerUrl(s.ready!, req.url ?? '/'), { method: req.method, headers, ...(body.length ? { body } : {}), signal: AbortSignal.timeout(p === '/switch' ? 600_000 : WORKER_ANSWER_MS) });
          res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
          res.end(Buffer.from(await r.arrayBuffer()));
          return;
        } catch (e) { last = e as Error; }
      }
      send(res, 503, { error: `pgflip proxy workers: no worker answered${last ? ` (${last.message})` : ''}` });
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

/**
 * In a worker: answer the primary's requests for metrics, end the proxy when the primary is gone
 * (its channel closes), and say it is ready.
 */
export function runAsWorker(proxy: { metricsJson(): Promise<MetricsJson>; close(): Promise<void> }, r: Omit<WorkerReady, 'type'>): void {
  process.on('message', (m: MetricsRequest) => {
    if (m?.type !== 'pgflip-metrics') return;
    proxy.metricsJson().then((metrics) => process.send?.({ type: 'pgflip-metrics', request: m.request, metrics } satisfies MetricsAnswer), () => undefined);
  });
  process.once('disconnect', () => { void proxy.close().finally(() => process.exit(0)); });
  process.send?.({ type: 'pgflip-worker-ready', ...r } satisfies WorkerReady, undefined, undefined, () => undefined);
}

/**
 * The proxy process: a TCP listener that turns each connection into a
 * Session, an admin HTTP port (/metrics, /healthz, /status) and the periodic
 * health check of both sides.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import prom from 'prom-client';
import { ConfigError, PgflipConfig, Side, SIDES } from '../config';
import { logger, redactUrl } from '../observability/logger';
import { proxyMetrics, registry as defaultRegistry } from '../observability/metrics';
import { BackendTarget, parseBackendUrl } from './backend-connect';
import { CancelKeyStore, MemoryCancelKeyStore } from './cancel';
import { ProxyContext, RelayStats } from './context';
import { HealthChecker, SideHealth } from './health';
import { parseVerifier, ScramSecret, secretFromPassword } from './scram';
import { Session, SessionInfo } from './session';

export type { SessionInfo } from './session';
export { Session } from './session';
export { replayState } from './replay';

export interface ProxyStatus {
  activeSide: Side;
  listen: string;
  sessions: number;
  maxClientConnections: number;
  sides: Record<Side, { url: string; active: boolean } & SideHealth>;
  sessionList: SessionInfo[];
}

export interface ProxyServer {
  /** actual port of the PostgreSQL listener */
  readonly port: number;
  /** actual port of the admin HTTP listener */
  readonly adminPort: number;
  /** side new sessions are served by */
  readonly activeSide: Side;
  sessionCount(): number;
  /** sessions with their tracked state */
  sessions(): SessionInfo[];
  /** the live Session objects (for the switch: whenIdle, hold, openBackend, swapBackend, release) */
  liveSessions(): Session[];
  /** side that new sessions are served by from now on */
  setActiveSide(side: Side): void;
  status(): ProxyStatus;
  /** run the health check of both sides now */
  checkHealth(): Promise<void>;
  /** end all sessions (57P01 to their clients) and close the listeners */
  close(): Promise<void>;
}

export interface StartProxyOptions {
  registry?: prom.Registry;
  /** shared cancel-key map (a fleet passes a Redis-backed one) */
  cancelKeys?: CancelKeyStore;
}

/** How often hot counters are added to the Prometheus registry. */
const STATS_FLUSH_MS = 1000;
/** Sessions listed in /status at most. */
const STATUS_SESSION_LIMIT = 1000;

export async function startProxy(cfg: PgflipConfig, opts: StartProxyOptions = {}): Promise<ProxyServer> {
  const log = logger().child({ component: 'proxy' });
  const reg = opts.registry ?? defaultRegistry;
  const metrics = proxyMetrics(reg);
  const targets = {} as Record<Side, BackendTarget>;
  for (const side of SIDES) {
    try { targets[side] = parseBackendUrl(side, cfg[side].url); } catch (e) { throw new ConfigError(`${side}.url`, (e as Error).message); }
  }
  const tlsContext = cfg.proxy.tls ? loadTls(cfg.proxy.tls) : undefined;

  // SCRAM secrets are derived once: a login then costs the client its PBKDF2, not the proxy.
  const secrets = new Map<string, ScramSecret>();
  for (const [name, u] of Object.entries(cfg.proxy.users)) {
    secrets.set(name, u.scramVerifier ? parseVerifier(u.scramVerifier) : secretFromPassword(u.password!));
  }
  const mockKey = randomBytes(32);

  const cancelKeys = opts.cancelKeys ?? new MemoryCancelKeyStore();
  const localCancelPids = new Set<number>();
  const sessions = new Set<Session>();
  let admitted = 0;
  let activeSide: Side = cfg.active;
  const stats: RelayStats = { queries: [0, 0], bytesIn: 0, bytesOut: 0 };

  const ctx: ProxyContext = {
    cfg, log, metrics, stats, targets, tlsContext,
    durations: [metrics.queryDuration.labels('blue'), metrics.queryDuration.labels('green')],
    activeSide: () => activeSide,
    cancelKeys: {
      set: (pid, secret, target) => { localCancelPids.add(pid); return cancelKeys.set(pid, secret, target); },
      get: (pid, secret) => cancelKeys.get(pid, secret),
      delete: (pid) => { localCancelPids.delete(pid); return cancelKeys.delete(pid); },
    },
    cancelKeyInUse: (pid) => localCancelPids.has(pid) || (cancelKeys instanceof MemoryCancelKeyStore && cancelKeys.has(pid)),
    scramSecret: (user) => secrets.get(user),
    mockSalt: (user) => createHmac('sha256', mockKey).update(user).digest().subarray(0, 16),
    admit: () => { if (admitted >= cfg.proxy.maxClientConnections) return false; admitted++; return true; },
    release: () => { admitted--; },
    sessionStarted: (s) => { sessions.add(s as Session); },
    sessionEnded: (s) => { sessions.delete(s as Session); },
  };

  const flushStats = (): void => {
    const [qb, qg] = stats.queries;
    if (qb) metrics.queries.labels('blue').inc(qb);
    if (qg) metrics.queries.labels('green').inc(qg);
    if (stats.bytesIn) metrics.bytes.labels('client_to_server').inc(stats.bytesIn);
    if (stats.bytesOut) metrics.bytes.labels('server_to_client').inc(stats.bytesOut);
    stats.queries[0] = stats.queries[1] = stats.bytesIn = stats.bytesOut = 0;
    metrics.clientConnections.set(sessions.size);
    for (const s of SIDES) metrics.activeSide.labels(s).set(s === activeSide ? 1 : 0);
  };
  flushStats();
  metrics.heldSessions.set(0);
  const flushTimer = setInterval(flushStats, STATS_FLUSH_MS);
  flushTimer.unref();

  const health = new HealthChecker(targets, cfg.proxy.healthCheck, log, (side, h) => metrics.backendUp.labels(side).set(h.up ? 1 : 0));
  for (const s of SIDES) metrics.backendUp.labels(s).set(0);

  const server = net.createServer({ noDelay: true }, (sock) => {
    const session = new Session(ctx, sock);
    void session.run();
  });
  server.on('error', (e) => log.error({ err: e.message }, 'listener error'));
  await listen(server, cfg.proxy.listen.host, cfg.proxy.listen.port, 'proxy.listen');
  const port = (server.address() as net.AddressInfo).port;

  const status = (): ProxyStatus => ({
    activeSide,
    listen: `${cfg.proxy.listen.host}:${port}`,
    sessions: sessions.size,
    maxClientConnections: cfg.proxy.maxClientConnections,
    sides: {
      blue: { url: redactUrl(cfg.blue.url), active: activeSide === 'blue', ...health.health.blue },
      green: { url: redactUrl(cfg.green.url), active: activeSide === 'green', ...health.health.green },
    },
    sessionList: [...sessions].slice(0, STATUS_SESSION_LIMIT).map((s) => s.info()),
  });

  const admin = http.createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method not allowed' });
      if (path === '/metrics') {
        flushStats();
        res.writeHead(200, { 'content-type': reg.contentType });
        res.end(await reg.metrics());
        return;
      }
      if (path === '/healthz') {
        const up = health.health[activeSide].up;
        return send(res, 200, { status: 'ok', activeSide, activeSideUp: up });
      }
      if (path === '/status') return send(res, 200, status());
      send(res, 404, { error: 'not found', paths: ['/metrics', '/healthz', '/status'] });
    })().catch((e) => send(res, 500, { error: (e as Error).message }));
  });
  try {
    await listen(admin, cfg.proxy.admin.host, cfg.proxy.admin.port, 'proxy.admin');
  } catch (e) {
    server.close();
    throw e;
  }
  const adminPort = (admin.address() as net.AddressInfo).port;
  health.start();
  log.info({ listen: `${cfg.proxy.listen.host}:${port}`, admin: `${cfg.proxy.admin.host}:${adminPort}`, activeSide, blue: redactUrl(cfg.blue.url), green: redactUrl(cfg.green.url), auth: cfg.proxy.auth }, 'proxy listening');

  let closing: Promise<void> | undefined;
  return {
    port,
    adminPort,
    get activeSide() { return activeSide; },
    sessionCount: () => sessions.size,
    sessions: () => [...sessions].map((s) => s.info()),
    liveSessions: () => [...sessions],
    setActiveSide(side: Side) { activeSide = side; flushStats(); log.info({ activeSide }, 'active side changed'); },
    status,
    checkHealth: () => health.checkAll(),
    close() {
      closing ??= (async () => {
        clearInterval(flushTimer);
        const closed = new Promise<void>((r) => server.close(() => r()));
        for (const s of [...sessions]) s.terminate();
        await Promise.all([closed, new Promise<void>((r) => { admin.close(() => r()); admin.closeAllConnections(); }), health.stop()]);
        flushStats();
        log.info('proxy stopped');
      })();
      return closing;
    },
  };
}

function send(res: http.ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body, null, 2) + '\n');
}

function listen(server: net.Server, host: string, port: number, key: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => reject(new ConfigError(key, `cannot listen on ${host}:${port}: ${e.code ?? e.message}`));
    server.once('error', onError);
    server.listen(port, host, () => { server.off('error', onError); resolve(); });
  });
}

function loadTls(t: { cert: string; key: string }): tls.SecureContext {
  let cert: Buffer;
  let key: Buffer;
  try { cert = readFileSync(t.cert); } catch (e) { throw new ConfigError('proxy.tls.cert', `cannot read ${t.cert}: ${(e as NodeJS.ErrnoException).code}`); }
  try { key = readFileSync(t.key); } catch (e) { throw new ConfigError('proxy.tls.key', `cannot read ${t.key}: ${(e as NodeJS.ErrnoException).code}`); }
  try { return tls.createSecureContext({ cert, key }); } catch (e) { throw new ConfigError('proxy.tls', `invalid certificate or key: ${(e as Error).message}`); }
}

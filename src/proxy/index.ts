/**
 * The proxy process: a TCP listener that turns each connection into a
 * Session, an admin HTTP port (/metrics, /healthz, /status) and the periodic
 * health check of both sides.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import prom from 'prom-client';
import { ConfigError, PgflipConfig } from '../config';
import { Side, SIDES } from '../side';
import { logger, redactUrl } from '../observability/logger';
import { proxyMetrics, registry as defaultRegistry } from '../observability/metrics';
import { openStateStore } from '../state';
import type { ProxyMeta, StateStore } from '../state/store';
import { FleetMember, FleetMemberOptions } from '../switch/fleet-member';
import { AdminSwitch } from './admin-switch';
import { BackendTarget, connectBackend, parseBackendUrl } from './backend-connect';
import { ServerPools } from './pool/server-pool';
import { SharedListeners } from './pool/listeners';
import { CancelKeyStore, MemoryCancelKeyStore } from './cancel';
import { FleetCancelRouter } from './cancel-router';
import { ProxyContext, RelayStats } from './context';
import { LastPause, ProxyFlipParticipant } from './flip-participant';
import { HealthChecker, SideHealth } from './health';
import { LostBackends } from './lost-backend';
import { parseVerifier, ScramSecret, secretFromPassword } from './scram';
import { Session, SessionInfo } from './session';
import { PIN_REASONS, PinReason } from './sql-inspect';
import { SchemaVersions, isOld } from './schema-version';

export type { SessionInfo } from './session';
export { Session } from './session';
export { replayState } from './replay';

export interface ProxyStatus {
  /** this proxy's id in the fleet */
  id: string;
  /** its process (a worker's, under proxy.workers) */
  pid: number;
  activeSide: Side;
  /** the fleet epoch this proxy serves under */
  epoch: number;
  /** memory (this process only) or redis (a fleet) */
  store: 'memory' | 'redis';
  listen: string;
  sessions: number;
  maxClientConnections: number;
  sides: Record<Side, { url: string; active: boolean } & SideHealth>;
  /** sessions whose client bytes are held right now (a flip in progress) */
  held: number;
  /** transaction-mode pools: server connections idle and leased, transactions waiting */
  pools: Array<{ side: Side; database: string; idle: number; active: number; waiting: number }>;
  /** transaction mode's shared LISTEN connections: channels listened per side and database */
  listening: Array<{ side: Side; database: string; channels: number }>;
  /** sessions with state that cannot move to the other side (temporary tables, advisory locks…) */
  pinned: number;
  /** the last pause that held sessions, null before any */
  lastPause: LastPause | null;
  sessionList: SessionInfo[];
}

export interface ProxyServer {
  /** actual port of the PostgreSQL listener */
  readonly port: number;
  /** actual port of the admin HTTP listener */
  readonly adminPort: number;
  /** side new sessions are served by */
  readonly activeSide: Side;
  /** id in the fleet (registration, cancel routing) */
  readonly id: string;
  /**
   * the state store the proxy joined: Redis when cfg.redisUrl is set, else an
   * in-process MemoryStateStore that a controller in the same process can share
   */
  readonly store: StateStore;
  /** the proxy's part in fleet flips (driven by its FleetMember) */
  readonly participant: ProxyFlipParticipant;
  sessionCount(): number;
  /** sessions with their tracked state */
  sessions(): SessionInfo[];
  /** the live Session objects (for the switch: whenIdle, hold, openBackend, swapBackend, release) */
  liveSessions(): Session[];
  /** side that new sessions are served by from now on */
  setActiveSide(side: Side): void;
  status(): ProxyStatus;
  /** the registry's metrics as prom-client JSON, hot counters added first (what a workers' primary sums) */
  metricsJson(): Promise<prom.MetricObjectWithValues<prom.MetricValue<string>>[]>;
  /** run the health check of both sides now */
  checkHealth(): Promise<void>;
  /** end all sessions (57P01 to their clients) and close the listeners */
  close(): Promise<void>;
}

export interface StartProxyOptions {
  registry?: prom.Registry;
  /** local map of client cancel keys to backends (default: in memory); the fleet-wide routing goes through the store */
  cancelKeys?: CancelKeyStore;
  /** state store to join (default: Redis when cfg.redisUrl, else a new MemoryStateStore); not closed by close() */
  store?: StateStore;
  /** key prefix when the proxy opens a Redis store itself (default pgflip:) */
  storePrefix?: string;
  /** fleet id (default host-pid-random) */
  id?: string;
  /** heartbeat and liveness timing of the fleet membership */
  fleet?: Pick<FleetMemberOptions, 'heartbeatMs' | 'ttlMs'>;
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

  const id = opts.id ?? `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const store = opts.store ?? (await openStateStore({ redisUrl: cfg.redisUrl, prefix: opts.storePrefix, connectionName: `pgflip-proxy-${id}` }));
  const ownStore = !opts.store;
  const cancel = new FleetCancelRouter(opts.cancelKeys ?? new MemoryCancelKeyStore(), store, id, log);
  const sessions = new Set<Session>();
  let admitted = 0;
  let activeSide: Side = cfg.active;
  const stats: RelayStats = { queries: [0, 0], bytesIn: 0, bytesOut: 0 };

  const setActiveSide = (side: Side): void => {
    if (side === activeSide) return;
    activeSide = side;
    flushStats();
    log.info({ activeSide }, 'active side changed');
    lost.wake();
  };
  const versions = new SchemaVersions(store, log);
  const pools = new ServerPools((side, params, database) => connectBackend(targets[side], params, database, cfg.proxy.connectTimeoutMs), log.child({ component: 'pool' }), cfg.proxy.poolTimeoutMs);
  // transaction mode's LISTEN: one listening connection per side and database (startup parameters of its own)
  const listeners = new SharedListeners((side, database) => connectBackend(targets[side], new Map([['application_name', 'pgflip listener']]), database, cfg.proxy.connectTimeoutMs), log.child({ component: 'listen' }));
  const participant = new ProxyFlipParticipant(id, {
    cfg, log, metrics, sessions: () => sessions, activeSide: () => activeSide, setActiveSide, pools, listeners,
    refreshVersions: () => { void versions.refresh(); }, versionsReady: () => versions.ready(), compat: () => versions.current(),
  });
  const lost = new LostBackends({
    log, waitMs: cfg.proxy.lostBackendWaitMs, retryMs: cfg.proxy.healthCheck.intervalMs,
    activeSide: () => activeSide, prepare: (s, side) => participant.prepareFor(s, side), attached: (s) => participant.sessionAttached(s),
  });
  // nothing is admitted before the proxy serves the fleet's side and epoch
  participant.closeGate();

  const ctx: ProxyContext = {
    cfg, log, metrics, stats, targets, tlsContext,
    durations: [metrics.queryDuration.labels('blue'), metrics.queryDuration.labels('green')],
    activeSide: () => activeSide,
    compat: () => versions.current(),
    cancel,
    pools,
    listeners,
    admission: () => participant.admission(),
    scramSecret: (user) => secrets.get(user),
    mockSalt: (user) => createHmac('sha256', mockKey).update(user).digest().subarray(0, 16),
    admit: () => { if (admitted >= cfg.proxy.maxClientConnections) return false; admitted++; return true; },
    release: () => { admitted--; },
    sessionStarted: (s) => { sessions.add(s as Session); },
    sessionAttached: (s) => { participant.sessionAttached(s as Session); },
    sessionEnded: (s) => { sessions.delete(s as Session); participant.sessionEnded(s as Session); lost.remove(s as Session); },
    // it leaves any flip in progress (its entry there would wait for a backend that is gone)
    backendLost: (s) => { participant.sessionEnded(s as Session); lost.add(s as Session); },
    nextBackendChange: (ms) => lost.nextChange(ms),
  };

  /** sessions served the previous schema version of the migration that serves one */
  const oldVersionSessions = (): number => {
    const c = versions.current();
    let n = 0;
    if (c) for (const s of sessions) if (isOld(s.schemaVersion, c)) n++;
    return n;
  };
  /** what each pinned session was pinned by at the last count: a new reason is logged once */
  const pinnedBy = new WeakMap<Session, string>();
  const countPinned = (): void => {
    const counts = new Map<PinReason, number>(PIN_REASONS.map((r) => [r, 0]));
    for (const s of sessions) {
      const reasons = s.state?.pinnedReasons() ?? [];
      for (const r of reasons) counts.set(r, (counts.get(r) ?? 0) + 1);
      const key = reasons.join(', ');
      if (key && pinnedBy.get(s) !== key) {
        s.log.info({ reasons, policy: cfg.proxy.pinnedPolicy }, `session pinned to its backend (${key}): a flip ${cfg.proxy.pinnedPolicy === 'terminate' ? 'ends it (57P01)' : 'fails while it lasts'}`);
      }
      if (key) pinnedBy.set(s, key); else pinnedBy.delete(s);
    }
    for (const [r, n] of counts) metrics.pinnedSessions.labels(r).set(n);
  };
  const flushStats = (): void => {
    const [qb, qg] = stats.queries;
    if (qb) metrics.queries.labels('blue').inc(qb);
    if (qg) metrics.queries.labels('green').inc(qg);
    if (stats.bytesIn) metrics.bytes.labels('client_to_server').inc(stats.bytesIn);
    if (stats.bytesOut) metrics.bytes.labels('server_to_client').inc(stats.bytesOut);
    stats.queries[0] = stats.queries[1] = stats.bytesIn = stats.bytesOut = 0;
    metrics.clientConnections.set(sessions.size);
    const old = oldVersionSessions();
    metrics.sessionsByVersion.labels('old').set(old);
    metrics.sessionsByVersion.labels('new').set(sessions.size - old);
    for (const s of SIDES) metrics.activeSide.labels(s).set(s === activeSide ? 1 : 0);
    countPinned();
    for (const side of SIDES) {
      let idle = 0; let active = 0; let waiting = 0;
      for (const p of pools.stats()) if (p.side === side) { idle += p.idle; active += p.active; waiting += p.waiting; }
      metrics.poolConnections.labels(side, 'idle').set(idle);
      metrics.poolConnections.labels(side, 'active').set(active);
      metrics.poolWaiting.labels(side).set(waiting);
    }
  };
  flushStats();
  metrics.heldSessions.set(0);
  const flushTimer = setInterval(flushStats, STATS_FLUSH_MS);
  flushTimer.unref();

  const health = new HealthChecker(targets, cfg.proxy.healthCheck, log, (side, h) => {
    metrics.backendUp.labels(side).set(h.up ? 1 : 0);
    if (h.up) lost.wake();
  });
  for (const s of SIDES) metrics.backendUp.labels(s).set(0);

  const server = net.createServer({ noDelay: true }, (sock) => {
    const session = new Session(ctx, sock);
    void session.run();
  });
  server.on('error', (e) => log.error({ err: e.message }, 'listener error'));
  await listen(server, cfg.proxy.listen.host, cfg.proxy.listen.port, 'proxy.listen');
  const port = (server.address() as net.AddressInfo).port;

  const status = (): ProxyStatus => ({
    id,
    pid: process.pid,
    activeSide,
    epoch: participant.currentEpoch(),
    store: store.kind,
    listen: `${cfg.proxy.listen.host}:${port}`,
    sessions: sessions.size,
    maxClientConnections: cfg.proxy.maxClientConnections,
    sides: {
      blue: { url: redactUrl(cfg.blue.url), active: activeSide === 'blue', ...health.health.blue },
      green: { url: redactUrl(cfg.green.url), active: activeSide === 'green', ...health.health.green },
    },
    held: [...sessions].filter((s) => s.isHeld).length,
    pools: pools.stats(),
    listening: listeners.stats(),
    pinned: [...sessions].filter((s) => (s.state?.pinnedReasons().length ?? 0) > 0).length,
    lastPause: participant.lastPause(),
    sessionList: [...sessions].slice(0, STATUS_SESSION_LIMIT).map((s) => s.info()),
  });

  const adminSwitch = new AdminSwitch(store, cfg, id, log);
  const admin = http.createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/switch') {
        if (req.method !== 'POST') return send(res, 405, { error: 'use POST /switch with {"target": "blue"|"green"}' });
        const r = await adminSwitch.handle(req);
        return send(res, r.status, r.body);
      }
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
      send(res, 404, { error: 'not found', paths: ['/metrics', '/healthz', '/status', 'POST /switch'] });
    })().catch((e) => send(res, 500, { error: (e as Error).message }));
  });
  const meta: ProxyMeta = { listen: `${cfg.proxy.listen.host}:${port}` };
  const member = new FleetMember(store, participant, { ...opts.fleet, defaultActive: cfg.active, meta });
  let adminPort = 0;
  try {
    await listen(admin, cfg.proxy.admin.host, cfg.proxy.admin.port, 'proxy.admin');
    adminPort = (admin.address() as net.AddressInfo).port;
    meta.adminUrl = advertisedUrl(cfg.proxy.admin.host, adminPort);
    await cancel.start();
    await versions.refresh();
    // adopts the fleet's active side and epoch, then opens admission
    await member.start();
  } catch (e) {
    server.close();
    admin.close();
    await member.stop().catch(() => undefined);
    await cancel.stop();
    if (ownStore) await store.close().catch(() => undefined);
    throw e;
  }
  health.start();
  const healthTtlMs = Math.max(3 * cfg.proxy.healthCheck.intervalMs, 5000);
  const reportHealth = (): void => {
    void versions.refresh();
    const sides: Record<Side, { up: boolean; latencyMs?: number; error?: string }> = {} as never;
    for (const s of SIDES) {
      const h = health.health[s];
      sides[s] = { up: h.up, ...(h.latencyMs !== null ? { latencyMs: h.latencyMs } : {}), ...(h.error ? { error: h.error } : {}) };
    }
    const c = versions.current();
    const old = oldVersionSessions();
    const schemaVersions = c ? { migrationId: c.migrationId, old, new: sessions.size - old } : undefined;
    store.reportHealth({ proxyId: id, at: Date.now(), epoch: participant.currentEpoch(), sides, clientConnections: sessions.size, ...(schemaVersions ? { schemaVersions } : {}) }, healthTtlMs)
      .catch((e: Error) => log.debug({ err: e.message }, 'health report not stored'));
  };
  const healthReportTimer = setInterval(reportHealth, cfg.proxy.healthCheck.intervalMs);
  healthReportTimer.unref();
  log.info({ listen: `${cfg.proxy.listen.host}:${port}`, admin: `${cfg.proxy.admin.host}:${adminPort}`, activeSide, blue: redactUrl(cfg.blue.url), green: redactUrl(cfg.green.url), auth: cfg.proxy.auth }, 'proxy listening');

  let closing: Promise<void> | undefined;
  return {
    port,
    adminPort,
    id,
    store,
    participant,
    get activeSide() { return activeSide; },
    sessionCount: () => sessions.size,
    sessions: () => [...sessions].map((s) => s.info()),
    liveSessions: () => [...sessions],
    setActiveSide,
    status,
    async metricsJson() { flushStats(); return reg.getMetricsAsJSON(); },
    checkHealth: () => health.checkAll(),
    close() {
      closing ??= (async () => {
        clearInterval(flushTimer);
        clearInterval(healthReportTimer);
        // leave the fleet first, so a flip does not wait for this proxy
        await member.stop().catch(() => undefined);
        participant.abort();
        participant.openGate();
        lost.stop();
        const closed = new Promise<void>((r) => server.close(() => r()));
        for (const s of [...sessions]) s.terminate();
        pools.closeAll();
        listeners.closeAll();
        await Promise.all([closed, new Promise<void>((r) => { admin.close(() => r()); admin.closeAllConnections(); }), health.stop()]);
        await adminSwitch.close();
        await cancel.stop();
        if (ownStore) await store.close().catch(() => undefined);
        flushStats();
        log.info('proxy stopped');
      })();
      return closing;
    },
  };
}

/**
 * The admin URL other machines reach this proxy at (the controller scrapes its
 * /metrics during a watch window): a wildcard listen address names this host.
 */
function advertisedUrl(host: string, port: number): string {
  const h = host === '' || host === '0.0.0.0' || host === '::' ? os.hostname() : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

function send(res: http.ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body, null, 2) + '\n');
}

function listen(server: net.Server, host: string, port: number, key: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => reject(new ConfigError(key, `cannot listen on ${host}:${port}: ${e.code ?? e.message}`));
    server.once('error', onError);
    // the admin port is each process's own also under proxy.workers (workers.ts): only the client listener is shared
    server.listen({ port, host, exclusive: key === 'proxy.admin' }, () => { server.off('error', onError); resolve(); });
  });
}

function loadTls(t: { cert: string; key: string }): tls.SecureContext {
  let cert: Buffer;
  let key: Buffer;
  try { cert = readFileSync(t.cert); } catch (e) { throw new ConfigError('proxy.tls.cert', `cannot read ${t.cert}: ${(e as NodeJS.ErrnoException).code}`); }
  try { key = readFileSync(t.key); } catch (e) { throw new ConfigError('proxy.tls.key', `cannot read ${t.key}: ${(e as NodeJS.ErrnoException).code}`); }
  try { return tls.createSecureContext({ cert, key }); } catch (e) { throw new ConfigError('proxy.tls', `invalid certificate or key: ${(e as Error).message}`); }
}

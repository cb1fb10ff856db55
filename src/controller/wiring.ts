/**
 * Binds the orchestrator's ports to the real parts (classifier, flip
 * coordinator, fencing, sync engine) and starts the HTTP API.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { adminUrl, PgflipConfig } from '../config';
import { otherSide } from '../side';
import { logger } from '../observability/logger';
import { classifySql } from '../classifier';
import { MigrationTracer } from '../trace';
import { openStateStore } from '../state';
import type { StateStore } from '../state/store';
import { FleetFlipOutcome, FlipCoordinator } from '../switch/coordinator';
import { fence, Fencer, isFenced, unfence } from '../switch/fencing';
import { applicationRoles } from './roles';
import { errMsg } from './steps';
import { syncFactory } from './sync-adapter';
import { createApp } from './api';
import { AuditLog } from './audit';
import { Orchestrator, OrchestratorDeps } from './orchestrator';
import type { ClassifyPort, FencePort, FlipOutcome, FlipPort, SyncFactory } from './ports';
import { RollbackPoints } from './rollback-points';
import { controllerMetrics } from './metrics';
import { ObjectDrift } from './drift';
import { FlipHistoryEntry, Overview, recordFlip } from './overview';

/** Traces at once: each is a cluster of its own (initdb copy, a server, the schema read). */
const MAX_TRACES = 2;

/** The classifier's programmatic API (src/classifier), and its trace on a throwaway cluster (src/trace). */
export function classifierPort(): ClassifyPort {
  let running = 0;
  const waiting: Array<() => void> = [];
  const slot = async (): Promise<() => void> => {
    if (running >= MAX_TRACES) await new Promise<void>((r) => waiting.push(r));
    running++;
    return () => { running--; waiting.shift()?.(); };
  };
  return {
    async classify(sql, opts) {
      const report = await classifySql(sql, opts);
      if (!opts.trace || !opts.databaseUrl) return report;
      let tracer: MigrationTracer | undefined;
      const release = await slot();
      try {
        tracer = await MigrationTracer.start({ databaseUrl: opts.databaseUrl, exitOnSignal: false });
        await tracer.traceFiles([{ report, sql }]);
      } catch (err) {
        if (opts.trace === 'on') throw new Error(`controller.trace is on, but the trace could not run: ${errMsg(err)}`);
        report.warnings.push(`not traced (controller.trace auto): ${errMsg(err)}`);
      } finally {
        await tracer?.close().catch((err) => logger().warn({ err: errMsg(err) }, 'could not remove the trace cluster'));
        release();
      }
      return report;
    },
  };
}

const HOLD_RELEASE = 'pgflip:maintenance-hold-released';

const toOutcome = (o: FleetFlipOutcome): FlipOutcome => {
  const pauses = Object.values(o.pauseMs);
  return { committed: o.ok, epoch: o.epoch, reason: o.reason, pauseMs: pauses.length ? Math.max(...pauses) : undefined };
};

/**
 * Fleet flips through the coordinator. A maintenance hold is a flip towards the
 * other side whose beforeCommit runs the migration and then declines the
 * commit: every proxy resumes on the side it was on, the epoch does not move.
 */
export function flipPort(store: StateStore, token: () => number | undefined, holdLimitMs: number, migrationId: () => string | undefined = () => undefined): FlipPort & { close(): Promise<void> } {
  // members wait up to the hold limit after the pause deadline before giving up on us
  const coordinator = new FlipCoordinator(store, { commitWindowMs: holdLimitMs });
  const flips = controllerMetrics().flips;
  for (const kind of ['flip', 'hold']) for (const outcome of ['committed', 'aborted']) flips.labels(kind, outcome).inc(0);
  const remember = (e: Omit<FlipHistoryEntry, 'at' | 'migration'>) => {
    flips.labels(e.kind, e.committed ? 'committed' : 'aborted').inc();
    return recordFlip(store, { at: new Date().toISOString(), ...e, ...(migrationId() ? { migration: migrationId() } : {}) });
  };
  return {
    async flip(o) {
      const from = (await store.getActive())?.active;
      const out = toOutcome(await coordinator.flip({ ...o, fencingToken: token() }));
      await remember({ kind: 'flip', from: from ?? otherSide(o.target), target: o.target, committed: out.committed, epoch: out.epoch, pauseMs: out.pauseMs, reason: out.reason });
      return out;
    },
    async hold(o) {
      const cur = (await store.getActive())!;
      let ran = false;
      let failure: Error | undefined;
      const r = await coordinator.flip({
        target: otherSide(cur.active),
        deadlineMs: o.deadlineMs,
        fencingToken: token(),
        hold: true,
        beforeCommit: async () => {
          ran = true;
          try { await o.during(); } catch (err) { failure = err as Error; }
          throw new Error(HOLD_RELEASE);
        },
      });
      const pauses = Object.values(r.pauseMs);
      const pauseMs = pauses.length ? Math.max(...pauses) : undefined;
      // what `during` did is what counts: it may have committed after the proxies gave up holding
      const out: FlipOutcome & { releasedEarly?: boolean } = ran && !failure
        ? { committed: true, epoch: r.epoch, pauseMs, ...(r.reason?.includes(HOLD_RELEASE) ? {} : { releasedEarly: true }) }
        : { committed: false, epoch: r.epoch, pauseMs, reason: failure?.message ?? r.reason };
      await remember({ kind: 'hold', from: cur.active, target: cur.active, committed: out.committed, epoch: out.epoch, pauseMs: out.pauseMs, reason: out.reason });
      return out;
    },
    close: () => coordinator.close(),
  };
}

export interface ControllerHandle {
  url: string;
  port: number;
  orchestrator: Orchestrator;
  store: StateStore;
  audit: AuditLog;
  close(): Promise<void>;
}

export interface StartOptions {
  store?: StateStore;
  /** state store key prefix (tests share one Redis) */
  prefix?: string;
  sync?: SyncFactory;
  fence?: FencePort;
  classifier?: ClassifyPort;
  /** how long to wait for a stale leader lock */
  leaderWaitMs?: number;
  /** tests only: faults injected at named steps (steps.ts) */
  faults?: OrchestratorDeps['faults'];
}

export async function startController(cfg: PgflipConfig, opts: StartOptions = {}): Promise<ControllerHandle> {
  const store = opts.store ?? (await openStateStore({ redisUrl: cfg.redisUrl, prefix: opts.prefix, connectionName: 'pgflip-controller' }));
  const audit = new AuditLog(cfg.controller.auditLog);
  const rollbackPoints = new RollbackPoints(cfg.controller.backupDir, cfg.controller.backupRetention, cfg.controller.schemaDump);
  const classifier = opts.classifier ?? classifierPort();
  let orchestrator: Orchestrator | undefined;
  const flipper = flipPort(store, () => orchestrator?.leaseToken, cfg.controller.holdLimitSeconds * 1000, () => orchestrator?.runningId);
  orchestrator = new Orchestrator({ cfg, store, classifier, audit, rollbackPoints, flipper, sync: opts.sync ?? defaultSync(cfg), fence: opts.fence ?? defaultFence(cfg), faults: opts.faults });
  const overview = new Overview({ orchestrator, rollbackPoints, audit });
  const app = createApp({ orchestrator, classifier, rollbackPoints, audit, apiToken: cfg.controller.apiToken, overview, drift: new ObjectDrift(cfg) });
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.controller.listen.port, cfg.controller.listen.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = cfg.controller.listen.host.includes(':') ? `[${cfg.controller.listen.host}]` : cfg.controller.listen.host;
  await orchestrator.start(opts.leaderWaitMs);
  // a released previous schema version goes once no session uses it (controller/compat.ts)
  const finalizeTimer = setInterval(() => {
    orchestrator!.finalizeWhenUnused().catch((err) => logger().warn({ err: errMsg(err) }, 'could not finalize an unused previous schema version'));
  }, Math.max(1000, cfg.proxy.healthCheck.intervalMs));
  finalizeTimer.unref();
  logger().info({ port, store: store.kind }, 'controller listening');
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    port,
    orchestrator,
    store,
    audit,
    async close() {
      clearInterval(finalizeTimer);
      await new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); });
      overview.close();
      await orchestrator!.stop();
      await flipper.close();
      if (!opts.store) await store.close();
    },
  };
}

function defaultSync(cfg: PgflipConfig): SyncFactory {
  return syncFactory(cfg);
}


/**
 * Fencing (src/switch/fencing.ts): the old side read-only for the application's
 * roles. Without configured roles there is nothing to fence; the status says so.
 */
function defaultFence(cfg: PgflipConfig): FencePort | undefined {
  const roles = applicationRoles(cfg);
  if (!roles.length) {
    logger().warn('no application roles configured (DB_USER or proxy.users): the old side is not fenced after a flip');
    return undefined;
  }
  const database = (side: 'blue' | 'green'): string => cfg.app.database ?? decodeURIComponent(new URL(adminUrl(cfg, side)).pathname.slice(1) || 'postgres');
  return {
    async fence(side) { await fence(adminUrl(cfg, side), { roles, database: database(side) }); },
    async ready(side) {
      const f = await Fencer.connect(adminUrl(cfg, side), { roles, database: database(side) });
      return { fence: async () => { await f.fence(); }, close: () => f.close() };
    },
    async unfence(side) { await unfence(adminUrl(cfg, side), { roles, database: database(side) }); },
    isFenced: (side) => isFenced(adminUrl(cfg, side), database(side)),
  };
}

/**
 * What the status page shows, as one JSON snapshot (GET /overview, and every
 * second on GET /events while someone watches): the pair, the fleet, the
 * running migration with its lag history and watch window, history (migrations,
 * flips, rollback points) and the audit log's newest entries. Everything here
 * is read-only and already public through other routes; nothing carries a
 * secret (URLs are redacted, the audit log holds token fingerprints only).
 */
import { Client } from 'pg';
import { Side, SIDES } from '../side';
import { redactUrl } from '../observability/logger';
import type { StateStore } from '../state/store';
import type { AuditLog } from './audit';
import { probeSide, proxyAdminUrls, registeredAdminUrl, scrapeTraffic, Traffic, windowStats } from './health';
import type { Orchestrator } from './orchestrator';
import { STORE_KEYS } from './records';
import type { RollbackPoints } from './rollback-points';
import type { MigrationRecord } from './types';
import type { Baseline } from './watch';

/** One fleet flip or maintenance hold, as the controller saw it end. */
export interface FlipHistoryEntry {
  at: string;
  /** flip: traffic moves to target; hold: sessions held and resumed on the same side (maintenance) */
  kind: 'flip' | 'hold';
  from: Side;
  target: Side;
  committed: boolean;
  epoch: number;
  /** longest pause a proxy reported, ms */
  pauseMs?: number;
  reason?: string;
  /** the migration that flipped, absent for a manual switch */
  migration?: string;
}

export const FLIP_HISTORY_KEY = 'controller:flips';
const FLIP_HISTORY_MAX = 100;

/** Appends to the flip history; a store that fails here costs the page a row, never the flip. */
export async function recordFlip(store: StateStore, e: FlipHistoryEntry): Promise<void> {
  await store.appendCapped(FLIP_HISTORY_KEY, e, FLIP_HISTORY_MAX).catch(() => undefined);
}

export interface SideView {
  url: string;
  active: boolean;
  up: boolean;
  latencyMs?: number;
  error?: string;
  /** server_version of the side */
  version?: string;
  /** read-only for the application's roles; null when fencing is not configured or the side is down */
  fenced: boolean | null;
}

export interface SchemaDrift {
  checkedAt: string;
  same: boolean;
  /** tables present on one side only */
  onlyOn: Record<Side, string[]>;
  /** tables on both sides whose columns differ */
  differ: Array<{ table: string; blue: string; green: string }>;
}

export interface ProxyView {
  id: string;
  host?: string;
  admin?: string;
  reachable: boolean;
  error?: string;
  activeSide?: Side;
  epoch?: number;
  /** client sessions, held by a flip right now, pinned (state that cannot move) */
  sessions?: number;
  held?: number;
  pinned?: number;
  lastPause?: { ms: number; at: string; from: Side; target: Side; how: string; attempts: number } | null;
  sides?: Partial<Record<Side, { up: boolean; latencyMs?: number | null }>>;
}

export interface TrafficView { qps: number; errorRate: number | null; p95Ms: number | null }

export interface WatchView {
  side: Side;
  startedAt: string;
  endsAt: string;
  windowSeconds: number;
  errorRate: number | null;
  p95Ms: number | null;
  thresholds: { errorRate: number; latencyFactor: number; baselineP95Ms: number | null; p95LimitMs: number | null; healthFailureLimit: number };
}

export interface MigrationSummary {
  id: string; name: string; type: string; classification?: string; state: string; outcome?: string;
  createdAt: string; startedAt?: string; finishedAt?: string; durationMs?: number; pauseMs?: number; dryRun: boolean;
}

export interface OverviewSnapshot {
  at: string;
  pair: { active: Side; epoch: number; leader: boolean; health: 'ok' | 'degraded'; flipInProgress: boolean };
  sides: Record<Side, SideView>;
  drift: SchemaDrift | null;
  /** per side, over the last few seconds, summed over every proxy */
  traffic: Partial<Record<Side, TrafficView>>;
  fleet: ProxyView[];
  migration: MigrationRecord | null;
  lagSeries: Array<{ t: number; seconds: number; bytes: number }>;
  watch: WatchView | null;
  baseline: Baseline | null;
  history: { migrations: MigrationSummary[]; flips: FlipHistoryEntry[]; rollbackPoints: Array<Record<string, unknown>> };
  audit: Array<Record<string, unknown>>;
}

export interface OverviewDeps {
  orchestrator: Orchestrator;
  rollbackPoints: RollbackPoints;
  audit: AuditLog;
}

const SIDE_PROBE_MS = 3000;
const DRIFT_MS = 10_000;
const TICK_MS = 1000;
const TRAFFIC_WINDOW_MS = 5000;
const LAG_POINTS = 600;

const COLUMNS_SQL = `
SELECT n.nspname || '.' || c.relname AS t,
       string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY a.attnum) AS cols
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgflip')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
 GROUP BY 1`;

interface SideProbe { up: boolean; latencyMs?: number; error?: string; version?: string; fenced: boolean | null; columns?: Map<string, string> }

async function probeSideFull(url: string, fenced: () => Promise<boolean>, withColumns: boolean): Promise<SideProbe> {
  const p = await probeSide(url);
  if (!p.up) return { ...p, fenced: null };
  const c = new Client({ connectionString: url, connectionTimeoutMillis: 2000, query_timeout: 5000, application_name: 'pgflip-controller-status' });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const version = (await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0].v;
    let columns: Map<string, string> | undefined;
    if (withColumns) columns = new Map((await c.query<{ t: string; cols: string }>(COLUMNS_SQL)).rows.map((r) => [r.t, r.cols]));
    return { ...p, version, columns, fenced: await fenced().catch(() => null) };
  } catch (err) {
    return { ...p, error: (err as Error).message, fenced: null };
  } finally {
    await c.end().catch(() => undefined);
  }
}

export function schemaDrift(blue: Map<string, string>, green: Map<string, string>): SchemaDrift {
  const onlyOn: Record<Side, string[]> = { blue: [], green: [] };
  const differ: SchemaDrift['differ'] = [];
  for (const [t, cols] of blue) {
    const g = green.get(t);
    if (g === undefined) onlyOn.blue.push(t);
    else if (g !== cols) differ.push({ table: t, blue: cols, green: g });
  }
  for (const t of green.keys()) if (!blue.has(t)) onlyOn.green.push(t);
  onlyOn.blue.sort(); onlyOn.green.sort(); differ.sort((a, b) => a.table.localeCompare(b.table));
  return { checkedAt: new Date().toISOString(), same: !onlyOn.blue.length && !onlyOn.green.length && !differ.length, onlyOn, differ };
}

const ms = (a?: string, b?: string): number | undefined => (a && b ? Date.parse(b) - Date.parse(a) : undefined);

export class Overview {
  private sideCache: { at: number; value: Promise<Record<Side, SideProbe>> } | undefined;
  private drift: SchemaDrift | null = null;
  private driftAt = 0;
  private traffic: Array<{ at: number; traffic: Partial<Record<Side, Traffic>> }> = [];
  private lag: { id: string; points: OverviewSnapshot['lagSeries'] } | undefined;
  private readonly subscribers = new Set<(s: OverviewSnapshot) => void>();
  private timer: NodeJS.Timeout | undefined;
  private building: Promise<OverviewSnapshot> | undefined;

  constructor(private readonly d: OverviewDeps) {}

  /** A snapshot; concurrent callers share one build. */
  snapshot(): Promise<OverviewSnapshot> {
    this.building ??= this.build().finally(() => { this.building = undefined; });
    return this.building;
  }

  /** Snapshots every second until the returned function is called. */
  subscribe(fn: (s: OverviewSnapshot) => void): () => void {
    this.subscribers.add(fn);
    if (!this.timer) {
      this.timer = setInterval(() => { void this.tick(); }, TICK_MS);
      this.timer.unref();
    }
    void this.snapshot().then(fn, () => undefined);
    return () => {
      this.subscribers.delete(fn);
      if (!this.subscribers.size && this.timer) { clearInterval(this.timer); this.timer = undefined; }
    };
  }

  close(): void {
    this.subscribers.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    if (this.building) return; // a slow build: skip a beat rather than pile up
    const s = await this.snapshot().catch(() => undefined);
    if (!s) return;
    for (const fn of this.subscribers) {
      try { fn(s); } catch { /* a closed stream */ }
    }
  }

  private sides(): Promise<Record<Side, SideProbe>> {
    const o = this.d.orchestrator;
    if (this.sideCache && Date.now() - this.sideCache.at < SIDE_PROBE_MS) return this.sideCache.value;
    const withColumns = Date.now() - this.driftAt >= DRIFT_MS;
    const value = (async () => {
      const probes = await Promise.all(SIDES.map((s) => probeSideFull(o.sideUrl(s), () => o.fence ? o.fence.isFenced(s) : Promise.resolve(false), withColumns)));
      const r = { blue: probes[0], green: probes[1] };
      if (withColumns && r.blue.columns && r.green.columns) {
        this.drift = schemaDrift(r.blue.columns, r.green.columns);
        this.driftAt = Date.now();
      }
      return r;
    })();
    this.sideCache = { at: Date.now(), value };
    return value;
  }

  private async fleet(store: StateStore): Promise<ProxyView[]> {
    const [proxies, reports] = await Promise.all([store.liveProxies().catch(() => []), store.healthReports().catch(() => [])]);
    return Promise.all(proxies.map(async (p): Promise<ProxyView> => {
      const admin = registeredAdminUrl(p.meta);
      const report = reports.find((r) => r.proxyId === p.id);
      const base: ProxyView = { id: p.id, host: p.host, admin, reachable: false, ...(report ? { sides: report.sides, sessions: report.clientConnections } : {}) };
      if (!admin) return { ...base, error: 'no admin URL registered' };
      try {
        const res = await fetch(`${admin.replace(/\/$/, '')}/status`, { signal: AbortSignal.timeout(1500) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const st = await res.json() as { activeSide: Side; epoch: number; sessions: number; held?: number; pinned?: number; lastPause?: ProxyView['lastPause']; sides: Record<Side, { up: boolean; latencyMs?: number | null }> };
        return {
          ...base, reachable: true, activeSide: st.activeSide, epoch: st.epoch, sessions: st.sessions, held: st.held, pinned: st.pinned, lastPause: st.lastPause ?? null,
          sides: { blue: { up: st.sides.blue.up, latencyMs: st.sides.blue.latencyMs }, green: { up: st.sides.green.up, latencyMs: st.sides.green.latencyMs } },
        };
      } catch (err) {
        return { ...base, error: `${admin}/status: ${(err as Error).message}` };
      }
    }));
  }

  /** Per side over the last few seconds: one scrape per build, compared with the oldest in the window. */
  private async trafficStats(): Promise<Partial<Record<Side, TrafficView>>> {
    const o = this.d.orchestrator;
    const urls = await proxyAdminUrls(o.cfg.controller.proxyAdminUrls, o.store);
    if (!urls.length) return {};
    const now = Date.now();
    const { traffic } = await scrapeTraffic(urls, 1500);
    this.traffic.push({ at: now, traffic });
    while (this.traffic.length > 2 && now - this.traffic[1].at >= TRAFFIC_WINDOW_MS) this.traffic.shift();
    const first = this.traffic[0];
    const out: Partial<Record<Side, TrafficView>> = {};
    if (first.at === now) return out;
    const seconds = (now - first.at) / 1000;
    for (const s of SIDES) {
      const w = windowStats(first.traffic[s], traffic[s]);
      out[s] = {
        qps: Math.round((w.queries / seconds) * 10) / 10,
        errorRate: w.errorRate ?? null,
        p95Ms: w.p95Ms === undefined || !Number.isFinite(w.p95Ms) ? null : w.p95Ms,
      };
    }
    return out;
  }

  private lagSeries(m: MigrationRecord | null): OverviewSnapshot['lagSeries'] {
    if (!m) return this.lag?.points ?? [];
    if (this.lag?.id !== m.id) this.lag = { id: m.id, points: [] };
    if (m.lag && m.state === 'running') {
      this.lag.points.push({ t: Date.now(), seconds: m.lag.seconds, bytes: m.lag.bytes });
      if (this.lag.points.length > LAG_POINTS) this.lag.points.shift();
    }
    return this.lag.points;
  }

  private async build(): Promise<OverviewSnapshot> {
    const o = this.d.orchestrator;
    const store = o.store;
    const c = o.cfg.controller;
    const [active, flip, current, sides, fleet, traffic, migrations, flips, points, audit, baseline] = await Promise.all([
      o.activeSide(),
      store.currentFlip().catch(() => null),
      o.current().catch(() => undefined),
      this.sides(),
      this.fleet(store),
      this.trafficStats().catch((): Partial<Record<Side, TrafficView>> => ({})),
      o.list(20).catch(() => []),
      store.listRange<FlipHistoryEntry>(FLIP_HISTORY_KEY, 20).catch(() => []),
      this.d.rollbackPoints.list().catch(() => []),
      this.d.audit.tail(15).catch(() => []),
      store.getJson<Baseline>(STORE_KEYS.baseline).then((v) => v?.value ?? null, () => null),
    ]);
    const migration = current ?? null;
    const activeDownAtProxy = fleet.some((p) => p.sides?.[active.active]?.up === false);
    const health = sides.blue.up && sides.green.up && o.isLeader && !activeDownAtProxy ? 'ok' : 'degraded';
    const sideViews = {} as Record<Side, SideView>;
    for (const s of SIDES) {
      const { columns: _c, ...p } = sides[s];
      sideViews[s] = { url: redactUrl(o.sideUrl(s)), active: active.active === s, ...p };
    }
    let watch: WatchView | null = null;
    const step = migration?.steps.at(-1);
    if (migration && migration.side && step?.name === 'watch' && step.state === 'running') {
      const t = traffic[migration.side];
      const baselineP95 = baseline?.p95Ms ?? null;
      watch = {
        side: migration.side, startedAt: step.startedAt,
        endsAt: new Date(Date.parse(step.startedAt) + c.watchWindowSeconds * 1000).toISOString(),
        windowSeconds: c.watchWindowSeconds,
        errorRate: t?.errorRate ?? null, p95Ms: t?.p95Ms ?? null,
        thresholds: {
          errorRate: c.errorRateThreshold, latencyFactor: c.latencyFactor, baselineP95Ms: baselineP95,
          p95LimitMs: baselineP95 ? baselineP95 * c.latencyFactor : null, healthFailureLimit: c.healthFailureLimit,
        },
      };
    }
    const pauseOf = (m: MigrationRecord): number | undefined => {
      const f = flips.find((x) => x.migration === m.id && x.committed && x.pauseMs !== undefined);
      if (f) return f.pauseMs;
      const detail = m.steps.find((s) => s.name === 'flip')?.detail;
      const hit = detail ? /pause (\d+(?:\.\d+)?) ms/.exec(detail) : null;
      return hit ? Number(hit[1]) : undefined;
    };
    return {
      at: new Date().toISOString(),
      pair: { active: active.active, epoch: active.epoch, leader: o.isLeader, health, flipInProgress: flip?.state === 'pausing' },
      sides: sideViews,
      drift: this.drift,
      traffic,
      fleet,
      migration,
      lagSeries: this.lagSeries(migration),
      watch,
      baseline,
      history: {
        migrations: migrations.map((m) => ({
          id: m.id, name: m.name, type: m.type, classification: m.classification, state: m.state, outcome: m.outcome, dryRun: m.dryRun,
          createdAt: m.createdAt, startedAt: m.startedAt, finishedAt: m.finishedAt, durationMs: ms(m.startedAt, m.finishedAt), pauseMs: pauseOf(m),
        })),
        flips,
        rollbackPoints: points.slice(0, 20).map(({ file, ...p }) => ({ ...p, file: file.split('/').pop() })),
      },
      audit: audit as unknown as Array<Record<string, unknown>>,
    };
  }
}

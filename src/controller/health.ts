/**
 * Health of the pair as the controller sees it: direct probes of each side,
 * the proxies' own reports in the state store, and the proxies' traffic
 * counters (admin /metrics) from which the watch window computes error rate and
 * p95 latency per side.
 */
import { Client } from 'pg';
import type { Side } from '../side';
import type { ProxyMeta, StateStore } from '../state/store';
import { METRIC } from '../observability/metrics';

export interface Probe { up: boolean; latencyMs?: number; error?: string }

export async function probeSide(url: string, timeoutMs = 2000): Promise<Probe> {
  if (!url) return { up: false, error: 'no URL configured' };
  const started = Date.now();
  const c = new Client({ connectionString: url, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs, application_name: 'pgflip-controller-health' });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return { up: true, latencyMs: Date.now() - started };
  } catch (err) {
    return { up: false, error: (err as Error).message };
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Metric names the proxies export, read by the watch window. */
export const TRAFFIC_METRICS = {
  queries: METRIC.queries,
  errors: METRIC.queryErrors,
  /** a histogram of query latency by side, when the proxies export one */
  latencyBucket: 'pgflip_query_duration_seconds_bucket',
} as const;

/** Cumulative counters of one side, summed over every proxy scraped. */
export interface Traffic {
  queries: number;
  errors: number;
  /** cumulative histogram: upper bound (seconds) → count */
  buckets: Map<number, number>;
}

const emptyTraffic = (): Traffic => ({ queries: 0, errors: 0, buckets: new Map() });

/** Parses Prometheus text; sums the traffic metrics by their `side` label. */
export function parseTraffic(text: string, into: Partial<Record<Side, Traffic>> = {}): Partial<Record<Side, Traffic>> {
  const re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+([-+0-9.eEInfa]+)/;
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = re.exec(line);
    if (!m) continue;
    const [, name, labelText = '', raw] = m;
    if (name !== TRAFFIC_METRICS.queries && name !== TRAFFIC_METRICS.errors && name !== TRAFFIC_METRICS.latencyBucket) continue;
    const labels: Record<string, string> = {};
    for (const l of labelText.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    const side = labels.side as Side;
    if (side !== 'blue' && side !== 'green') continue;
    const t = (into[side] ??= emptyTraffic());
    const v = Number(raw);
    if (name === TRAFFIC_METRICS.queries) t.queries += v;
    else if (name === TRAFFIC_METRICS.errors) t.errors += v;
    else {
      const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
      t.buckets.set(le, (t.buckets.get(le) ?? 0) + v);
    }
  }
  return into;
}

export async function scrapeTraffic(urls: string[], timeoutMs = 2000): Promise<{ traffic: Partial<Record<Side, Traffic>>; failed: string[] }> {
  const traffic: Partial<Record<Side, Traffic>> = {};
  const failed: string[] = [];
  await Promise.all(urls.map(async (base) => {
    try {
      const res = await fetch(`${base.replace(/\/$/, '')}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      parseTraffic(await res.text(), traffic);
    } catch (err) {
      failed.push(`${base}: ${(err as Error).message}`);
    }
  }));
  return { traffic, failed };
}

/** Error fraction and p95 latency (ms) between two cumulative snapshots; undefined without traffic. */
export function windowStats(before: Traffic | undefined, after: Traffic | undefined): { queries: number; errorRate?: number; p95Ms?: number } {
  if (!after) return { queries: 0 };
  const b = before ?? emptyTraffic();
  const queries = after.queries - b.queries;
  if (queries <= 0) return { queries: 0 };
  const errorRate = Math.max(0, after.errors - b.errors) / queries;
  const bounds = [...after.buckets.keys()].sort((x, y) => x - y);
  const total = (after.buckets.get(Infinity) ?? 0) - (b.buckets.get(Infinity) ?? 0);
  let p95Ms: number | undefined;
  if (total > 0) {
    for (const le of bounds) {
      const n = (after.buckets.get(le) ?? 0) - (b.buckets.get(le) ?? 0);
      if (n >= 0.95 * total) { p95Ms = le === Infinity ? Infinity : le * 1000; break; }
    }
  }
  return { queries, errorRate, p95Ms };
}

/** The admin URL a proxy registered in the fleet (ProxyMeta.adminUrl), without a trailing slash. */
export function registeredAdminUrl(meta: ProxyMeta | undefined): string | undefined {
  const u = meta?.adminUrl;
  return typeof u === 'string' && /^https?:\/\//.test(u) ? u.replace(/\/$/, '') : undefined;
}

/** Admin URLs to scrape: configured ones plus those the live proxies registered. */
export async function proxyAdminUrls(configured: string[], store: StateStore): Promise<string[]> {
  const urls = new Set(configured);
  for (const p of await store.liveProxies().catch(() => [])) {
    const u = registeredAdminUrl(p.meta);
    if (u) urls.add(u);
  }
  return [...urls];
}

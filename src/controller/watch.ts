/**
 * The watch window after a risky flip: sample the new side until the window
 * ends or a rollback condition holds: error rate above the pre-flip error rate
 * by more than the threshold, p95 latency above k× the pre-flip baseline,
 * consecutive failed health checks, or the new side unreachable.
 *
 * Traffic comes from the proxies' admin /metrics: the configured
 * controller.proxyAdminUrls plus the adminUrl every live proxy registers in the
 * fleet (ProxyMeta), so a fleet needs no configuration for it.
 */
import type { PgflipConfig } from '../config';
import type { Side } from '../side';
import type { StateStore } from '../state/store';
import { sleep } from '../util/sleep';
import { probeSide, proxyAdminUrls, scrapeTraffic, Traffic, windowStats } from './health';
import { STORE_KEYS } from './records';

export interface WatchVerdict { ok: boolean; reason: string }

export interface Baseline { p95Ms: number; errorRate: number; measuredAt: string; queries: number }

/** Minimum queries in an interval before error rate and latency count (noise on idle systems). */
const MIN_QUERIES = 20;

/** The application's error rate on the old side before the flip, from the proxies' counters. */
export interface PreFlip { side: Side; queries: number; errorRate?: number }

export interface WatchOptions {
  cfg: PgflipConfig['controller'];
  /** how long to watch; default cfg.watchWindowSeconds */
  windowSeconds?: number;
  /** errors the application made before the flip are not the new side's fault */
  preFlip?: PreFlip;
  /** counters read before the flip: the window's first interval starts there, so what the
   *  application met on the side between the flip and the window (the final verify) counts */
  since?: TrafficSnapshot;
  /** the baseline, the proxies' health reports and their admin URLs */
  store: StateStore;
  /** the side watched, and how the controller reaches it */
  side: Side;
  url: string;
  signal?: AbortSignal;
}

/** A snapshot of the proxies' cumulative traffic counters, taken to compare with a later one. */
export interface TrafficSnapshot { traffic: Partial<Record<Side, Traffic>>; urls: number }

export async function trafficSnapshot(c: PgflipConfig['controller'], store: StateStore): Promise<TrafficSnapshot> {
  const urls = await proxyAdminUrls(c.proxyAdminUrls, store);
  return { traffic: urls.length ? (await scrapeTraffic(urls)).traffic : {}, urls: urls.length };
}

/** The error rate on `side` between two snapshots; errorRate undefined below MIN_QUERIES. */
export function preFlipRate(side: Side, before: TrafficSnapshot | undefined, after: TrafficSnapshot | undefined): PreFlip {
  const stats = windowStats(before?.traffic[side], after?.traffic[side]);
  return { side, queries: stats.queries, ...(stats.queries >= MIN_QUERIES && stats.errorRate !== undefined ? { errorRate: stats.errorRate } : {}) };
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

export async function watchWindow(o: WatchOptions): Promise<WatchVerdict> {
  const { cfg: c, store, side } = o;
  const windowSeconds = o.windowSeconds ?? c.watchWindowSeconds;
  if (windowSeconds === 0) return { ok: true, reason: 'watch window disabled (0 s)' };
  const baseline = (await store.getJson<Baseline>(STORE_KEYS.baseline))?.value ?? undefined;
  // the error rate the application had before the flip: measured during this migration, else the stored baseline's
  const before = o.preFlip?.errorRate !== undefined ? { rate: o.preFlip.errorRate, what: `the pre-flip ${pct(o.preFlip.errorRate)} on ${o.preFlip.side}` }
    : baseline && baseline.errorRate > 0 ? { rate: baseline.errorRate, what: `the baseline's ${pct(baseline.errorRate)}` } : { rate: 0, what: '' };
  const limit = before.rate + c.errorRateThreshold;
  const limitText = before.rate > 0 ? `${pct(limit)} (${before.what} + ${pct(c.errorRateThreshold)})` : pct(c.errorRateThreshold);
  const urls = await proxyAdminUrls(c.proxyAdminUrls, store);
  const end = Date.now() + windowSeconds * 1000;
  let failures = 0;
  const first = urls.length ? await scrapeTraffic(urls) : undefined;
  let prev: Traffic | undefined = o.since ? o.since.traffic[side] : first?.traffic[side];
  /** proxies whose /metrics could not be read at some sample: what failed last */
  const unreachable = new Map<string, string>();
  const noteFailed = (failed: string[]) => { for (const f of failed) unreachable.set(f.slice(0, f.indexOf(': ')), f); };
  noteFailed(first?.failed ?? []);
  let samples = 0;
  while (Date.now() < end) {
    // an abort ends the wait; the verdict below says so
    await sleep(Math.min(c.watchIntervalMs, Math.max(0, end - Date.now())), o.signal).catch(() => undefined);
    if (o.signal?.aborted) return { ok: false, reason: 'aborted during the watch window' };
    samples++;
    const probe = await probeSide(o.url, Math.min(2000, c.watchIntervalMs * 2));
    const reports = await store.healthReports().catch(() => []);
    const proxyDown = reports.filter((r) => r.sides[side] && r.sides[side]!.up === false);
    if (!probe.up || proxyDown.length) {
      failures++;
      const why = !probe.up ? `${side} unreachable: ${probe.error}` : `${proxyDown.length} proxy(ies) report ${side} down`;
      if (failures >= c.healthFailureLimit) return { ok: false, reason: `${failures} consecutive failed health checks (${why})` };
      continue;
    }
    failures = 0;
    if (!urls.length) continue;
    const { traffic, failed } = await scrapeTraffic(urls);
    noteFailed(failed);
    const stats = windowStats(prev, traffic[side]);
    // too few queries to judge: the next sample judges a longer interval
    if (stats.queries < MIN_QUERIES) continue;
    prev = traffic[side] ?? prev;
    if (stats.errorRate !== undefined && stats.errorRate > limit) {
      return { ok: false, reason: `error rate ${pct(stats.errorRate)} on ${side} above ${limitText}` };
    }
    if (baseline && stats.p95Ms !== undefined && baseline.p95Ms > 0 && stats.p95Ms > c.latencyFactor * baseline.p95Ms) {
      return { ok: false, reason: `p95 latency ${stats.p95Ms.toFixed(1)} ms on ${side} above ${c.latencyFactor}× baseline ${baseline.p95Ms.toFixed(1)} ms` };
    }
  }
  const traffic = !urls.length ? '; error rate and latency not watched: no proxy admin URL (controller.proxyAdminUrls, or proxies registered in the state store)'
    : unreachable.size ? `, traffic from ${urls.length} proxy(ies), ${unreachable.size} of them not always readable: ${[...unreachable.values()].slice(0, 3).join('; ')}`
      : `, traffic from ${urls.length} proxy(ies)`;
  const pre = o.preFlip?.errorRate !== undefined ? `; pre-flip error rate ${pct(o.preFlip.errorRate)} on ${o.preFlip.side}` : '';
  return { ok: true, reason: `healthy for ${windowSeconds}s (${samples} checks${traffic}${pre})` };
}

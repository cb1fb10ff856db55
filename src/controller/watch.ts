/**
 * The watch window after a risky flip: sample the new side until the window
 * ends or a rollback condition holds: error rate above the threshold, p95
 * latency above k× the pre-flip baseline, consecutive failed health checks, or
 * the new side unreachable.
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

export interface WatchOptions {
  cfg: PgflipConfig['controller'];
  /** the baseline, the proxies' health reports and their admin URLs */
  store: StateStore;
  /** the side watched, and how the controller reaches it */
  side: Side;
  url: string;
  signal?: AbortSignal;
}

export async function watchWindow(o: WatchOptions): Promise<WatchVerdict> {
  const { cfg: c, store, side } = o;
  if (c.watchWindowSeconds === 0) return { ok: true, reason: 'watch window disabled (0 s)' };
  const baseline = (await store.getJson<Baseline>(STORE_KEYS.baseline))?.value ?? undefined;
  const urls = await proxyAdminUrls(c.proxyAdminUrls, store);
  const end = Date.now() + c.watchWindowSeconds * 1000;
  let failures = 0;
  let prev: Traffic | undefined = urls.length ? (await scrapeTraffic(urls)).traffic[side] : undefined;
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
    const { traffic } = await scrapeTraffic(urls);
    const stats = windowStats(prev, traffic[side]);
    prev = traffic[side] ?? prev;
    if (stats.queries < MIN_QUERIES) continue;
    if (stats.errorRate !== undefined && stats.errorRate > c.errorRateThreshold) {
      return { ok: false, reason: `error rate ${(stats.errorRate * 100).toFixed(1)}% on ${side} above ${(c.errorRateThreshold * 100).toFixed(1)}%` };
    }
    if (baseline && stats.p95Ms !== undefined && baseline.p95Ms > 0 && stats.p95Ms > c.latencyFactor * baseline.p95Ms) {
      return { ok: false, reason: `p95 latency ${stats.p95Ms.toFixed(1)} ms on ${side} above ${c.latencyFactor}× baseline ${baseline.p95Ms.toFixed(1)} ms` };
    }
  }
  return { ok: true, reason: `healthy for ${c.watchWindowSeconds}s (${samples} checks${urls.length ? `, traffic from ${urls.length} proxy(ies)` : ''})` };
}

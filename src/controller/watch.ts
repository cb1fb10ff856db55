/**
 * The watch window after a risky flip: sample the new side until the window
 * ends or a rollback condition holds (DESIGN §7): error rate above the
 * threshold, p95 latency above k× the pre-flip baseline, consecutive failed
 * health checks, or the new side unreachable.
 */
import type { Side } from '../config';
import type { Orchestrator } from './orchestrator';
import { STORE_KEYS } from './orchestrator';
import { probeSide, proxyAdminUrls, scrapeTraffic, Traffic, windowStats } from './health';
import type { StoredMigration } from './types';

export interface WatchVerdict { ok: boolean; reason: string }

export interface Baseline { p95Ms: number; errorRate: number; measuredAt: string; queries: number }

/** Minimum queries in an interval before error rate and latency count (noise on idle systems). */
const MIN_QUERIES = 20;

export async function watchWindow(o: { orchestrator: Orchestrator; rec: StoredMigration; side: Side; signal?: AbortSignal }): Promise<WatchVerdict> {
  const { orchestrator: orch, side } = o;
  const c = orch.cfg.controller;
  if (c.watchWindowSeconds === 0) return { ok: true, reason: 'watch window disabled (0 s)' };
  const baseline = (await orch.store.getJson<Baseline>(STORE_KEYS.baseline))?.value ?? undefined;
  const urls = await proxyAdminUrls(c.proxyAdminUrls, orch.store);
  const end = Date.now() + c.watchWindowSeconds * 1000;
  let failures = 0;
  let prev: Traffic | undefined = urls.length ? (await scrapeTraffic(urls)).traffic[side] : undefined;
  let samples = 0;
  while (Date.now() < end) {
    await sleep(Math.min(c.watchIntervalMs, Math.max(0, end - Date.now())), o.signal);
    if (o.signal?.aborted) return { ok: false, reason: 'aborted during the watch window' };
    samples++;
    const probe = await probeSide(orch.sideUrl(side), Math.min(2000, c.watchIntervalMs * 2));
    const reports = await orch.store.healthReports().catch(() => []);
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

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = () => { clearTimeout(t); resolve(); };
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

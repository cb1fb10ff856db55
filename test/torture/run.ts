/**
 * The flip-torture harness: random programs (program.ts) on node-postgres,
 * postgres.js and a raw-protocol client, run through pgflip while a flipper
 * commits flips back and forth and aborts others with a fault injected at
 * each step of the coordinator; every step's result must equal the same
 * program's direct run against PostgreSQL. Used by test/torture (a bounded
 * budget) and bench/torture (a longer run).
 *
 * A failure names the seed; TORTURE_SEED=<seed> draws the same programs and
 * the same flip schedule again (the interleaving of steps and flips follows
 * timing, so a failure that depends on it may need a few runs).
 */
import type { StateStore } from '../../src/state/store';
import { FlipCoordinator } from '../../src/switch/coordinator';
import type { ProxyServer } from '../../src/proxy';
import { openExecutor, Target } from './clients';
import { ClientKind, makeProgram, pinnedAfter, Program, rng } from './program';

export interface TortureOptions {
  seed: number;
  clients: number;
  steps: number;
  /** programs may take state that pins a session (it is ended by a committed flip: a documented end) */
  pins: boolean;
  /** keep flipping at least this long (programs are run again, with new seeds, until then) */
  minDurationMs?: number;
  log?: (line: string) => void;
}

export interface Mismatch { seed: number; program: number; client: ClientKind; step: number; sql: string; direct: string; proxied: string }

export interface TortureReport {
  seed: number;
  programs: number;
  steps: number;
  flips: { committed: number; aborted: Record<string, number>; unexpectedAborts: string[] };
  pinnedEnds: number;
  mismatches: Mismatch[];
  unexpectedEnds: string[];
}

export interface TortureEnv {
  proxy: ProxyServer;
  store: StateStore;
  /** the proxy, as clients reach it */
  proxied: Target;
  /** a database of the same schema, reached directly */
  direct: Target;
}

const KINDS: ClientKind[] = ['node-postgres', 'postgres.js', 'raw'];
/** where the flipper injects a fault: none (a flip that must commit), or one coordinator step */
const FAULTS = ['none', 'none', 'none', 'deadline during prepare', 'beforeCommit throws', 'commit refused (the record was aborted)', 'a proxy loses its pause'] as const;
type Fault = typeof FAULTS[number];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runProgram(p: Program, t: Target, app: string, delay: () => number): Promise<{ results: string[]; ended?: string }> {
  const ex = await openExecutor(p.client, t, app);
  const results: string[] = [];
  try {
    for (const step of p.steps) {
      results.push(await ex.run(step));
      const end = ex.ended();
      if (end) return { results, ended: end };
      const d = delay();
      if (d) await sleep(d);
    }
    return { results };
  } finally {
    await ex.close();
  }
}

export async function torture(env: TortureEnv, opts: TortureOptions): Promise<TortureReport> {
  const log = opts.log ?? (() => undefined);
  const report: TortureReport = { seed: opts.seed, programs: 0, steps: 0, flips: { committed: 0, aborted: {}, unexpectedAborts: [] }, pinnedEnds: 0, mismatches: [], unexpectedEnds: [] };
  const coordinator = new FlipCoordinator(env.store, { commitWindowMs: 1000, switchAckTimeoutMs: 3000 });
  const started = Date.now();
  try {
    for (let round = 0; round === 0 || Date.now() - started < (opts.minDurationMs ?? 0); round++) {
      const seed = opts.seed + round;
      const programs = Array.from({ length: opts.clients }, (_, i) => makeProgram(rng(seed * 7919 + i), KINDS[i % KINDS.length], opts.steps, opts.pins));
      const direct = await Promise.all(programs.map((p, i) => runProgram(p, env.direct, `torture-${i}`, () => 0)));
      let running = true;
      const flipRng = rng(seed ^ 0x5eed);
      const flipper = (async () => {
        while (running) {
          await sleep(50 + Math.floor(flipRng() * 250));
          if (!running) break;
          await flipOnce(env, coordinator, FAULTS[Math.floor(flipRng() * FAULTS.length)], report, log);
        }
      })();
      const delayRng = rng(seed ^ 0xde1a);
      const proxied = await Promise.all(programs.map((p, i) => runProgram(p, env.proxied, `torture-${i}`, () => Math.floor(delayRng() * 15))));
      running = false;
      await flipper;
      programs.forEach((p, i) => {
        report.programs++;
        const got = proxied[i];
        const want = direct[i];
        // a pinned session ended by a committed flip: 57P01 saying so (postgres.js reports only that its connection closed)
        const pinnedEnd = got.ended !== undefined && pinnedAfter(p, got.results.length - 2)
          && (/57P01.*holds state that cannot move/.test(got.ended) || (p.client === 'postgres.js' && /CONNECTION_CLOSED|CONNECTION_ENDED/.test(got.ended)));
        if (got.ended && !pinnedEnd) report.unexpectedEnds.push(`seed ${seed} program ${i} (${p.client}) step ${got.results.length - 1}: ${got.ended}`);
        if (pinnedEnd) report.pinnedEnds++;
        // the step that met the end is not compared: it is the end itself
        const n = got.ended ? got.results.length - 1 : got.results.length;
        for (let s = 0; s < n; s++) {
          report.steps++;
          if (got.results[s] !== want.results[s]) {
            report.mismatches.push({ seed, program: i, client: p.client, step: s, sql: JSON.stringify(p.steps[s]), direct: want.results[s], proxied: got.results[s] });
            break;
          }
        }
      });
      log(`round ${round} (seed ${seed}): ${report.programs} programs, ${report.steps} steps compared, flips committed ${report.flips.committed}, aborted ${JSON.stringify(report.flips.aborted)}`);
      if (report.mismatches.length || report.unexpectedEnds.length || report.flips.unexpectedAborts.length) break;
    }
  } finally {
    await coordinator.close();
  }
  return report;
}

async function flipOnce(env: TortureEnv, coordinator: FlipCoordinator, fault: Fault, report: TortureReport, log: (l: string) => void): Promise<void> {
  const target = env.proxy.activeSide === 'blue' ? 'green' : 'blue';
  const out = await coordinator.flip({
    target,
    deadlineMs: fault === 'deadline during prepare' ? 1 : 3000,
    beforeCommit: async () => {
      if (fault === 'beforeCommit throws') throw new Error('injected fault');
      if (fault === 'commit refused (the record was aborted)') {
        const f = await env.store.currentFlip();
        if (f) await env.store.abortFlip(f.id, 'injected: a proxy gave up');
      }
      // the proxy lets its sessions go while the fleet commits: they move at their next switch point (as after a missed flip)
      if (fault === 'a proxy loses its pause') env.proxy.participant.abort();
    },
  });
  if (out.ok) {
    report.flips.committed++;
    // a 1 ms deadline still commits when no session is connected at that moment
    if (fault === 'beforeCommit throws' || fault === 'commit refused (the record was aborted)') report.flips.unexpectedAborts.push(`a flip with fault "${fault}" committed`);
  } else {
    report.flips.aborted[fault] = (report.flips.aborted[fault] ?? 0) + 1;
    // an idle session must never block a flip; a session in a transaction may, past the deadline
    if (fault === 'none') report.flips.unexpectedAborts.push(`flip to ${target} without a fault aborted: ${out.reason}`);
  }
  log(`flip → ${target} (${fault}): ${out.ok ? `committed, ${out.sessionsCarried} carried, ${out.sessionsTerminated} terminated` : `aborted: ${out.reason}`}`);
}

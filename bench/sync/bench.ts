/**
 * Sync benchmark (not part of npm test). Prints tables of figures measured
 * in this run between two local clusters:
 *  - initial copy of 1M narrow and 200k wide rows: rows/s, and per run the
 *    ratio to `pg_dump --data-only | psql` into the same pre-data schema,
 *    measured back to back;
 *  - apply under a pgbench write load: lag p50/p99/max, write vs apply rate,
 *    and the rate at which a backlog drains (apply capacity).
 * With BENCH_COMPARE_SRC=<other checkout>/src the same figures are measured
 * for that implementation too, interleaved in the same run (side by side);
 * BENCH_COPY_WORKERS=1,4 does the same for the copy with each worker count.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { LocalCluster } from '../../src/pgcluster/local-cluster';
import { SyncSession } from '../../src/sync';
import { defaultCopyWorkers } from '../../src/sync/copy';
import { clientTool } from '../../src/pgcluster/binaries';
import { runTool } from '../../src/sync/schema';

// synchronous_commit stays at its default (on): with it off, WAL reaches the walsender only at the
// WAL writer's next flush (wal_writer_delay), which adds up to 200 ms of lag that is not sync's.
const SETTINGS = { fsync: 'off', full_page_writes: 'off', shared_buffers: '256MB', max_wal_size: '4GB', checkpoint_timeout: '30min' };
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 20);
const PARTS = (process.env.BENCH_PARTS ?? 'copy,apply').split(',');
const TIMELINE = process.env.BENCH_TIMELINE === '1';
// BENCH_COMPARE_SRC / BENCH_COMPARE_LABEL: see implementations()

async function sql(url: string, text: string): Promise<Record<string, unknown>[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try { return (await c.query(text)).rows; } finally { await c.end(); }
}

const withDb = (url: string, db: string) => { const u = new URL(url); u.pathname = `/${db}`; return u.toString(); };
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : 0; };
const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

async function recreate(cluster: LocalCluster, db: string): Promise<void> {
  await sql(cluster.url('postgres'), `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await sql(cluster.url('postgres'), `CREATE DATABASE ${db}`);
}

/** `pg_dump --data-only -t TABLE | psql` into a database holding the pre-data schema; seconds of the data step. */
async function baseline(source: LocalCluster, target: LocalCluster, table: string): Promise<number> {
  await recreate(target, 'baseline');
  const url = withDb(target.url('postgres'), 'baseline');
  const pre = await runTool(clientTool('pg_dump'), ['--schema-only', '--section=pre-data', '-t', table], source.url('app'));
  await runTool(clientTool('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', '-'], url, pre);
  const t0 = Date.now();
  await runTool('/bin/sh', ['-c', `"${clientTool('pg_dump')}" --data-only -t ${table} -d "$SRC" | PGDATABASE=baseline "${clientTool('psql')}" -X -q -v ON_ERROR_STOP=1`], url, undefined, { SRC: source.url('app') });
  return (Date.now() - t0) / 1000;
}

/** A sync implementation to measure: this checkout's, or another checkout's `src` (BENCH_COMPARE_SRC). */
interface Impl { label: string; Session: typeof SyncSession; parallel?: number }

function implementations(): Impl[] {
  // BENCH_COPY_WORKERS=1,4 measures this checkout's copy with each worker count side by side
  const workers = (process.env.BENCH_COPY_WORKERS ?? '').split(',').filter(Boolean).map(Number);
  const impls: Impl[] = workers.length
    ? workers.map((n) => ({ label: `pgflip ${n}w`, Session: SyncSession, parallel: n }))
    : [{ label: 'pgflip', Session: SyncSession }];
  const other = process.env.BENCH_COMPARE_SRC;
  if (other) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(path.resolve(other, 'sync')) as { SyncSession: typeof SyncSession };
    impls.push({ label: process.env.BENCH_COMPARE_LABEL ?? 'compared', Session: mod.SyncSession });
  }
  return impls;
}

async function copyWith(impl: Impl, source: LocalCluster, target: LocalCluster, table: string): Promise<{ seconds: number; rows: number; post: number }> {
  const s = new impl.Session({ source: source.url('app'), target: target.url('app'), slotName: 'pgflip_bench', tables: [table], parallel: impl.parallel });
  await s.prepareTarget({ dropExisting: true });
  const r = await s.initialCopy();
  await s.cleanup();
  return { seconds: r.seconds, rows: r.rows, post: r.postDataSeconds };
}

interface ApplyFigures {
  tps: number;
  writeRate: number;
  appliedRate: number;
  lag: { p50: number; p99: number; max: number };
  /** commit on the source → arrival from the walsender (decoding, the source's share) */
  arrival: { p50: number; p99: number };
  /** arrival → commit on the target (pgflip's share) */
  apply: { p50: number; p99: number };
  gaugeP99: number;
  catchUp: number;
  drainRate: number;
  drained: number;
  drainSeconds: number;
  /** CPU time per 1000 changes while draining the backlog: this process (the sync engine), the target's apply backend, the source's walsender */
  cpuMsPer1k: { sync: number; target: number; walsender: number };
  /** the same during the load, and target transactions committed per second then */
  loadCpuMsPer1k: { sync: number; target: number; walsender: number };
  targetCommitsPerSecond: number;
  equal: boolean;
}

/** Per 500 ms of source commits: transactions, worst commit → arrival and arrival → applied (BENCH_TIMELINE=1). */
function printTimeline(label: string, rows: [number, number, number][], start: number): void {
  const buckets = new Map<number, { n: number; arrival: number; apply: number }>();
  for (const [c, r, a] of rows) {
    const k = Math.floor((c - start) / 500);
    const b = buckets.get(k) ?? { n: 0, arrival: 0, apply: 0 };
    b.n++;
    b.arrival = Math.max(b.arrival, r - c);
    b.apply = Math.max(b.apply, a - r);
    buckets.set(k, b);
  }
  console.error(`${label}: t(s)  txns  max commit→arrival(ms)  max arrival→applied(ms)  load ${os.loadavg()[0].toFixed(1)}`);
  for (const [k, b] of [...buckets].sort((x, y) => x[0] - y[0])) console.error(`${(k / 2).toFixed(1).padStart(6)} ${String(b.n).padStart(5)} ${String(b.arrival).padStart(8)} ${String(b.apply).padStart(8)}`);
}

/** CPU time (ms) a local process has used, from /proc (the clusters run on this machine). */
function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

/** The target's apply backend (the only other client of its database while streaming) and the source's walsender. */
async function streamPids(source: LocalCluster, target: LocalCluster): Promise<{ target: number; walsender: number }> {
  const [t] = await sql(target.url('app'), "SELECT pid FROM pg_stat_activity WHERE datname = 'app' AND backend_type = 'client backend' AND pid <> pg_backend_pid()");
  const [w] = await sql(source.url('app'), 'SELECT pid FROM pg_stat_replication');
  return { target: Number(t?.pid), walsender: Number(w?.pid) };
}

type Cpu = { sync: number; target: number; walsender: number };
const cpuOf = (p: { target: number; walsender: number }): Cpu => {
  const u = process.cpuUsage();
  return { sync: u.user + u.system, target: procCpuMs(p.target), walsender: procCpuMs(p.walsender) };
};
/** CPU ms per 1000 changes between two readings (sync in µs from process.cpuUsage). */
const cpuSince = (a: Cpu, b: Cpu, changes: number): Cpu => ({
  sync: (b.sync - a.sync) / 1000 / (changes / 1000),
  target: (b.target - a.target) / (changes / 1000),
  walsender: (b.walsender - a.walsender) / (changes / 1000),
});

const changeCount = async (url: string) =>
  (await sql(url, "SELECT (n_tup_ins + n_tup_upd + n_tup_del)::float8 AS n FROM pg_stat_user_tables WHERE relname LIKE 'pgbench%'")).reduce((a, r) => a + Number(r.n), 0);

/** Apply under pgbench TPC-B load (mapped int → bigint), then the drain rate of a backlog built with the stream stopped. */
async function applyWith(impl: Impl, source: LocalCluster, target: LocalCluster): Promise<ApplyFigures> {
  const src = source.url('app');
  await recreate(source, 'app');
  await runTool(clientTool('pgbench'), ['-i', '-s', '10', '-q'], src);
  await sql(src, 'ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY');
  const lagSamples: number[] = [];
  const txnLag: number[] = [];
  const arrivalLag: number[] = [];
  const applyLag: number[] = [];
  const timeline: [commit: number, received: number, applied: number][] = [];
  let applyChanges = 0;
  let collecting = true;
  const s = new impl.Session({
    source: src, target: target.url('app'), slotName: 'pgflip_bench_apply',
    migrationSql: 'ALTER TABLE pgbench_accounts ALTER COLUMN abalance TYPE bigint',
    mapping: { tables: [{ table: 'public.pgbench_accounts', renamedColumns: {}, droppedColumns: [], addedColumns: [], typeChanges: [{ column: 'abalance', newType: 'bigint' }] }], newTables: [], droppedTables: [] },
    onApplied: (b) => {
      applyChanges += b.changes;
      if (!collecting) return;
      // (an implementation compared with may not report arrival times)
      const received = (b as { receivedTimes?: number[] }).receivedTimes;
      b.commitTimes.forEach((t, i) => {
        txnLag.push((b.appliedAt - t) / 1000);
        if (!received) return;
        arrivalLag.push((received[i] - t) / 1000);
        applyLag.push((b.appliedAt - received[i]) / 1000);
        if (TIMELINE) timeline.push([t, received[i], b.appliedAt]);
      });
    },
  });
  await s.checkPrerequisites();
  await s.prepareTarget({ dropExisting: true });
  await s.initialCopy();
  await s.migrateTarget();
  await s.startStreaming();
  const pids = await streamPids(source, target);
  const sampler = setInterval(() => lagSamples.push(s.lag().seconds), 100);
  const changesAt = await changeCount(src);
  const batchesAt = s.stats?.batches ?? 0;
  const cpuAt = cpuOf(pids);
  const t0 = Date.now();
  const out = await runTool(clientTool('pgbench'), ['-n', '-c', '4', '-j', '2', '-T', String(LOAD_SECONDS)], src);
  const loadSeconds = (Date.now() - t0) / 1000;
  const appliedDuringLoad = applyChanges;
  const loadCpu = cpuSince(cpuAt, cpuOf(pids), appliedDuringLoad);
  const targetCommits = (s.stats?.batches ?? 0) - batchesAt;
  const catchUp = await s.catchUp();
  clearInterval(sampler);
  collecting = false;
  const written = (await changeCount(src)) - changesAt;
  if (TIMELINE) printTimeline(impl.label, timeline, t0);
  const verify = await s.verify();

  // apply capacity: drain a backlog built while the stream was stopped
  await s.stop();
  await runTool(clientTool('pgbench'), ['-n', '-c', '4', '-j', '2', '-T', String(Math.round(LOAD_SECONDS / 2))], src);
  const before = applyChanges;
  const t1 = Date.now();
  const cpu0 = process.cpuUsage();
  await s.startStreaming();
  const drainPids = await streamPids(source, target);
  const drainCpuAt = cpuOf(drainPids);
  drainCpuAt.sync = cpu0.user + cpu0.system;
  await s.catchUp();
  const drainCpu = cpuOf(drainPids);
  const drainSeconds = (Date.now() - t1) / 1000;
  const drained = applyChanges - before;
  await s.cleanup();
  return {
    tps: Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? 0),
    writeRate: written / loadSeconds,
    appliedRate: appliedDuringLoad / loadSeconds,
    lag: { p50: pct(txnLag, 50), p99: pct(txnLag, 99), max: txnLag.reduce((m, x) => Math.max(m, x), 0) },
    arrival: { p50: pct(arrivalLag, 50), p99: pct(arrivalLag, 99) },
    apply: { p50: pct(applyLag, 50), p99: pct(applyLag, 99) },
    gaugeP99: pct(lagSamples, 99),
    catchUp: catchUp.seconds,
    drainRate: drained / drainSeconds,
    drained,
    drainSeconds,
    cpuMsPer1k: cpuSince(drainCpuAt, drainCpu, drained),
    loadCpuMsPer1k: loadCpu,
    targetCommitsPerSecond: targetCommits / loadSeconds,
    equal: verify.equal,
  };
}

/**
 * What synchronous confirmation costs the source's commits (synchronous.ts; a flip's reverse
 * stream): pgbench TPC-B on the source with the stream running, rounds alternating between its
 * commits waiting for the stream's confirmation and not, in one run.
 */
async function confirmCost(source: LocalCluster, target: LocalCluster): Promise<string[]> {
  const src = source.url('app');
  await recreate(source, 'app');
  await recreate(target, 'app');
  await runTool(clientTool('pgbench'), ['-i', '-s', '10', '-q'], src);
  await sql(src, 'ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY');
  const s = new SyncSession({ source: src, target: target.url('app'), slotName: 'pgflip_bench_confirm', synchronous: true });
  await s.checkPrerequisites();
  await s.prepareTarget({ dropExisting: true });
  await s.initialCopy();
  await s.startStreaming();
  const rounds = Number(process.env.BENCH_CONFIRM_ROUNDS ?? 3);
  const seconds = Number(process.env.BENCH_CONFIRM_SECONDS ?? 10);
  const clients = process.env.BENCH_CONFIRM_CLIENTS ?? '8';
  const run = async () => {
    const out = await runTool(clientTool('pgbench'), ['-n', '-c', clients, '-j', '2', '-T', String(seconds)], src);
    return { tps: Number(/tps = ([\d.]+)/.exec(out)?.[1]), latency: Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]) };
  };
  const res = { async: [] as Array<{ tps: number; latency: number }>, confirmed: [] as Array<{ tps: number; latency: number }> };
  const lines: string[] = ['', `| commits on the source (pgbench TPC-B, ${clients} clients, ${seconds} s per round) | tps | latency avg (ms) | load avg |`, '|---|---|---|---|'];
  try {
    for (let r = 0; r < rounds; r++) {
      for (const mode of (r % 2 ? ['confirmed', 'async'] : ['async', 'confirmed']) as Array<'async' | 'confirmed'>) {
        if (mode === 'confirmed') {
          const why = await s.requireConfirmation();
          if (why) throw new Error(`confirmation not enabled: ${why}`);
        }
        const f = await run();
        if (mode === 'confirmed') await s.releaseConfirmation();
        res[mode].push(f);
        lines.push(`| round ${r + 1}: ${mode === 'async' ? 'stream asynchronous' : 'each commit waits for the stream'} | ${fmt(f.tps)} | ${fmt(f.latency, 2)} | ${fmt(os.loadavg()[0], 1)} |`);
        console.error(lines[lines.length - 1]);
      }
    }
  } finally {
    await s.cleanup();
  }
  const med = (xs: number[]) => pct(xs, 50);
  const tpsRatio = med(res.confirmed.map((x) => x.tps)) / med(res.async.map((x) => x.tps));
  const latRatio = med(res.confirmed.map((x) => x.latency)) / med(res.async.map((x) => x.latency));
  const extra = med(res.confirmed.map((x) => x.latency)) - med(res.async.map((x) => x.latency));
  lines.push(`| median: confirmed / asynchronous | **${fmt(tpsRatio, 2)}×** | **${fmt(latRatio, 2)}×** (+${fmt(extra, 2)} ms per transaction) | |`);
  return lines;
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'pgflip-bench-sync-'));
  chmodSync(root, 0o755); // the clusters run as the postgres OS user when we are root
  const source = new LocalCluster({ dir: path.join(root, 'blue'), settings: SETTINGS });
  const target = new LocalCluster({ dir: path.join(root, 'green'), settings: SETTINGS });
  const impls = implementations();
  const lines: string[] = [];
  const loadAverages: number[] = [];
  try {
    await Promise.all([source.start(), target.start()]);
    await Promise.all([recreate(source, 'app'), recreate(target, 'app')]);
    const src = source.url('app');
    if (PARTS.includes('copy')) {
      console.error('loading 1M narrow and 200k wide rows…');
      await sql(src, `
        CREATE TABLE narrow (id bigint PRIMARY KEY, a int NOT NULL, b int NOT NULL);
        INSERT INTO narrow SELECT g, g % 1000, g % 7 FROM generate_series(1, 1000000) g;
        CREATE TABLE wide (id bigint PRIMARY KEY, t1 text, t2 text, t3 text, t4 text, n1 int, n2 int, n3 bigint, n4 numeric(12,2),
                           d1 timestamptz, d2 date, f1 float8, b1 boolean, j1 jsonb, t5 text, t6 text);
        INSERT INTO wide SELECT g, md5(g::text), md5((g+1)::text), 'name ' || g, repeat('x', 40), g, g % 100, g * 1000, g / 3.0,
                                now() - g * interval '1 minute', date '2020-01-01' + g % 1000, g / 7.0, g % 2 = 0,
                                jsonb_build_object('k', g, 'v', md5(g::text)), 'a fairly long description for row ' || g, NULL
                           FROM generate_series(1, 200000) g`);
      await sql(src, 'VACUUM ANALYZE');
      const sizes = await sql(src, "SELECT relname, pg_size_pretty(pg_relation_size(oid)) AS size FROM pg_class WHERE relname IN ('narrow', 'wide') ORDER BY 1");

      // Each run measures pg_dump|psql and every implementation back to back, so a ratio compares
      // figures taken under the same load on this shared machine.
      lines.push(`| copy | run | rows | pg_dump\\|psql s | ${impls.map((i) => `${i.label} s | ${i.label} rows/s | ${i.label} ratio`).join(' | ')} | load avg |`,
        `|---|---|---|---|${impls.map(() => '---|---|---|').join('')}---|`);
      for (const table of ['narrow', 'wide']) {
        const size = sizes.find((x) => x.relname === table)?.size;
        const base: number[] = [];
        const mine = impls.map(() => [] as number[]);
        let rows = 0;
        for (let run = 0; run < RUNS; run++) {
          const b = await baseline(source, target, `public.${table}`);
          base.push(b);
          const cells: string[] = [];
          // alternate the order of the implementations between runs
          const order = impls.map((_, k) => k);
          if (run % 2) order.reverse();
          const secs: number[] = [];
          for (const k of order) {
            const r = await copyWith(impls[k], source, target, `public.${table}`);
            secs[k] = r.seconds;
            rows = r.rows;
            mine[k].push(r.seconds);
          }
          impls.forEach((_, k) => cells.push(`${fmt(secs[k], 2)} | ${fmt(rows / secs[k])} | ${fmt(b / secs[k], 2)}×`));
          loadAverages.push(os.loadavg()[0]);
          lines.push(`| ${table} (${size}) | ${run + 1} | ${fmt(rows)} | ${fmt(b, 2)} | ${cells.join(' | ')} | ${fmt(os.loadavg()[0], 1)} |`);
          console.error(lines[lines.length - 1]);
        }
        const med = (xs: number[]) => pct(xs, 50);
        const ratios = (k: number) => base.map((b, i) => b / mine[k][i]);
        lines.push(`| ${table} (${size}) | median | ${fmt(rows)} | ${fmt(med(base), 2)} | ${impls.map((_, k) => { const m = med(mine[k]); const r = ratios(k); return `${fmt(m, 2)} | ${fmt(rows / m)} | **${fmt(med(r), 2)}×** (runs ${fmt(Math.min(...r), 2)}–${fmt(Math.max(...r), 2)}×)`; }).join(' | ')} | |`);
        console.error(lines[lines.length - 1]);
        const bb = Math.min(...base);
        lines.push(`| ${table} (${size}) | best | ${fmt(rows)} | ${fmt(bb, 2)} | ${impls.map((_, k) => { const m = Math.min(...mine[k]); return `${fmt(m, 2)} | ${fmt(rows / m)} | **${fmt(bb / m, 2)}×**`; }).join(' | ')} | |`);
        console.error(lines[lines.length - 1]);
      }
    }

    if (PARTS.includes('confirm')) {
      console.error('synchronous confirmation: commits on the source with and without waiting for the stream…');
      lines.push(...await confirmCost(source, target));
    }

    if (PARTS.includes('apply')) {
      console.error('apply under pgbench load…');
      const figures: ApplyFigures[] = [];
      const loads: number[] = [];
      for (const impl of impls) {
        figures.push(await applyWith(impl, source, target));
        loads.push(os.loadavg()[0]);
        console.error(`${impl.label}: lag p99 ${fmt(figures[figures.length - 1].lag.p99, 3)} s`);
      }
      const row = (name: string, f: (x: ApplyFigures) => string, targetText = '') => `| ${name} | ${figures.map(f).join(' | ')} | ${targetText} |`;
      lines.push('', `| apply under pgbench (TPC-B, 4 clients, ${LOAD_SECONDS} s, abalance int→bigint mapped) | ${impls.map((i) => i.label).join(' | ')} | target |`,
        `|---|${impls.map(() => '---|').join('')}---|`,
        row('pgbench tps', (x) => fmt(x.tps)),
        row('source write rate (rows/s)', (x) => fmt(x.writeRate)),
        row('applied during the load (rows/s)', (x) => fmt(x.appliedRate)),
        // below 1.0× by whatever is still in flight when the load stops; the catch-up applies it
        row('applied / written during the load (the tail follows in the catch-up)', (x) => `${fmt(x.appliedRate / x.writeRate, 2)}×`),
        row('per-transaction lag p50 / p99 / max (s)', (x) => `${fmt(x.lag.p50, 3)} / **${fmt(x.lag.p99, 3)}** / ${fmt(x.lag.max, 3)}`, 'p99 < 1 s'),
        row('… of which commit → arrival from the walsender p50 / p99 (s)', (x) => `${fmt(x.arrival.p50, 3)} / ${fmt(x.arrival.p99, 3)}`),
        row('… of which arrival → commit on the target p50 / p99 (s)', (x) => `${fmt(x.apply.p50, 3)} / ${fmt(x.apply.p99, 3)}`),
        row('lag gauge p99 (s, sampled every 100 ms)', (x) => fmt(x.gaugeP99, 3)),
        row('catch-up after the load stopped (s)', (x) => fmt(x.catchUp, 3)),
        row('backlog drain rate = apply capacity (rows/s)', (x) => `${fmt(x.drainRate)} (${fmt(x.drained)} rows in ${fmt(x.drainSeconds, 2)} s)`),
        row('apply capacity / write rate', (x) => `**${fmt(x.drainRate / x.writeRate, 2)}×**`, '≥ 1.0×'),
        row('CPU per 1000 changes during the load (ms): sync process / target apply backend / source walsender', (x) => `${fmt(x.loadCpuMsPer1k.sync, 1)} / ${fmt(x.loadCpuMsPer1k.target, 1)} / ${fmt(x.loadCpuMsPer1k.walsender, 1)}`),
        row('target transactions per second during the load', (x) => fmt(x.targetCommitsPerSecond)),
        row('CPU per 1000 changes while draining (ms): sync process / target apply backend / source walsender', (x) => `${fmt(x.cpuMsPer1k.sync, 1)} / ${fmt(x.cpuMsPer1k.target, 1)} / ${fmt(x.cpuMsPer1k.walsender, 1)}`),
        row('verify after catch-up', (x) => (x.equal ? 'equal' : 'DIFFERENT')),
        `| load average (1 min) after | ${loads.map((l) => fmt(l, 1)).join(' | ')} | |`,
      );
    }
    console.log(`\nsync benchmark (${new Date().toISOString()}, ${os.cpus().length} cores, ${RUNS} copy runs, ${defaultCopyWorkers(source.url('app'), target.url('app'))} copy worker(s)${impls.length > 1 ? `, compared with ${process.env.BENCH_COMPARE_SRC}` : ''})\n`);
    console.log(lines.join('\n'));
  } finally {
    await Promise.all([source.destroy().catch(() => undefined), target.destroy().catch(() => undefined)]);
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => { console.error(err); process.exit(1); });

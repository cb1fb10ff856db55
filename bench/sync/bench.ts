/**
 * Sync benchmark (not part of npm test). Prints one table of figures measured
 * in this run between two local clusters:
 *  - initial copy of 1M narrow and 200k wide rows: rows/s, and the ratio to
 *    `pg_dump --data-only | psql` into the same pre-data schema;
 *  - apply under a pgbench write load: lag p50/p99/max, write vs apply rate,
 *    and the rate at which a backlog drains (apply capacity).
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { LocalCluster } from '../../src/pgcluster/local-cluster';
import { SyncSession } from '../../src/sync';
import { pgTool, runTool } from '../../src/sync/schema';

// synchronous_commit stays at its default (on): with it off, WAL reaches the walsender only at the
// WAL writer's next flush (wal_writer_delay), which adds up to 200 ms of lag that is not sync's.
const SETTINGS = { fsync: 'off', full_page_writes: 'off', shared_buffers: '256MB', max_wal_size: '4GB', checkpoint_timeout: '30min' };
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 20);
const PARTS = (process.env.BENCH_PARTS ?? 'copy,apply').split(',');

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
  const pre = await runTool(pgTool('pg_dump'), ['--schema-only', '--section=pre-data', '-t', table], source.url('app'));
  await runTool(pgTool('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', '-'], url, pre);
  const t0 = Date.now();
  await runTool('/bin/sh', ['-c', `"${pgTool('pg_dump')}" --data-only -t ${table} -d "$SRC" | PGDATABASE=baseline "${pgTool('psql')}" -X -q -v ON_ERROR_STOP=1`], url, undefined, { SRC: source.url('app') });
  return (Date.now() - t0) / 1000;
}

async function ours(source: LocalCluster, target: LocalCluster, table: string): Promise<{ seconds: number; rows: number; post: number }> {
  const s = new SyncSession({ source: source.url('app'), target: target.url('app'), slotName: 'pgflip_bench', tables: [table] });
  await s.prepareTarget({ dropExisting: true });
  const r = await s.initialCopy();
  await s.cleanup();
  return { seconds: r.seconds, rows: r.rows, post: r.postDataSeconds };
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'pgflip-bench-sync-'));
  chmodSync(root, 0o755); // the clusters run as the postgres OS user when we are root
  const source = new LocalCluster({ dir: path.join(root, 'blue'), settings: SETTINGS });
  const target = new LocalCluster({ dir: path.join(root, 'green'), settings: SETTINGS });
  const lines: string[] = [];
  try {
    await Promise.all([source.start(), target.start()]);
    await Promise.all([recreate(source, 'app'), recreate(target, 'app')]);
    const src = source.url('app');
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

    lines.push('| copy | rows | pgflip s | pgflip rows/s | pg_dump\\|psql s | pg_dump rows/s | ratio | indexes after (s) |', '|---|---|---|---|---|---|---|---|');
    for (const table of PARTS.includes('copy') ? ['narrow', 'wide'] : []) {
      const base: number[] = [];
      const mine: number[] = [];
      let rows = 0;
      let post = 0;
      for (let i = 0; i < RUNS; i++) {
        base.push(await baseline(source, target, `public.${table}`));
        const r = await ours(source, target, `public.${table}`);
        mine.push(r.seconds);
        rows = r.rows;
        post = r.post;
      }
      const b = Math.min(...base);
      const m = Math.min(...mine);
      const size = sizes.find((s) => s.relname === table)?.size;
      lines.push(`| ${table} (${size}) | ${fmt(rows)} | ${fmt(m, 2)} | ${fmt(rows / m)} | ${fmt(b, 2)} | ${fmt(rows / b)} | **${fmt(b / m, 2)}×** | ${fmt(post, 2)} |`);
      console.error(lines[lines.length - 1]);
    }

    if (!PARTS.includes('apply')) { console.log(lines.join('\n')); return; }
    // ---- apply under pgbench load ----
    console.error('apply under pgbench load…');
    await recreate(source, 'app');
    await runTool(pgTool('pgbench'), ['-i', '-s', '10', '-q'], src);
    await sql(src, 'ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY');
    const lagSamples: number[] = [];
    const txnLag: number[] = [];
    let applyChanges = 0;
    let collecting = true;
    const s = new SyncSession({
      source: src, target: target.url('app'), slotName: 'pgflip_bench_apply',
      migrationSql: 'ALTER TABLE pgbench_accounts ALTER COLUMN abalance TYPE bigint',
      mapping: { tables: [{ table: 'public.pgbench_accounts', renamedColumns: {}, droppedColumns: [], addedColumns: [], typeChanges: [{ column: 'abalance', newType: 'bigint' }] }], newTables: [], droppedTables: [] },
      onApplied: (b) => { applyChanges += b.changes; if (collecting) for (const t of b.commitTimes) txnLag.push((b.appliedAt - t) / 1000); },
    });
    await s.checkPrerequisites();
    await s.prepareTarget({ dropExisting: true });
    await s.initialCopy();
    await s.migrateTarget();
    await s.startStreaming();
    const sampler = setInterval(() => lagSamples.push(s.lag().seconds), 100);
    const changesAt = (await sql(src, "SELECT (n_tup_ins + n_tup_upd + n_tup_del)::float8 AS n FROM pg_stat_user_tables WHERE relname LIKE 'pgbench%'")).reduce((a, r) => a + Number(r.n), 0);
    const t0 = Date.now();
    const out = await runTool(pgTool('pgbench'), ['-n', '-c', '4', '-j', '2', '-T', String(LOAD_SECONDS)], src);
    const loadSeconds = (Date.now() - t0) / 1000;
    const appliedDuringLoad = applyChanges;
    const catchUp = await s.catchUp();
    clearInterval(sampler);
    collecting = false;
    const changesAfter = (await sql(src, "SELECT (n_tup_ins + n_tup_upd + n_tup_del)::float8 AS n FROM pg_stat_user_tables WHERE relname LIKE 'pgbench%'")).reduce((a, r) => a + Number(r.n), 0);
    const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? 0);
    const written = changesAfter - changesAt;
    const verify = await s.verify();

    // ---- apply capacity: drain a backlog built while the stream was stopped ----
    await s.stop();
    await runTool(pgTool('pgbench'), ['-n', '-c', '4', '-j', '2', '-T', String(Math.round(LOAD_SECONDS / 2))], src);
    const before = applyChanges;
    const t1 = Date.now();
    await s.startStreaming();
    await s.catchUp();
    const drainSeconds = (Date.now() - t1) / 1000;
    const drained = applyChanges - before;
    await s.cleanup();

    lines.push('', '| apply under pgbench (TPC-B, 4 clients, abalance int→bigint mapped) | value |', '|---|---|',
      `| pgbench tps | ${fmt(tps)} |`,
      `| source write rate (rows/s) | ${fmt(written / loadSeconds)} |`,
      `| applied during the load (rows/s) | ${fmt(appliedDuringLoad / loadSeconds)} |`,
      `| per-transaction lag p50 / p99 / max (s) | ${fmt(pct(txnLag, 50), 3)} / ${fmt(pct(txnLag, 99), 3)} / ${fmt(Math.max(0, ...txnLag), 3)} |`,
      `| lag gauge p99 (s, sampled every 100 ms) | ${fmt(pct(lagSamples, 99), 3)} |`,
      `| catch-up after the load stopped (s) | ${fmt(catchUp.seconds, 3)} |`,
      `| backlog drain rate = apply capacity (rows/s) | ${fmt(drained / drainSeconds)} (${fmt(drained)} rows in ${fmt(drainSeconds, 2)} s) |`,
      `| apply capacity / write rate | **${fmt(drained / drainSeconds / (written / loadSeconds), 2)}×** |`,
      `| verify after catch-up | ${verify.equal ? 'equal' : 'DIFFERENT'} |`);
    console.log(`\nsync benchmark (${new Date().toISOString()}, ${os.cpus().length} cores, best of ${RUNS} for copies)\n`);
    console.log(lines.join('\n'));
  } finally {
    await Promise.all([source.destroy().catch(() => undefined), target.destroy().catch(() => undefined)]);
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => { console.error(err); process.exit(1); });

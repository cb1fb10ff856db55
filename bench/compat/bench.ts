/**
 * The cost of serving the old schema version through views (src/compat/views.ts): pgbench with
 * a TPC-B-like script in the old version's names, through the compatibility schema, against the
 * same script in the new version's names on the tables — alternating rounds on one cluster, so
 * the ratio compares figures taken under the same load. The migration renames
 * pgbench_accounts.abalance (an automatically updatable view) and widens
 * pgbench_tellers.tbalance to bigint (a view whose writes go through INSTEAD OF triggers).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import type { SchemaMapping } from '../../src/classifier/mapping';
import { createCompatSchema, readColumnDefaults } from '../../src/compat/views';
import { clientTool } from '../../src/pgcluster/binaries';
import { LocalCluster } from '../../src/pgcluster/local-cluster';
import { readCatalog } from '../../src/sync';
import { runTool } from '../../src/sync/schema';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CLIENTS = process.env.BENCH_CLIENTS ?? '8';
const SCHEMA = 'pgflip_compat_bench';

const script = (abalance: string) => `\\set aid random(1, 100000 * :scale)
\\set bid random(1, 1 * :scale)
\\set tid random(1, 10 * :scale)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET ${abalance} = ${abalance} + :delta WHERE aid = :aid;
SELECT ${abalance} FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
`;

const MAPPING: SchemaMapping = {
  tables: [
    { table: 'public.pgbench_accounts', renamedColumns: { abalance: 'balance' }, droppedColumns: [], addedColumns: [], typeChanges: [] },
    { table: 'public.pgbench_tellers', renamedColumns: {}, droppedColumns: [], addedColumns: [], typeChanges: [{ column: 'tbalance', newType: 'bigint' }] },
  ],
  newTables: [], droppedTables: [],
};

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'pgflip-bench-compat-'));
  chmodSync(root, 0o755); // the cluster runs as the postgres OS user when we are root
  const pg = new LocalCluster({ dir: path.join(root, 'pg'), settings: { fsync: 'off', full_page_writes: 'off', shared_buffers: '256MB' } });
  try {
    await pg.start();
    const url = pg.url('postgres');
    await runTool(clientTool('pgbench'), ['-i', '-s', '10', '-q'], url);
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      const [oldCatalog, oldDefaults] = [await readCatalog(c), await readColumnDefaults(c)];
      await c.query('ALTER TABLE pgbench_accounts RENAME COLUMN abalance TO balance; ALTER TABLE pgbench_tellers ALTER COLUMN tbalance TYPE bigint');
      const plan = await createCompatSchema(c, { schema: SCHEMA, mapping: MAPPING, oldCatalog, oldDefaults, newCatalog: await readCatalog(c), roles: [] });
      console.error(plan.views.map((v) => `${v.table}: ${v.writes}`).join(', '));
      await c.query('VACUUM ANALYZE');
    } finally { await c.end(); }
    const files = { old: path.join(root, 'old.sql'), new: path.join(root, 'new.sql') };
    writeFileSync(files.old, script('abalance'));
    writeFileSync(files.new, script('balance'));
    const rows: string[] = [`| pgbench TPC-B-like, ${CLIENTS} clients, ${SECONDS} s per round, -M prepared | tps | latency avg (ms) | load avg |`, '|---|---|---|---|'];
    const res = { old: [] as number[], new: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of (r % 2 ? ['new', 'old'] : ['old', 'new']) as Array<'old' | 'new'>) {
        // the old version finds the compatibility schema first, as the proxy's search_path gives it
        const out = await runTool(clientTool('pgbench'), ['-n', '-M', 'prepared', '-c', CLIENTS, '-j', '2', '-T', String(SECONDS), '-f', files[v]], url, undefined,
          v === 'old' ? { PGOPTIONS: `-c search_path=${SCHEMA},public` } : {});
        const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
        const lat = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
        res[v].push(tps);
        rows.push(`| round ${r + 1}: ${v === 'old' ? 'old version through the views' : 'new version on the tables'} | ${fmt(tps)} | ${fmt(lat, 2)} | ${fmt(os.loadavg()[0], 1)} |`);
        console.error(rows[rows.length - 1]);
      }
    }
    rows.push(`| median: old through views / new direct | **${fmt(median(res.old) / median(res.new), 2)}×** | | |`);
    process.stdout.write(`${rows.join('\n')}\n`);
  } finally {
    await pg.stop().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => { console.error(err); process.exit(1); });

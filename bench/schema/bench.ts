/**
 * The two ways a schema is read (src/sync/schema.ts): pg_dump and the Node path (@pgkit/migra
 * with catalog fixes), side by side in one run on the example schema (migrations/000) with
 * 20,000 users. Per round, alternating which goes first:
 *  - the risky flow's schema copy: the idle side's database rebuilt and the schema loaded
 *    (SyncSession.prepareTarget, pre-data) plus the post-data after it;
 *  - a rollback point written (RollbackPoints.create) and restored into an empty database.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RollbackPoints } from '../../src/controller/rollback-points';
import { LocalCluster } from '../../src/pgcluster/local-cluster';
import { SyncSession } from '../../src/sync';
import { dumpSchema, replaySchema } from '../../src/sync/schema';
import { withClient } from '../../src/util/pg';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const TOOLS = ['pg_dump', 'node'] as const;
type Tool = (typeof TOOLS)[number];

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const ms = (n: number) => `${Math.round(n)} ms`;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'pgflip-bench-schema-'));
  chmodSync(root, 0o755); // the clusters run as the postgres OS user when we are root
  const [blue, green] = ['blue', 'green'].map((n) => new LocalCluster({ dir: path.join(root, n), settings: { fsync: 'off', full_page_writes: 'off' } }));
  try {
    await Promise.all([blue.start(), green.start()]);
    await withClient(blue.url('postgres'), (c) => c.query('CREATE DATABASE app'));
    await withClient(green.url('postgres'), (c) => c.query('CREATE DATABASE app'));
    await withClient(blue.url('app'), async (c) => {
      await c.query(readFileSync(path.join(__dirname, '../../migrations/000_example_schema.sql'), 'utf8'));
      await c.query(`INSERT INTO users (name, email) SELECT 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, 20000) g`);
    });
    const res: Record<string, Record<Tool, number[]>> = { copy: { pg_dump: [], node: [] }, point: { pg_dump: [], node: [] }, restore: { pg_dump: [], node: [] } };
    for (let r = 0; r < ROUNDS; r++) {
      for (const tool of r % 2 ? [...TOOLS].reverse() : TOOLS) {
        const s = new SyncSession({ source: blue.url('app'), target: green.url('app'), slotName: 'bench_schema', schemaDump: tool });
        res.copy[tool].push(await timed(async () => {
          await s.prepareTarget({ dropExisting: true });
          await replaySchema(green.url('app'), (await dumpSchema(blue.url('app'), 'post-data', { tool })).sql);
        }));
        const points = new RollbackPoints(path.join(root, `points-${tool}`), 2, tool);
        let point!: Awaited<ReturnType<RollbackPoints['create']>>;
        res.point[tool].push(await timed(async () => { point = await points.create(`bench${r}`, 'blue', blue.url('app')); }));
        await withClient(green.url('postgres'), async (c) => { await c.query('DROP DATABASE IF EXISTS restored WITH (FORCE)'); await c.query('CREATE DATABASE restored'); });
        res.restore[tool].push(await timed(() => points.restore(point, green.url('restored'))));
        console.error(`round ${r + 1} ${tool}: copy ${ms(res.copy[tool][r])}, rollback point ${ms(res.point[tool][r])}, restore ${ms(res.restore[tool][r])}`);
      }
    }
    const rows = [
      `| example schema, 20,000 users, median of ${ROUNDS} rounds | pg_dump | Node path | Node / pg_dump |`,
      '|---|---|---|---|',
      ...([['copy', "risky flow's schema copy (pre-data + post-data)"], ['point', 'rollback point written'], ['restore', 'rollback point restored (both replayed without psql)']] as const).map(([k, label]) =>
        `| ${label} | ${ms(median(res[k].pg_dump))} | ${ms(median(res[k].node))} | **${(median(res[k].node) / median(res[k].pg_dump)).toFixed(2)}×** |`),
    ];
    process.stdout.write(`${rows.join('\n')}\n`);
  } finally {
    await Promise.all([blue.stop(), green.stop()].map((p) => p.catch(() => undefined)));
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => { console.error(err); process.exit(1); });

/**
 * Forward sync through a risky migration with writers running during the copy,
 * the apply and the catch-up; then reverse sync with the inverse mapping.
 */
import { startPair, TestCluster } from '../harness/clusters';
import { SyncSession, invertMapping, readCatalog } from '../../src/sync';
import { MAPPING, MIGRATION, newSchemaOp, OLD_SCHEMA, oldSchemaOp } from './fixtures/scenario';
import { leftovers, sleep, startWriter } from './fixtures/writer';
import { Client } from 'pg';
import { Registry } from 'prom-client';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };

beforeAll(async () => {
  pair = await startPair();
  await pair.blue.query(OLD_SCHEMA);
}, 60_000);

afterAll(async () => {
  await pair?.stop();
});

test('forward sync through the migration, then reverse sync, leaves both sides equal and clean', async () => {
  const { blue, green } = pair;
  const registry = new Registry();
  const progress: { table?: string; percent?: number; phase: string }[] = [];
  const forward = new SyncSession({
    source: blue.url(), target: green.url(), mapping: MAPPING, migrationSql: MIGRATION,
    slotName: 'pgflip_fwd', parallel: 2, chunkBytes: 512 * 1024, registry,
    onProgress: (p) => progress.push(p),
  });
  await forward.checkPrerequisites();
  await forward.prepareTarget();

  const writer = await startWriter(blue.url(), oldSchemaOp, 7);
  await sleep(300);
  const beforeCopy = writer.committed;
  const copy = await forward.initialCopy();
  const duringCopy = writer.committed - beforeCopy;
  expect(duringCopy).toBeGreaterThan(0);
  expect(copy.tables.find((t) => t.table === 'public.users')?.rows).toBeGreaterThanOrEqual(60000);
  // users is split into parts; progress reports per table, ending at 100%
  const usersProgress = progress.filter((p) => p.phase === 'copy' && p.table === 'public.users');
  expect(usersProgress.length).toBeGreaterThan(1);
  expect(usersProgress[usersProgress.length - 1].percent).toBe(100);

  await forward.migrateTarget();
  await forward.startStreaming();
  await sleep(1000);
  await blue.query("TRUNCATE scratch; INSERT INTO scratch SELECT g, 'after truncate' FROM generate_series(1, 50) g");
  await sleep(1000);
  // catch-up with the writer still running: reaches the position read at the call
  const during = await forward.catchUp();
  expect(during.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  const metrics = await registry.getSingleMetricAsString('pgflip_sync_lag_seconds');
  expect(metrics).toContain('direction="forward"');

  // The reverse slot on green is created while the forward apply still writes there (as the
  // controller does, before the flip's pause): those transactions carry pgflip's origin and the
  // reverse stream must skip them, or they would come back to blue twice.
  const oldCatalog = await (async () => { const c = new Client({ connectionString: blue.url() }); await c.connect(); try { return await readCatalog(c); } finally { await c.end(); } })();
  const inverse = invertMapping(MAPPING, oldCatalog);
  expect(inverse.invertible).toBe(false);
  expect(inverse.problems.join('\n')).toMatch(/public\.notes\.body: type change text → varchar\(20\) USING left\(body, 20\) can lose data/);

  const reverse = new SyncSession({
    source: green.url(), target: blue.url(), mapping: inverse.mapping, slotName: 'pgflip_rev', direction: 'reverse', registry,
  });
  await reverse.checkPrerequisites();
  await reverse.createSlot();
  const written = await writer.stop();
  expect(written).toBeGreaterThan(duringCopy);
  const final = await forward.catchUp();
  expect(final.sequences.set).toBeGreaterThan(0);

  const result = await forward.verify();
  expect(result.tables.filter((t) => !t.equal)).toEqual([]);
  expect(result.equal).toBe(true);
  expect(result.tables.map((t) => t.target)).toEqual(expect.arrayContaining(['public.purchases', 'public.accounts', 'public.notes']));
  expect(forward.stats?.missingRows).toBe(0);

  // What the application on the new side sees:
  const [tox] = await green.query<{ n: string }>(`SELECT count(*) AS n FROM docs WHERE length(content) >= 9600`);
  const [toxBlue] = await blue.query<{ n: string }>(`SELECT count(*) AS n FROM docs WHERE length(content) >= 9600`);
  expect(tox.n).toBe(toxBlue.n);
  const [notes] = await green.query<{ longest: number }>('SELECT max(length(body)) AS longest FROM notes');
  expect(notes.longest).toBeLessThanOrEqual(20);
  const [status] = await green.query<{ n: string }>("SELECT count(*) AS n FROM users WHERE status <> 'active'");
  expect(status.n).toBe('0');
  const [scratch] = await green.query<{ n: string }>("SELECT count(*) FILTER (WHERE v = 'after truncate') AS n FROM scratch");
  expect(Number(scratch.n)).toBeGreaterThan(0);
  const [negative] = await green.query<{ n: string }>('SELECT count(*) AS n FROM accounts WHERE id < 0');
  expect(Number(negative.n)).toBeGreaterThan(0);

  await forward.stop();

  // ---- reverse: green (new schema) → blue (old schema) ----
  await reverse.startStreaming();
  const greenWriter = await startWriter(green.url(), newSchemaOp, 11);
  await sleep(1500);
  await greenWriter.stop();
  await reverse.catchUp();
  const back = await reverse.verify();
  // Everything comes back except the lossy column: old rows keep their long text on blue.
  expect(back.tables.filter((t) => !t.equal).map((t) => t.table)).toEqual(['public.notes']);
  expect(back.tables.find((t) => t.table === 'public.notes')?.firstDifference?.key).toMatch(/^\(\d+\)$/);
  const [greenUser] = await blue.query<{ n: string }>("SELECT count(*) AS n FROM users WHERE name LIKE 'green%'");
  expect(Number(greenUser.n)).toBeGreaterThan(0);
  // blue's sequence moved past green's ids
  const [seq] = await blue.query<{ ok: boolean }>("SELECT nextval('users_id_seq') > (SELECT max(id) FROM users) AS ok");
  expect(seq.ok).toBe(true);

  await reverse.cleanup();
  await forward.cleanup();
  for (const side of [blue, green]) {
    expect(await leftovers((sql) => side.query(sql))).toEqual({ slots: [], publications: [], helperSchema: false });
  }
}, 150_000);

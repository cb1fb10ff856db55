/**
 * The initial copy: block-range parts relayed from COPY TO into COPY FROM
 * without re-chunking, rows from empty to hundreds of kilobytes (messages
 * spanning socket reads), part counts that keep every worker busy, and a load
 * that fails on the target naming the table.
 */
import { startPair, TestCluster } from '../harness/clusters';
import { SyncSession } from '../../src/sync';
import type { TableInfo } from '../../src/sync';
import { defaultCopyWorkers, isLocalUrl, splitIntoParts } from '../../src/sync/copy';
import { leftovers } from './fixtures/writer';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };

beforeAll(async () => {
  pair = await startPair();
}, 60_000);

afterAll(async () => {
  await pair?.stop();
});

test('rows of every size arrive exactly through parallel parts, with progress per table', async () => {
  const { blue, green } = pair;
  await blue.query(`
    CREATE TABLE blobs (id int PRIMARY KEY, small text, big text, n numeric, at timestamptz);
    INSERT INTO blobs SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE repeat('s', g % 40) END,
      CASE WHEN g % 997 = 0 THEN (SELECT string_agg(md5(g::text || s), '') FROM generate_series(1, 6000) s) ELSE md5(g::text) END,
      g / 7.0, timestamptz '2024-01-01' + g * interval '1 second'
    FROM generate_series(1, 40000) g;
    CREATE TABLE empty_one (id int PRIMARY KEY, v text);
    CREATE TABLE "Odd ""name""" (id int PRIMARY KEY, "väl ue" text);
    INSERT INTO "Odd ""name""" SELECT g, 'ü' || g FROM generate_series(1, 500) g;`);
  await blue.query('ANALYZE');
  const progress: { table?: string; percent?: number; rows?: number; phase: string }[] = [];
  const s = new SyncSession({
    source: blue.url(), target: green.url(), slotName: 'pgflip_copy', parallel: 3, chunkBytes: 512 * 1024,
    onProgress: (p) => progress.push(p),
  });
  await s.checkPrerequisites();
  await s.prepareTarget();
  const copy = await s.initialCopy();
  expect(Object.fromEntries(copy.tables.map((t) => [t.table, t.rows]))).toEqual({ 'public.blobs': 40000, 'public.empty_one': 0, 'public.Odd "name"': 500 });
  const blobs = progress.filter((p) => p.phase === 'copy' && p.table === 'public.blobs');
  expect(blobs[blobs.length - 1]).toMatchObject({ percent: 100, rows: 40000 });
  const result = await s.verify();
  expect(result.tables.filter((t) => !t.equal)).toEqual([]);
  const [big] = await green.query<{ n: string; longest: number }>('SELECT count(*) AS n, max(length(big)) AS longest FROM blobs WHERE length(big) > 1000');
  expect(big).toEqual({ n: '40', longest: 192000 });
  await s.cleanup();
}, 120_000);

test('a load the target refuses stops the copy with the table and the database error, and leaves nothing behind', async () => {
  const { blue, green } = pair;
  for (const side of [blue, green]) await side.query('CREATE DATABASE refused', [], 'postgres');
  await blue.query(`CREATE TABLE items (id int PRIMARY KEY, qty int);
    INSERT INTO items SELECT g, g FROM generate_series(1, 20000) g`, [], 'refused');
  const s = new SyncSession({ source: blue.url('refused'), target: green.url('refused'), slotName: 'pgflip_refused', chunkBytes: 128 * 1024 });
  await s.prepareTarget();
  await green.query('ALTER TABLE items ADD CONSTRAINT small_qty CHECK (qty < 15000)', [], 'refused');
  await expect(s.initialCopy()).rejects.toThrow(/copy of public\.items failed: new row for relation "items" violates check constraint "small_qty"/);
  await s.cleanup();
  expect(await leftovers((q) => blue.query(q, [], 'refused'))).toEqual({ slots: [], publications: [], helperSchema: false });
  // no connection of the copy is left open on either side
  for (const side of [blue, green]) {
    const open = await side.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = 'refused' AND pid <> pg_backend_pid()", [], 'postgres');
    expect(open[0].n).toBe('0');
  }
}, 60_000);

test('a large table is split into contiguous block ranges, as many as keep every worker busy', () => {
  const table = (name: string, bytes: number) => ({ schema: 'public', name, kind: 'r', bytes } as unknown as TableInfo);
  const parts = splitIntoParts([table('small', 100 * 1024), table('big', 42 * 1024 * 1024)], 8 * 1024 * 1024, true, 4);
  const big = parts.filter((p) => p.table.name === 'big');
  expect(parts[0].table.name).toBe('big'); // largest first
  expect(big).toHaveLength(8); // 6 chunks of 8 MiB, rounded up to a multiple of 4 workers
  expect(big[0].blocks?.from).toBe(0);
  for (let i = 1; i < big.length; i++) expect(big[i].blocks?.from).toBe(big[i - 1].blocks?.to);
  expect(big[big.length - 1].blocks?.to).toBeUndefined(); // open-ended: the table may have grown
  expect(parts.filter((p) => p.table.name === 'small')).toEqual([{ table: expect.objectContaining({ name: 'small' }) }]);
  // without TID range scans (PostgreSQL < 14) a table is one part
  expect(splitIntoParts([table('big', 42 * 1024 * 1024)], 8 * 1024 * 1024, false, 4)).toHaveLength(1);
  // one worker copies whole tables with plain COPY: ranges would only add a query per part
  expect(splitIntoParts([table('big', 42 * 1024 * 1024)], 8 * 1024 * 1024, true, 1)).toEqual([{ table: expect.objectContaining({ name: 'big' }) }]);
});

test('copy workers default to half the cores when both servers share this host, else 4', () => {
  for (const url of ['postgres://u@127.0.0.1:5432/db', 'postgres://u@localhost/db', 'postgres://u@[::1]:5/db', 'postgres:///db',
    'postgres://u@%2Frun%2Fpostgresql/db', 'postgres://u@db.example.com/db?host=/run/postgresql']) {
    expect([url, isLocalUrl(url)]).toEqual([url, true]);
  }
  for (const url of ['postgres://u@db.example.com/db', 'postgres://u@10.0.0.7:5432/db', 'not a url']) expect([url, isLocalUrl(url)]).toEqual([url, false]);
  const local = 'postgres://u@127.0.0.1:5432/a';
  expect(defaultCopyWorkers(local, 'postgres://u@localhost:5433/b', 2)).toBe(1);
  expect(defaultCopyWorkers(local, local, 6)).toBe(3);
  expect(defaultCopyWorkers(local, local, 64)).toBe(4);
  expect(defaultCopyWorkers(local, 'postgres://u@db.example.com/b', 2)).toBe(4);
});

/**
 * Verification at one instant while writes run (SyncSession.verifyConsistent): the source at a
 * temporary slot's snapshot, the target with the apply held at that slot's LSN. Under writers
 * that touch every table it must find the sides equal every time (a comparison that raced the
 * stream would not), find a real difference, leave no slot behind and let the apply go on. And
 * the flip's pinned comparison (pinnable): both sides fixed by pin(), compared later while both
 * change.
 */
import { startPair, TestCluster } from '../harness/clusters';
import { SyncSession } from '../../src/sync';
import { MAPPING, MIGRATION, OLD_SCHEMA, oldSchemaOp } from './fixtures/scenario';
import { sleep, startWriter, Writer } from './fixtures/writer';
import { Registry } from 'prom-client';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let forward: SyncSession;

beforeAll(async () => {
  pair = await startPair();
  await pair.blue.query(OLD_SCHEMA);
  forward = new SyncSession({
    source: pair.blue.url(), target: pair.green.url(), mapping: MAPPING, migrationSql: MIGRATION,
    slotName: 'pgflip_vc', parallel: 2, registry: new Registry(),
  });
  await forward.prepareTarget();
  await forward.initialCopy();
  await forward.migrateTarget();
  await forward.startStreaming();
}, 120_000);

afterAll(async () => {
  await forward?.cleanup().catch(() => undefined);
  await pair?.stop();
});

const slots = async (side: TestCluster) => (await side.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots ORDER BY 1')).map((r) => r.slot_name);

test('under writers on every table, every comparison at one instant finds the sides equal; the apply goes on; no slot is left', async () => {
  // three writers, their generated keys apart (oldSchemaOp derives them from the step number)
  const writers: Writer[] = await Promise.all([0, 1, 2].map((k) => startWriter(pair.blue.url(), (c, rand, i) => oldSchemaOp(c, rand, i * 3 + k), 3 + k)));
  try {
    await sleep(500);
    await forward.catchUp();
    for (let round = 0; round < 4; round++) {
      const before = writers.reduce((n, w) => n + w.committed, 0);
      const r = await forward.verifyConsistent();
      const during = writers.reduce((n, w) => n + w.committed, 0) - before;
      expect(during).toBeGreaterThan(0); // writes really ran while comparing
      expect(r.tables.filter((t) => !t.equal)).toEqual([]);
      expect(r.tables.length).toBeGreaterThanOrEqual(4);
      expect(r.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    }
    // the hold was released: the apply still follows the writers
    await forward.catchUp({ timeoutMs: 30_000 });
    expect(await slots(pair.blue)).toEqual(['pgflip_vc']);
  } finally {
    for (const w of writers) await w.stop();
  }
}, 120_000);

test('a row changed on the idle side behind the stream is found, with its key', async () => {
  const [row] = await pair.green.query<{ id: string }>('SELECT id FROM users ORDER BY id LIMIT 1');
  // (the migration renamed name to full_name on the idle side)
  await pair.green.query(`UPDATE users SET full_name = full_name || ' (changed on the idle side)' WHERE id = ${row.id}`);
  try {
    const r = await forward.verifyConsistent();
    const users = r.tables.find((t) => t.table === 'public.users')!;
    expect(users).toMatchObject({ equal: false, firstDifference: { key: `(${row.id})`, source: 'present', target: 'present' } });
    expect(r.tables.filter((t) => !t.equal).map((t) => t.table)).toEqual(['public.users']);
  } finally {
    // put it back as the source has it
    await pair.green.query(`UPDATE users SET full_name = replace(full_name, ' (changed on the idle side)', '') WHERE id = ${row.id}`);
  }
  expect((await forward.verifyConsistent()).equal).toBe(true);
}, 60_000);

test('pinned at one instant, both sides compare as they were then while each takes new writes', async () => {
  await forward.catchUp();
  const pinned = await forward.pinnable();
  try {
    await pinned.pin();
    // after the pin both sides change, differently: the comparison must not see it
    await pair.blue.query("UPDATE users SET name = 'after the pin, blue' WHERE id IN (SELECT id FROM users ORDER BY id LIMIT 10)");
    await pair.green.query("UPDATE users SET full_name = 'after the pin, green' WHERE id IN (SELECT id FROM users ORDER BY id DESC LIMIT 10)");
    const r = await pinned.compare();
    expect(r.tables.filter((t) => !t.equal)).toEqual([]);
  } finally {
    await pinned.close();
  }
  // not pinned any more: the same comparison now sees the difference
  const now = await forward.pinnable();
  try {
    await now.pin();
    expect((await now.compare(['public.users'])).equal).toBe(false);
  } finally {
    await now.close();
  }
}, 60_000);

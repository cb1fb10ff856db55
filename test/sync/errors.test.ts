/**
 * Clear errors: prerequisites (one line each), a migration that fails on the
 * target (source untouched), a mapping that does not fit the target.
 */
import { startCluster, startPair, TestCluster } from '../harness/clusters';
import { SyncMigrationError, SyncPrerequisiteError, SyncSession } from '../../src/sync';
import { leftovers } from './fixtures/writer';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let physical: TestCluster;

beforeAll(async () => {
  [pair, physical] = await Promise.all([
    startPair(),
    startCluster('nologic', { wal_level: 'replica', max_replication_slots: 0, max_wal_senders: 0 }),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([pair?.stop(), physical?.stop()]);
});

async function problemsOf(s: SyncSession): Promise<SyncPrerequisiteError> {
  try {
    await s.checkPrerequisites();
  } catch (err) {
    if (err instanceof SyncPrerequisiteError) return err;
    throw err;
  }
  throw new Error('checkPrerequisites passed');
}

test('a server without logical decoding: wal_level, slots and WAL senders each named', async () => {
  await physical.query('CREATE TABLE t (id int PRIMARY KEY)');
  const err = await problemsOf(new SyncSession({ source: physical.url(), target: pair.green.url(), slotName: 'pgflip_x' }));
  expect(err.problems.map((p) => p.check).sort()).toEqual(['replication_slots', 'wal_level', 'wal_senders']);
  expect(err.message).toContain("source wal_level is 'replica', logical decoding needs 'logical'");
  expect(err.message).toContain('max_replication_slots = 0');
  expect(err.message).toContain('max_wal_senders = 0');
});

test('a table without primary key, an unlogged table and a role without REPLICATION', async () => {
  await pair.blue.query(`
    CREATE TABLE events (at timestamptz, what text);
    CREATE UNLOGGED TABLE cache (k int PRIMARY KEY, v text);
    CREATE TABLE fine (id int PRIMARY KEY);
    CREATE ROLE app_rw LOGIN PASSWORD 'pw';
    ALTER TABLE fine OWNER TO app_rw`);
  const err = await problemsOf(new SyncSession({ source: pair.blue.url(), target: pair.green.url(), slotName: 'pgflip_x' }));
  expect(err.message).toMatch(/table public\.events has no primary key, so its updates and deletes cannot be matched on the target; add a primary key, or set REPLICA IDENTITY/);
  expect(err.message).toMatch(/table public\.cache is UNLOGGED/);
  expect(err.problems.find((p) => p.check === 'replica_identity')?.message).not.toContain('fine');

  const url = new URL(pair.blue.url());
  url.username = 'app_rw';
  url.password = 'pw';
  const asApp = await problemsOf(new SyncSession({ source: url.toString(), target: pair.green.url(), slotName: 'pgflip_x', tables: ['public.fine'] }));
  expect(asApp.problems.map((p) => p.message)).toEqual(['source role app_rw lacks the REPLICATION attribute (ALTER ROLE app_rw REPLICATION)']);

  // REPLICA IDENTITY FULL is accepted for a table without key
  await pair.blue.query('ALTER TABLE events REPLICA IDENTITY FULL; DROP TABLE cache');
  await new SyncSession({ source: pair.blue.url(), target: pair.green.url(), slotName: 'pgflip_x' }).checkPrerequisites();
  await pair.blue.query('DROP TABLE events, fine; DROP ROLE app_rw');
});

test('a migration that fails on the target stops with the database error and leaves the source untouched', async () => {
  const { blue, green } = pair;
  await blue.query(`CREATE TABLE people (id int PRIMARY KEY, nick text, age text);
    INSERT INTO people VALUES (1, 'a', '30'), (2, NULL, 'unknown')`);
  const s = new SyncSession({ source: blue.url(), target: green.url(), slotName: 'pgflip_mig' });
  await s.checkPrerequisites();
  await s.prepareTarget({ dropExisting: true });
  await s.initialCopy();

  await expect(s.migrateTarget('ALTER TABLE people\n  ALTER COLUMN nick SET NOT NULL;')).rejects.toMatchObject({
    name: 'SyncMigrationError', code: '23502', message: expect.stringContaining('column "nick" of relation "people" contains null values'),
  });
  const castFailure = await s.migrateTarget('SELECT 1;\nALTER TABLE people ALTER COLUMN age TYPE int USING age::int;').catch((e: SyncMigrationError) => e);
  expect(castFailure).toBeInstanceOf(SyncMigrationError);
  expect((castFailure as SyncMigrationError).code).toBe('22P02');
  expect((castFailure as SyncMigrationError).message).toContain('invalid input syntax for type integer: "unknown"');

  // source unchanged; a mapping that does not fit the target stops the stream with a clear error
  const [col] = await blue.query<{ is_nullable: string; data_type: string }>("SELECT is_nullable, data_type FROM information_schema.columns WHERE table_name = 'people' AND column_name = 'age'");
  expect(col).toEqual({ is_nullable: 'YES', data_type: 'text' });
  let reportError!: (e: Error) => void;
  const failed = new Promise<Error>((resolve) => { reportError = resolve; });
  const bad = new SyncSession({
    source: blue.url(), target: green.url(), slotName: 'pgflip_mig', onError: (e) => reportError(e),
    mapping: { tables: [{ table: 'public.people', renamedColumns: { nick: 'nickname' }, droppedColumns: [], addedColumns: [], typeChanges: [] }], newTables: [], droppedTables: [] },
  });
  await bad.startStreaming();
  await blue.query("UPDATE people SET nick = 'b' WHERE id = 2");
  const err = await failed;
  expect(err.message).toContain('public.people → public.people: source column nick maps to nickname, which the target table does not have');
  await bad.cleanup();
  expect(await leftovers((sql) => blue.query(sql))).toEqual({ slots: [], publications: [], helperSchema: false });
});

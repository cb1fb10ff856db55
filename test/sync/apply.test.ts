/**
 * The pipelined apply: statements prepared once per table and column set,
 * multi-row inserts and deletes, REPLICA IDENTITY FULL, a USING expression on
 * a key, flow control with a tiny queue; and a target transaction that fails
 * at COMMIT while later ones are already built: nothing after it is applied
 * or acknowledged, and a restart applies it all.
 */
import { startPair, TestCluster } from '../harness/clusters';
import { SyncSession } from '../../src/sync';
import { sleep } from './fixtures/writer';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };

beforeAll(async () => {
  pair = await startPair();
}, 60_000);

afterAll(async () => {
  await pair?.stop();
});

function failures(): { onError(e: Error): void; next: Promise<Error> } {
  let report!: (e: Error) => void;
  const next = new Promise<Error>((resolve) => { report = resolve; });
  return { onError: (e) => report(e), next };
}

test('changes of every shape arrive exactly, with statements prepared once and far fewer round trips than changes', async () => {
  const { blue, green } = pair;
  await blue.query(`
    CREATE TABLE items (id bigint PRIMARY KEY, qty int NOT NULL, note text);
    CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));
    CREATE TABLE loose (k int, v text, big text);
    ALTER TABLE loose REPLICA IDENTITY FULL;
    CREATE TABLE conv (id int PRIMARY KEY, code text NOT NULL);
    INSERT INTO items SELECT g, g, 'seed' FROM generate_series(1, 100) g;`);
  const errors = failures();
  const s = new SyncSession({
    source: blue.url(), target: green.url(), slotName: 'pgflip_apply', onError: errors.onError,
    // a tiny queue pauses and resumes the stream many times; small groups make many target transactions
    maxQueueBytes: 64 * 1024, maxGroupChanges: 500,
    migrationSql: 'ALTER TABLE items ALTER COLUMN qty TYPE bigint; ALTER TABLE conv ALTER COLUMN id TYPE bigint USING id + 0',
    mapping: {
      tables: [
        { table: 'public.items', renamedColumns: {}, droppedColumns: [], addedColumns: [], typeChanges: [{ column: 'qty', newType: 'bigint' }] },
        { table: 'public.conv', renamedColumns: {}, droppedColumns: [], addedColumns: [], typeChanges: [{ column: 'id', newType: 'bigint', using: 'id + 0' }] },
      ],
      newTables: [], droppedTables: [],
    },
  });
  await s.checkPrerequisites();
  await s.prepareTarget();
  await s.initialCopy();
  await s.migrateTarget();
  await s.startStreaming();

  await blue.query(`
    INSERT INTO items SELECT g, g % 97, 'n' || g FROM generate_series(101, 12100) g;  -- one transaction > 1 MiB decoded
    DELETE FROM items WHERE id % 3 = 0 AND id > 200;
    UPDATE items SET qty = qty + 1, note = NULL WHERE id <= 300;
    INSERT INTO pairs SELECT g % 50, 'b' || (g / 50), g FROM generate_series(0, 999) g;
    DELETE FROM pairs WHERE v % 7 = 0;
    UPDATE pairs SET b = b || 'x' WHERE v % 11 = 0;
    INSERT INTO loose SELECT g % 10, 'same', NULL FROM generate_series(1, 40) g;
    INSERT INTO loose VALUES (99, 'toast', (SELECT string_agg(md5(s::text), '') FROM generate_series(1, 400) s));
    UPDATE loose SET v = 'changed' WHERE ctid = (SELECT ctid FROM loose WHERE k = 3 LIMIT 1);
    UPDATE loose SET v = 'toast kept' WHERE k = 99;
    DELETE FROM loose WHERE ctid = (SELECT ctid FROM loose WHERE k = 4 LIMIT 1);
    INSERT INTO conv SELECT g, 'c' || g FROM generate_series(1, 300) g;
    UPDATE conv SET code = 'u' || id WHERE id % 5 = 0;
    UPDATE conv SET id = id + 1000 WHERE id % 9 = 0;
    DELETE FROM conv WHERE id % 4 = 0;`);
  // many small transactions, the way an application writes
  const c = await blue.connect();
  for (let i = 0; i < 300; i++) {
    await c.query('UPDATE items SET qty = qty + 1 WHERE id = $1', [1 + (i % 50)]);
    if (i % 3 === 0) await c.query('INSERT INTO pairs VALUES ($1, $2, $3)', [1000 + i, 'w', i]);
  }
  await c.end();

  const caughtUp = s.catchUp();
  const outcome = await Promise.race([caughtUp, errors.next]);
  expect(outcome).not.toBeInstanceOf(Error);
  const result = await s.verify();
  expect(result.tables.filter((t) => !t.equal)).toEqual([]);
  const [toast] = await green.query<{ v: string; len: number }>('SELECT v, length(big) AS len FROM loose WHERE k = 99');
  expect(toast).toEqual({ v: 'toast kept', len: 12800 });
  const [dupes] = await green.query<{ changed: string; same3: string }>("SELECT count(*) FILTER (WHERE v = 'changed') AS changed, count(*) FILTER (WHERE k = 3 AND v = 'same') AS same3 FROM loose");
  expect(dupes).toEqual({ changed: '1', same3: '3' });

  const stats = s.stats!;
  expect(stats.missingRows).toBe(0);
  expect(stats.changes).toBeGreaterThan(15000);
  // one statement per table, kind, column set and row-chunk size, not one per change
  expect(stats.statementsPrepared).toBeLessThan(60);
  expect(stats.roundTrips).toBeLessThan(stats.changes / 10);
  await s.cleanup();
}, 120_000);

test('a target transaction failing at COMMIT stops the stream: later transactions are neither applied nor acknowledged; a restart applies them all', async () => {
  const { blue, green } = pair;
  for (const side of [blue, green]) await side.query('CREATE DATABASE commitfail', [], 'postgres');
  await blue.query('CREATE TABLE t (id int PRIMARY KEY, v text)', [], 'commitfail');
  const source = blue.url('commitfail');
  const target = green.url('commitfail');
  const setup = new SyncSession({ source, target, slotName: 'pgflip_commitfail' });
  await setup.prepareTarget();
  await setup.initialCopy();

  // On the target only: a deferred trigger that fires even for replicated rows and fails at
  // COMMIT, slowly, so that the next transactions are decoded and built meanwhile.
  await green.query(`
    CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.v = 'refused' THEN PERFORM pg_sleep(0.3); RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'P0042'; END IF;
      RETURN NULL;
    END $$;
    CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse();
    ALTER TABLE t ENABLE ALWAYS TRIGGER refuse;`, [], 'commitfail');

  const errors = failures();
  // one source transaction per target transaction: each commits on its own
  const s = new SyncSession({ source, target, slotName: 'pgflip_commitfail', maxGroupChanges: 1, onError: errors.onError });
  await s.startStreaming();
  await blue.query("INSERT INTO t VALUES (1, 'ok')", [], 'commitfail');
  await s.catchUp();
  const [applied] = await green.query<{ lsn: string }>("SELECT applied_lsn::text AS lsn FROM pgflip.sync_state WHERE slot_name = 'pgflip_commitfail'", [], 'commitfail');

  const c = await blue.connect('commitfail');
  await c.query("INSERT INTO t VALUES (2, 'refused')");
  for (let i = 3; i <= 6; i++) await c.query('INSERT INTO t VALUES ($1, $2)', [i, `after ${i}`]);
  await c.end();

  const err = await errors.next;
  expect(err.name).toBe('SyncApplyError');
  expect(err.message).toContain('refused at commit');
  expect(err.message).toContain('SQLSTATE P0042');
  await sleep(500); // anything wrongly sent after the failure would have committed by now
  expect(await green.query('SELECT id FROM t ORDER BY id', [], 'commitfail')).toEqual([{ id: 1 }]);
  const [state] = await green.query<{ lsn: string }>("SELECT applied_lsn::text AS lsn FROM pgflip.sync_state WHERE slot_name = 'pgflip_commitfail'", [], 'commitfail');
  expect(state.lsn).toBe(applied.lsn);
  const [slot] = await blue.query<{ behind: boolean }>(
    "SELECT confirmed_flush_lsn <= $1::pg_lsn AS behind FROM pg_replication_slots WHERE slot_name = 'pgflip_commitfail'", [applied.lsn], 'commitfail');
  expect(slot.behind).toBe(true);
  await s.stop();

  // the cause fixed, a new session resumes from the stored position and loses nothing
  await green.query('DROP TRIGGER refuse ON t', [], 'commitfail');
  const again = new SyncSession({ source, target, slotName: 'pgflip_commitfail' });
  await again.startStreaming();
  await again.catchUp();
  expect((await green.query<{ id: number }>('SELECT id FROM t ORDER BY id', [], 'commitfail')).map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6]);
  expect((await again.verify()).equal).toBe(true);
  await again.cleanup();
}, 120_000);

test('a second process applying on the same slot is stopped at its next commit, with the reason', async () => {
  const { blue, green } = pair;
  for (const side of [blue, green]) await side.query('CREATE DATABASE twice', [], 'postgres');
  await blue.query('CREATE TABLE t (id int PRIMARY KEY)', [], 'twice');
  const source = blue.url('twice');
  const target = green.url('twice');
  const errors = failures();
  const s = new SyncSession({ source, target, slotName: 'pgflip_twice', onError: errors.onError });
  await s.prepareTarget();
  await s.initialCopy();
  await s.startStreaming();
  await blue.query('INSERT INTO t VALUES (1)', [], 'twice');
  await s.catchUp();
  // what another applier on the same slot would leave behind
  await green.query("UPDATE pgflip.sync_state SET applied_lsn = '0/1'", [], 'twice');
  await blue.query('INSERT INTO t VALUES (2)', [], 'twice');
  const err = await errors.next;
  expect(err.message).toMatch(/pgflip\.sync_state of pgflip_twice is at 0\/1, not at [0-9A-F]+\/[0-9A-F]+: an earlier transaction failed or another process applied changes/);
  expect(await green.query('SELECT id FROM t', [], 'twice')).toEqual([{ id: 1 }]);
  await s.cleanup();
}, 60_000);

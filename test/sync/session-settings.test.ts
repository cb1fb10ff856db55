/**
 * Two servers configured differently exchange values exactly: the source prints dates as
 * `SQL, DMY`, intervals as `sql_standard` and floats with extra_float_digits 0 (rounded to 15
 * digits); the target reads dates as `SQL, MDY`. Without the sync engine's pinned session
 * settings, 2024-02-01 arrived as 2024-01-02 and 0.1 + 0.2 as 0.3 — in the copy and in the stream.
 */
import { startPair, TestCluster } from '../harness/clusters';
import { SyncSession } from '../../src/sync';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };

beforeAll(async () => {
  pair = await startPair();
  await pair.blue.query(`ALTER DATABASE app SET DateStyle = 'SQL, DMY'; ALTER DATABASE app SET IntervalStyle = 'sql_standard'; ALTER DATABASE app SET extra_float_digits = 0`, [], 'postgres');
  await pair.green.query(`ALTER DATABASE app SET DateStyle = 'SQL, MDY'; ALTER DATABASE app SET extra_float_digits = 0`, [], 'postgres');
}, 60_000);
afterAll(async () => { await pair?.stop(); });


test('dates, timestamps, intervals and floats are copied and streamed exactly between differently configured servers', async () => {
  await pair.blue.query(`CREATE TABLE t (id int PRIMARY KEY, d date, ts timestamp, iv interval, f float8);
    INSERT INTO t VALUES (1, '2024-02-01', '2024-02-01 13:14:15.123456', '1 day 02:03:04', 0.1::float8 + 0.2::float8)`);
  const s = new SyncSession({ source: pair.blue.url(), target: pair.green.url(), slotName: 'pgflip_styles' });
  try {
    await s.checkPrerequisites();
    await s.prepareTarget({ dropExisting: true });
    await s.initialCopy();
    await s.startStreaming();
    await pair.blue.query(`INSERT INTO t VALUES (2, '2023-11-03', '2023-11-03 01:02:03.5', '-1 year 2 mons 3 days -04:05:06', 1.0 / 3.0)`);
    await s.catchUp({ timeoutMs: 30_000 });
    const read = async (c: TestCluster) => {
      const rows = await c.query<Record<string, string>>(`SELECT id, to_char(d, 'YYYY-MM-DD') AS d, to_char(ts, 'YYYY-MM-DD HH24:MI:SS.US') AS ts,
        extract(epoch FROM iv)::text AS iv, float8send(f)::text AS f FROM t ORDER BY id`);
      return rows;
    };
    const want = await read(pair.blue);
    expect(want).toHaveLength(2);
    expect(want[0].d).toBe('2024-02-01');
    expect(await read(pair.green)).toEqual(want);
    expect((await s.verify()).equal).toBe(true);
  } finally {
    await s.stop();
    await s.cleanup();
  }
}, 60_000);

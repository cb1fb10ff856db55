/**
 * A USING written against a column renamed earlier in the same file: PostgreSQL evaluates it
 * under the new name on the idle side, and so must the stream for rows written meanwhile (and
 * the verification). Before, the stream evaluated it over the old row's names and stopped with
 * "column total does not exist".
 */
import { startPair, TestCluster } from '../harness/clusters';
import { classifySqlSync, loadParser } from '../../src/classifier';
import { SyncSession } from '../../src/sync';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
beforeAll(async () => { [pair] = await Promise.all([startPair(), loadParser()]); }, 60_000);
afterAll(async () => { await pair?.stop(); });

const MIGRATION = 'ALTER TABLE orders RENAME COLUMN amount TO total;\nALTER TABLE orders ALTER COLUMN total TYPE bigint USING (total * 100)::bigint;\n';

test('rows streamed after the migration get the USING of a renamed column, and the sides verify equal', async () => {
  await pair.blue.query('CREATE TABLE orders (id int PRIMARY KEY, amount int NOT NULL); INSERT INTO orders SELECT g, g FROM generate_series(1, 100) g');
  const { mapping } = classifySqlSync(MIGRATION);
  expect(mapping!.tables[0].typeChanges).toEqual([{ column: 'total', newType: 'bigint', using: '("amount" * 100)::bigint' }]);
  const s = new SyncSession({ source: pair.blue.url(), target: pair.green.url(), slotName: 'pgflip_rename_using', mapping, migrationSql: MIGRATION });
  try {
    await s.checkPrerequisites();
    await s.prepareTarget({ dropExisting: true });
    await s.initialCopy();
    await s.migrateTarget();
    await s.startStreaming();
    await pair.blue.query('INSERT INTO orders VALUES (101, 7); UPDATE orders SET amount = 9 WHERE id = 1');
    await s.catchUp({ timeoutMs: 30_000 });
    expect(await pair.green.query('SELECT id, total::int AS total FROM orders WHERE id IN (1, 2, 101) ORDER BY id')).toEqual([{ id: 1, total: 900 }, { id: 2, total: 200 }, { id: 101, total: 700 }]);
    expect((await s.verify()).equal).toBe(true);
  } finally {
    await s.stop();
    await s.cleanup();
  }
}, 60_000);

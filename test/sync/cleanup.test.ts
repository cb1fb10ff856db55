import { SyncSession } from '../../src/sync';
import { startCluster, TestCluster } from '../harness/clusters';

describe('sync cleanup', () => {
  let pg: TestCluster;
  beforeAll(async () => { pg = await startCluster('cleanup'); });
  afterAll(async () => { await pg.stop(); });

  it('removes its own state but keeps the ledger and fencing records that share the pgflip schema', async () => {
    await pg.query(`CREATE SCHEMA pgflip;
      CREATE TABLE pgflip.migrations (name text PRIMARY KEY);
      INSERT INTO pgflip.migrations VALUES ('001_init.sql');
      CREATE TABLE pgflip.sync_state (slot_name text PRIMARY KEY, lsn pg_lsn);
      INSERT INTO pgflip.sync_state VALUES ('pgflip_m1', '0/0')`);
    await SyncSession.cleanupLeftovers(pg.url(), 'pgflip_m1');
    expect(await pg.query(`SELECT to_regclass('pgflip.sync_state') AS t`)).toEqual([{ t: null }]);
    expect(await pg.query('SELECT name FROM pgflip.migrations')).toEqual([{ name: '001_init.sql' }]);
  });

  it('drops the schema when nothing else is in it', async () => {
    await pg.query(`DROP SCHEMA pgflip CASCADE; CREATE SCHEMA pgflip;
      CREATE TABLE pgflip.sync_state (slot_name text PRIMARY KEY, lsn pg_lsn);
      INSERT INTO pgflip.sync_state VALUES ('pgflip_m2', '0/0')`);
    await SyncSession.cleanupLeftovers(pg.url(), 'pgflip_m2');
    expect(await pg.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgflip'`)).toEqual([{ n: 0 }]);
  });
});

/**
 * A client that learned a user-defined type's OID (and a table's) on the side
 * it started on keeps seeing and using those OIDs after a flip to a side where
 * they differ: RowDescription, ParameterDescription and Parse are translated
 * for the moved session; sessions that start on the new side see its own.
 */
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { startPair, TestCluster } from '../harness/clusters';
import { PROXY_PASSWORD, PROXY_USER, startProxyFor, TestProxy } from '../harness/proxy';
import { RawClient, RawMessage } from '../proxy/raw-client';
import { FlipCoordinator } from '../../src/switch/coordinator';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let px: TestProxy;
let coordinator: FlipCoordinator;
const oids: Record<string, { mood: number; feelings: number }> = {};

beforeAll(async () => {
  pair = await startPair();
  // green's schema was built another way: its objects got other OIDs
  await pair.green.query("CREATE TYPE unrelated AS ENUM ('x'); CREATE TABLE unrelated_t (a int)");
  for (const side of [pair.blue, pair.green]) {
    await side.query(`CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE TABLE feelings (id int, m mood); INSERT INTO feelings VALUES (1, 'happy')`);
    const [r] = await side.query<{ mood: number; feelings: number }>("SELECT 'mood'::regtype::oid::int AS mood, 'feelings'::regclass::oid::int AS feelings");
    oids[side.name] = r;
  }
  px = await startProxyFor(pair);
  coordinator = new FlipCoordinator(px.proxy.store, { commitWindowMs: 2000 });
});
afterAll(async () => {
  await coordinator?.close();
  await px?.stop();
  await pair?.stop();
});

const paramTypes = (ms: RawMessage[]): number[] => {
  const t = ms.find((m) => m.type === 't')!;
  return Array.from({ length: t.body.readInt16BE(0) }, (_, i) => t.body.readUInt32BE(2 + 4 * i));
};

test('type and table OIDs stay those of the side the session started on', async () => {
  expect(oids.blue.mood).not.toBe(oids.green.mood);
  const c = new Client({ connectionString: px.url() });
  await c.connect();
  const raw = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD);
  const seen = async () => {
    const r = await c.query('SELECT m FROM feelings');
    return { type: r.fields[0].dataTypeID, table: r.fields[0].tableID, value: r.rows[0].m };
  };
  // a Parse naming the type by the OID the client knows, and the parameter types it is told
  const parsed = async () => {
    raw.send([serialize.parse({ name: '', text: 'SELECT $1::text AS m', types: [oids.blue.mood] }), serialize.describe({ type: 'S', name: '' }),
      serialize.bind({ values: ['sad'] }), serialize.execute({}), serialize.sync()]);
    const ms = await raw.until('Z');
    const err = ms.find((m) => m.type === 'E');
    return { params: err ? [] : paramTypes(ms), error: err ? err.body.toString('latin1') : undefined, row: ms.find((m) => m.type === 'D')?.body.toString('utf8', 6) };
  };
  const expected = { type: oids.blue.mood, table: oids.blue.feelings, value: 'happy' };
  expect(await seen()).toEqual(expected);
  expect(await parsed()).toEqual({ params: [oids.blue.mood], error: undefined, row: 'sad' });

  expect(await coordinator.flip({ target: 'green', deadlineMs: 5000 })).toMatchObject({ ok: true, sessionsCarried: 2 });
  expect(await seen()).toEqual(expected);
  expect(await parsed()).toEqual({ params: [oids.blue.mood], error: undefined, row: 'sad' });

  // a session that starts on green learns green's OIDs
  const fresh = new Client({ connectionString: px.url() });
  await fresh.connect();
  expect((await fresh.query('SELECT m FROM feelings')).fields[0].dataTypeID).toBe(oids.green.mood);

  // back on blue: the moved session needs no translation, the green one now does
  expect(await coordinator.flip({ target: 'blue', deadlineMs: 5000 })).toMatchObject({ ok: true, sessionsCarried: 3 });
  expect(await seen()).toEqual(expected);
  expect((await fresh.query('SELECT m FROM feelings')).fields[0].dataTypeID).toBe(oids.green.mood);
  await Promise.all([c.end(), fresh.end()]);
  raw.close();
});

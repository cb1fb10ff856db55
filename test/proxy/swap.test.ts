/**
 * The hooks the live switch is built on: wait for an idle session, hold it,
 * give it a backend on the other side with its state replayed, release it.
 * The client keeps its connection, prepared statements, settings, LISTENs and
 * a working cancel key.
 */
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { startPair, TestCluster } from '../harness/clusters';
import { startProxyFor, TestProxy } from '../harness/proxy';
import { replayState } from '../../src/proxy';
import { RawClient } from './raw-client';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let px: TestProxy;
const clients: Client[] = [];

beforeAll(async () => {
  pair = await startPair();
  for (const side of [pair.blue, pair.green]) await side.query(`CREATE TABLE whoami AS SELECT '${side.name}'::text AS side`);
  px = await startProxyFor(pair);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await px?.stop();
  await pair?.stop();
});

test('an idle session moves to green with its state; queries sent while held run there', async () => {
  const c = new Client({ connectionString: px.url() });
  await c.connect();
  clients.push(c);
  await c.query({ name: 'side_of', text: 'SELECT side, $1::int AS n FROM whoami', values: [1] });
  await c.query("SET application_name = 'moving'");
  await c.query('LISTEN moved');
  const notes: string[] = [];
  c.on('notification', (n) => notes.push(n.payload ?? ''));
  expect((await c.query('SELECT side FROM whoami')).rows).toEqual([{ side: 'blue' }]);

  const [session] = px.proxy.liveSessions();
  await session.whenIdle();
  session.hold();
  // the client sends while held: nothing is read until release
  const whileHeld = c.query({ name: 'side_of', text: 'SELECT side, $1::int AS n FROM whoami', values: [2] });
  const conn = await session.openBackend('green');
  await replayState(conn, session.state!);
  await session.swapBackend(conn);
  px.proxy.setActiveSide('green');
  session.release();

  expect((await whileHeld).rows).toEqual([{ side: 'green', n: 2 }]);
  expect((await c.query("SELECT current_setting('application_name') AS app")).rows).toEqual([{ app: 'moving' }]);
  await pair.green.query("NOTIFY moved, 'on green'");
  for (let i = 0; i < 100 && !notes.length; i++) await new Promise((r) => setTimeout(r, 20));
  expect(notes).toEqual(['on green']);
  expect(px.proxy.sessions()[0]).toMatchObject({ side: 'green', prepared: ['side_of'], listens: ['moved'] });
  expect(px.proxy.activeSide).toBe('green');

  // the cancel key follows the session to its new backend
  const key = c as unknown as { processID: number; secretKey: number };
  const sleeping = c.query('SELECT pg_sleep(30)').then(() => 'finished', (e) => (e as { code: string }).code);
  const backendPid = px.proxy.sessions()[0].backendPid;
  for (let i = 0; i < 100; i++) {
    const r = await pair.green.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE 'SELECT pg_sleep%'", [backendPid]);
    if (r.length) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  const cancel = await RawClient.open(px.proxy.port);
  cancel.send(Buffer.from(serialize.cancel(key.processID, key.secretKey)));
  await cancel.waitClosed();
  expect(await sleeping).toBe('57014');
  // blue's backend of the session was ended
  let left = 1;
  for (let i = 0; i < 100 && left; i++) {
    left = (await pair.blue.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'moving'")).length;
    if (left) await new Promise((res) => setTimeout(res, 20));
  }
  expect(left).toBe(0);
});

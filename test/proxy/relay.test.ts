/**
 * Everything a client does passes through the proxy unchanged: the same
 * results and errors as a direct connection, for every protocol feature.
 */
import { Client } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { serialize } from 'pg-protocol';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { startPair, TestCluster } from '../harness/clusters';
import { startProxyFor, TestProxy } from '../harness/proxy';
import { fields, RawClient, rawMessage } from './raw-client';
import { PROXY_PASSWORD, PROXY_USER } from '../harness/proxy';
import { errorOf } from '../harness/error-of';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let px: TestProxy;
const clients: Client[] = [];

async function viaProxy(): Promise<Client> {
  const c = new Client({ connectionString: px.url() });
  await c.connect();
  clients.push(c);
  return c;
}
async function direct(): Promise<Client> {
  const c = new Client({ connectionString: pair.blue.url() });
  await c.connect();
  clients.push(c);
  return c;
}

beforeAll(async () => {
  pair = await startPair();
  await pair.blue.query('CREATE TABLE items (id int PRIMARY KEY, name text, data bytea)');
  await pair.green.query('CREATE TABLE marker (side text)');
  px = await startProxyFor(pair);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await px?.stop();
  await pair?.stop();
});

describe('pass-through', () => {
  test('serves the active side (blue) with the same results as a direct connection', async () => {
    const [p, d] = [await viaProxy(), await direct()];
    const queries: Array<[string, unknown[]?]> = [
      ["SELECT n, md5(n::text) AS h, NULL::int AS z, now()::date AS d FROM generate_series(1, 500) n"],
      ['SELECT $1::int + 1 AS a, $2::text AS b, $3::numeric * 2 AS c', [41, 'héllo', '1.25']],
      ["SELECT to_regclass('items') IS NOT NULL AS blue, to_regclass('marker') IS NOT NULL AS green"],
      ["SELECT current_database(), current_setting('client_encoding') AS enc"],
    ];
    for (const [sql, params] of queries) {
      const [a, b] = [await p.query(sql, params), await d.query(sql, params)];
      expect(a.rows).toEqual(b.rows);
      expect(a.fields.map((f) => f.dataTypeID)).toEqual(b.fields.map((f) => f.dataTypeID));
    }
  });

  test('relays errors unchanged, also in the middle of a transaction', async () => {
    const [p, d] = [await viaProxy(), await direct()];
    for (const c of [p, d]) await c.query('BEGIN');
    const [ep, ed] = [await errorOf(p.query('SELECT 1/0')), await errorOf(d.query('SELECT 1/0'))];
    expect(ep).toEqual(ed);
    expect(ep.code).toBe('22012');
    const aborted = await errorOf(p.query('SELECT 1'));
    expect(aborted.code).toBe('25P02');
    await p.query('ROLLBACK');
    await d.query('ROLLBACK');
    expect((await p.query('SELECT 2 AS x')).rows).toEqual([{ x: 2 }]);
  });

  test('named prepared statements work and are tracked for the session', async () => {
    const p = await viaProxy();
    for (let i = 0; i < 3; i++) {
      const r = await p.query({ name: 'add_one', text: 'SELECT $1::int + 1 AS v', values: [i] });
      expect(r.rows).toEqual([{ v: i + 1 }]);
    }
    await p.query("SET application_name = 'relay-test'");
    await p.query('SET statement_timeout = 5000');
    const me = px.proxy.sessions().find((s) => s.applicationName === '' && s.prepared.includes('add_one'));
    expect(me).toBeDefined();
    expect(me!.settings).toEqual({ application_name: "SET application_name = 'relay-test'", statement_timeout: 'SET statement_timeout = 5000' });
    expect(me!.txStatus).toBe('I');
  });

  test('COPY FROM STDIN and TO STDOUT, text and binary', async () => {
    const p = await viaProxy();
    const rows = Array.from({ length: 2000 }, (_, i) => `${i}\tname ${i}\t\\\\x${Buffer.from(`d${i}`).toString('hex')}\n`).join('');
    await pipeline(Readable.from([rows]), p.query(copyFrom('COPY items FROM STDIN')));
    expect((await p.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 2000 }]);

    const collect = async (c: Client, sql: string): Promise<Buffer> => {
      const parts: Buffer[] = [];
      await pipeline(c.query(copyTo(sql)), new Writable({ write(chunk, _e, cb) { parts.push(chunk); cb(); } }));
      return Buffer.concat(parts);
    };
    const d = await direct();
    const text = await collect(p, 'COPY (SELECT * FROM items ORDER BY id) TO STDOUT');
    expect(text).toEqual(await collect(d, 'COPY (SELECT * FROM items ORDER BY id) TO STDOUT'));
    const binary = await collect(p, 'COPY (SELECT * FROM items ORDER BY id) TO STDOUT (FORMAT binary)');
    expect(binary.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
    expect(binary).toEqual(await collect(d, 'COPY (SELECT * FROM items ORDER BY id) TO STDOUT (FORMAT binary)'));

    // binary back in, through the proxy
    await p.query('CREATE TEMP TABLE items_copy (LIKE items)');
    await pipeline(Readable.from([binary]), p.query(copyFrom('COPY items_copy FROM STDIN (FORMAT binary)')));
    expect((await p.query('SELECT count(*)::int AS n FROM items_copy JOIN items USING (id, name, data)')).rows).toEqual([{ n: 2000 }]);
    // a temporary table pins the session
    expect(px.proxy.sessions().some((s) => s.pinned.includes('temporary table'))).toBe(true);
  });

  test('LISTEN/NOTIFY and notices arrive at any time', async () => {
    const listener = await viaProxy();
    const got: Array<{ channel: string; payload?: string }> = [];
    listener.on('notification', (n) => got.push({ channel: n.channel, payload: n.payload }));
    await listener.query('LISTEN jobs');
    const notices: string[] = [];
    listener.on('notice', (n) => notices.push(n.message ?? ''));
    await listener.query("DO $$ BEGIN RAISE NOTICE 'hello from blue'; END $$");
    expect(notices).toEqual(['hello from blue']);
    const d = await direct();
    await d.query("NOTIFY jobs, 'one'");
    await d.query("SELECT pg_notify('jobs', 'two')");
    for (let i = 0; i < 100 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual([{ channel: 'jobs', payload: 'one' }, { channel: 'jobs', payload: 'two' }]);
    expect(px.proxy.sessions().some((s) => s.listens.includes('jobs'))).toBe(true);
  });

  test('rows and parameters of 64 MB and more', async () => {
    const p = await viaProxy();
    const size = 64 * 1024 * 1024 + 7;
    const r = await p.query('SELECT repeat($1, $2) AS big', ['x', size]);
    expect(r.rows[0].big.length).toBe(size);
    const param = 'y'.repeat(size);
    expect((await p.query('SELECT length($1::text) AS n', [param])).rows).toEqual([{ n: size }]);
  }, 60_000);

  test('a CancelRequest with the proxy key reaches the right backend', async () => {
    const p = await viaProxy();
    const d = await direct();
    const key = p as unknown as { processID: number; secretKey: number };
    const backendPid = (await p.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    expect(key.processID).not.toBe(backendPid); // the client sees the proxy's own key
    const sleeping = errorOf(p.query('SELECT pg_sleep(30)'));
    for (let i = 0; i < 100; i++) {
      const r = await d.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'", [backendPid]);
      if (r.rowCount) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    // a wrong secret is ignored
    const wrong = await RawClient.open(px.proxy.port);
    wrong.send(Buffer.from(serialize.cancel(key.processID, key.secretKey ^ 1)));
    await wrong.waitClosed();
    await new Promise((res) => setTimeout(res, 200));
    const c = await RawClient.open(px.proxy.port);
    c.send(Buffer.from(serialize.cancel(key.processID, key.secretKey)));
    await c.waitClosed();
    const err = await sleeping;
    expect(err.code).toBe('57014');
    expect((await p.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });
});

describe('protocol details (raw messages)', () => {
  let raw: RawClient;
  beforeAll(async () => { raw = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD); });
  afterAll(() => raw?.close());

  test('pipelined simple queries in one write', async () => {
    raw.send([serialize.query('SELECT 1'), serialize.query('SELECT 1/0'), serialize.query("SELECT 'after'")]);
    const msgs = [...await raw.until('Z'), ...await raw.until('Z'), ...await raw.until('Z')];
    expect(msgs.map((m) => m.type).join('')).toBe('TDCZEZTDCZ');
    expect(fields(msgs[4]).C).toBe('22012');
  });

  test('extended protocol pipeline: an error skips to Sync, the next batch runs', async () => {
    raw.send([
      serialize.parse({ name: 'ok1', text: 'SELECT $1::int * 2' }), serialize.bind({ statement: 'ok1', values: ['21'] }), serialize.execute(), serialize.sync(),
      serialize.parse({ name: 'bad', text: 'SELECT * FROM nowhere' }), serialize.bind({ statement: 'bad' }), serialize.execute(), serialize.sync(),
      serialize.bind({ statement: 'ok1', values: ['5'] }), serialize.execute(), serialize.sync(),
    ]);
    const msgs = [...await raw.until('Z'), ...await raw.until('Z'), ...await raw.until('Z')];
    expect(msgs.map((m) => m.type).join('')).toBe('12DCZEZ2DCZ');
    expect(msgs[2].body.toString('latin1', 6)).toBe('42');
    expect(fields(msgs[5]).C).toBe('42P01');
    const me = px.proxy.sessions().filter((s) => s.prepared.includes('ok1'));
    expect(me).toHaveLength(1);
    expect(me[0].prepared).not.toContain('bad');
  });

  test('portal suspension: Execute with a row limit, then the rest', async () => {
    raw.send([
      serialize.query('BEGIN'),
      serialize.parse({ text: 'SELECT g FROM generate_series(1, 5) g' }), serialize.bind({ portal: 'cur' }),
      serialize.execute({ portal: 'cur', rows: 2 }), serialize.execute({ portal: 'cur', rows: 2 }), serialize.execute({ portal: 'cur', rows: 0 }),
      serialize.sync(), serialize.query('COMMIT'),
    ]);
    const msgs = [...await raw.until('Z'), ...await raw.until('Z'), ...await raw.until('Z')];
    expect(msgs.map((m) => m.type).join('')).toBe('CZ' + '12DDsDDsDCZ' + 'CZ');
  });

  test('binary result format', async () => {
    raw.send([serialize.parse({ text: 'SELECT 258::int4, 1.5::float8' }), serialize.bind({ binary: true }), serialize.execute(), serialize.sync()]);
    const msgs = await raw.until('Z');
    const row = msgs.find((m) => m.type === 'D')!;
    // 2 columns: int32 len 4 + 00000102, int32 len 8 + IEEE double 1.5
    expect(row.body.toString('hex')).toBe('0002' + '00000004' + '00000102' + '00000008' + '3ff8000000000000');
  });

  test('function call (FunctionCall message)', async () => {
    raw.send(serialize.query("SELECT 'int4pl'::regproc::oid AS oid"));
    const oid = Number((await raw.until('Z')).find((m) => m.type === 'D')!.body.toString('latin1', 6));
    const arg = (s: string) => { const b = Buffer.alloc(4 + s.length); b.writeInt32BE(s.length, 0); b.write(s, 4, 'latin1'); return b; };
    const head = Buffer.alloc(4 + 2 + 2 + 2); head.writeInt32BE(oid, 0); head.writeInt16BE(1, 4); head.writeInt16BE(0, 6); head.writeInt16BE(2, 8);
    const resultFormat = Buffer.from([0, 0]);
    raw.send(rawMessage('F', Buffer.concat([head, arg('40'), arg('2'), resultFormat])));
    const msgs = await raw.until('Z');
    expect(msgs.map((m) => m.type).join('')).toBe('VZ');
    expect(msgs[0].body.toString('latin1', 4)).toBe('42');
  });
});

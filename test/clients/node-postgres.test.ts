/**
 * node-postgres (pg) through the proxy: pool concurrency, named prepared statements, COPY in
 * and out with pg-copy-streams, LISTEN/NOTIFY, errors mid-transaction, a 64 MiB value, binary
 * results and a cursor reading a portal a few rows at a time.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, CustomTypesConfig, DatabaseError, Pool, QueryArrayConfig } from 'pg';
import Cursor from 'pg-cursor';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { ClientEnv, startClientEnv, Target } from './env';

let env: ClientEnv;
beforeAll(async () => { env = await startClientEnv(); });
afterAll(async () => { await env?.stop(); });

async function withClient<T>(t: Target, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: t.url });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

/** The fields of a server error a client can act on. */
function errorFields(e: unknown) {
  const d = e as DatabaseError;
  return { code: d.code, severity: d.severity, message: d.message, detail: d.detail, position: d.position, routine: d.routine };
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(stream, new Writable({ write(chunk, _enc, cb) { chunks.push(chunk as Buffer); cb(); } }));
  return Buffer.concat(chunks);
}

describe('node-postgres', () => {
  it('serves concurrent queries from a pool', async () => {
    const { direct, proxy, pooled } = await env.compare('SELECT 1', async (t) => {
      const pool = new Pool({ connectionString: t.url, max: 6 });
      try {
        const results = await Promise.all(Array.from({ length: 60 }, (_, i) =>
          pool.query('SELECT $1::int * 2 AS doubled, repeat($2::text, $1::int) AS s', [i, 'ab'])));
        return results.map((r) => r.rows[0]);
      } finally {
        await pool.end();
      }
    });
    expect(direct[59]).toEqual({ doubled: 118, s: 'ab'.repeat(59) });
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('runs named prepared statements, which exist on the server under their names', async () => {
    const reset = 'DROP TABLE IF EXISTS np_items; CREATE TABLE np_items (id int PRIMARY KEY, name text)';
    const { direct, proxy, pooled } = await env.compare(reset, (t) => withClient(t, async (c) => {
      for (let i = 1; i <= 5; i++) await c.query({ name: 'add_item', text: 'INSERT INTO np_items VALUES ($1, $2)', values: [i, `item ${i}`] });
      const got = [];
      for (const id of [5, 2, 99]) got.push((await c.query({ name: 'get_item', text: 'SELECT id, name FROM np_items WHERE id = $1', values: [id] })).rows);
      const prepared = (await c.query('SELECT name, statement, parameter_types::text FROM pg_prepared_statements ORDER BY name')).rows;
      return { got, prepared };
    }));
    expect(direct.got).toEqual([[{ id: 5, name: 'item 5' }], [{ id: 2, name: 'item 2' }], []]);
    expect(direct.prepared.map((p) => p.name)).toEqual(['add_item', 'get_item']);
    expect(proxy).toEqual(direct);
    // in transaction mode the server knows them under pgflip's names (docs/proxy.md, Transaction pooling)
    expect(pooled).toEqual({ ...direct, prepared: direct.prepared.map((p) => ({ ...p, name: expect.stringMatching(/^pgflip_\d+$/) })) });
  });

  it('copies rows in and out with pg-copy-streams (text, csv and binary)', async () => {
    const reset = 'DROP TABLE IF EXISTS np_copy; CREATE TABLE np_copy (id int, name text, data bytea)';
    const lines = Array.from({ length: 20000 }, (_, i) => `${i}\tname ${i}\t\\\\x${(i % 256).toString(16).padStart(2, '0')}\n`);
    const { direct, proxy, pooled } = await env.compare(reset, (t) => withClient(t, async (c) => {
      await pipeline(Readable.from(lines), c.query(copyFrom('COPY np_copy FROM STDIN')));
      const text = await collect(c.query(copyTo('COPY (SELECT * FROM np_copy ORDER BY id) TO STDOUT')));
      const csv = await collect(c.query(copyTo("COPY (SELECT * FROM np_copy WHERE id < 3 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)")));
      const binary = await collect(c.query(copyTo('COPY (SELECT * FROM np_copy ORDER BY id) TO STDOUT WITH (FORMAT binary)')));
      // binary COPY back in: the same bytes make the same rows
      await c.query('CREATE TEMP TABLE np_copy2 (LIKE np_copy)');
      await pipeline(Readable.from([binary]), c.query(copyFrom('COPY np_copy2 FROM STDIN WITH (FORMAT binary)')));
      const [same] = (await c.query('SELECT count(*)::int AS n FROM np_copy2 a JOIN np_copy b USING (id, name, data)')).rows;
      return { text: text.toString(), csv: csv.toString(), binary: createHash('sha256').update(binary).digest('hex'), same };
    }));
    expect(direct.text).toBe(lines.join(''));
    expect(direct.csv).toBe('id,name,data\n0,name 0,\\x00\n1,name 1,\\x01\n2,name 2,\\x02\n');
    expect(direct.same).toEqual({ n: 20000 });
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('delivers NOTIFY from one connection to a LISTENing one', async () => {
    const { direct, proxy, pooled } = await env.compare('SELECT 1', (t) => withClient(t, (listener) => withClient(t, async (notifier) => {
      const got: { channel: string; payload?: string }[] = [];
      const arrived = new Promise<void>((resolve) => listener.on('notification', (m) => {
        got.push({ channel: m.channel, payload: m.payload });
        if (got.length === 4) resolve();
      }));
      await listener.query('LISTEN jobs; LISTEN "Other Channel"');
      await notifier.query("NOTIFY jobs, 'first'");
      await notifier.query("SELECT pg_notify('Other Channel', 'second')");
      await notifier.query('BEGIN');
      await notifier.query("NOTIFY jobs, 'third'");
      await notifier.query("NOTIFY jobs, 'fourth'");
      await notifier.query('COMMIT');
      await arrived; // while the listener is idle: the proxy must forward unsolicited messages
      await listener.query('UNLISTEN *');
      await notifier.query("NOTIFY jobs, 'after unlisten'");
      await listener.query('SELECT 1');
      return got;
    })));
    expect(direct).toEqual([
      { channel: 'jobs', payload: 'first' },
      { channel: 'Other Channel', payload: 'second' },
      { channel: 'jobs', payload: 'third' },
      { channel: 'jobs', payload: 'fourth' },
    ]);
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('reports an error mid-transaction, refuses further statements, and rolls back', async () => {
    const reset = 'DROP TABLE IF EXISTS np_tx; CREATE TABLE np_tx (id int PRIMARY KEY)';
    const { direct, proxy, pooled } = await env.compare(reset, (t) => withClient(t, async (c) => {
      const notices: string[] = [];
      c.on('notice', (n) => notices.push(`${n.severity} ${n.code} ${n.message}`));
      await c.query('BEGIN');
      await c.query('INSERT INTO np_tx VALUES (1)');
      const first = await c.query('INSERT INTO np_tx VALUES (1)').catch(errorFields);
      const second = await c.query('SELECT $1::int', [7]).catch(errorFields);
      await c.query('ROLLBACK');
      const rows = (await c.query('SELECT count(*)::int AS n FROM np_tx')).rows;
      await c.query("DO $$ BEGIN RAISE NOTICE 'still here'; END $$");
      const syntax = await c.query('SELEC 1').catch(errorFields);
      return { first, second, rows, notices, syntax };
    }));
    expect(direct).toEqual({
      first: expect.objectContaining({ code: '23505', severity: 'ERROR', detail: 'Key (id)=(1) already exists.' }),
      second: expect.objectContaining({ code: '25P02' }),
      rows: [{ n: 0 }],
      notices: ['NOTICE 00000 still here'],
      syntax: expect.objectContaining({ code: '42601', position: '1' }),
    });
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('round-trips a 64 MiB value', async () => {
    const big = randomBytes(48 << 20).toString('base64'); // 64 MiB of text
    const digest = createHash('md5').update(big).digest('hex');
    const reset = 'DROP TABLE IF EXISTS np_big; CREATE TABLE np_big (id int, v text)';
    const { direct, proxy, pooled } = await env.compare(reset, (t) => withClient(t, async (c) => {
      await c.query('INSERT INTO np_big VALUES (1, $1)', [big]);
      const [meta] = (await c.query('SELECT length(v) AS len, md5(v) AS md5 FROM np_big')).rows;
      const [row] = (await c.query('SELECT v FROM np_big WHERE id = 1')).rows;
      return { meta, same: row.v === big };
    }));
    expect(direct).toEqual({ meta: { len: big.length, md5: digest }, same: true });
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  }, 120_000);

  it('returns binary-format results byte for byte', async () => {
    // pg decodes every field as UTF-8 even in binary format, so the values are chosen to have
    // only bytes below 0x80 in their binary encoding; latin1 then gives the exact wire bytes.
    const raw = { getTypeParser: () => (v: string) => Buffer.from(v, 'latin1').toString('hex') } as unknown as CustomTypesConfig;
    // `binary` is a QueryConfig option of pg that its type definitions leave out
    const query: QueryArrayConfig & { binary: boolean } = {
      text: "SELECT $1::int4 AS i, 2::int8 AS b, 2.0::float8 AS f, true AS t, '\\x0102'::bytea AS by, 'hello'::text AS s, '2000-01-01 00:00:01+00'::timestamptz AS ts, '{1,2,3}'::int4[] AS a, NULL::int AS n",
      values: [42],
      binary: true,
      rowMode: 'array',
      types: raw,
    };
    const { direct, proxy, pooled } = await env.compare('SELECT 1', (t) => withClient(t, async (c) => {
      const r = await c.query(query);
      return { rows: r.rows, fields: r.fields.map((f) => [f.name, f.dataTypeID, f.format]) };
    }));
    expect(direct.rows).toEqual([[
      '0000002a', '0000000000000002', '4000000000000000', '01', '0102', '68656c6c6f', '00000000000f4240',
      '0000000100000000000000170000000300000001' + '0000000400000001' + '0000000400000002' + '0000000400000003',
      null,
    ]]);
    expect(direct.fields[0]).toEqual(['i', 23, 'binary']);
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('reads a portal a few rows at a time with pg-cursor', async () => {
    const { direct, proxy, pooled } = await env.compare('SELECT 1', (t) => withClient(t, async (c) => {
      const cursor = c.query(new Cursor('SELECT g, md5(g::text) AS h FROM generate_series(1, 25) g ORDER BY g'));
      const batches: number[][] = [];
      for (;;) {
        const rows = await cursor.read(10);
        batches.push(rows.map((r) => r.g as number));
        if (rows.length === 0) break;
      }
      await cursor.close();
      const after = (await c.query('SELECT 1 AS ok')).rows;
      return { batches, after };
    }));
    expect(direct.batches.map((b) => b.length)).toEqual([10, 10, 5, 0]);
    expect(direct.after).toEqual([{ ok: 1 }]);
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('tells an idle client that its server connection was terminated (in transaction mode it holds none: its next query gets another)', async () => {
    const { direct, proxy, pooled } = await env.compare('SELECT 1', async (t) => {
      const c = new Client({ connectionString: t.url, application_name: `victim-${t.name}` });
      await c.connect();
      const errors: { code?: string; message: string }[] = [];
      c.on('error', (e: Error & { code?: string }) => errors.push({ code: e.code, message: e.message }));
      const ended = new Promise((resolve) => c.once('end', resolve));
      const victims = `FROM pg_stat_activity WHERE application_name = 'victim-${t.name}'`;
      await env.admin(`SELECT pg_terminate_backend(pid) ${victims}`);
      if (t.name === 'pooled') {
        for (let i = 0; i < 100 && (await env.blue.query(`SELECT 1 ${victims}`)).length; i++) await new Promise((r) => setTimeout(r, 20));
      } else await ended;
      const after = await c.query('SELECT 1').then(() => 'query ran', (e: Error) => e.message);
      await c.end().catch(() => undefined);
      return { errors, after };
    });
    expect(direct).toEqual({
      errors: [
        { code: '57P01', message: 'terminating connection due to administrator command' },
        { code: undefined, message: 'Connection terminated unexpectedly' },
      ],
      after: 'Client has encountered a connection error and is not queryable',
    });
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual({ errors: [], after: 'query ran' });
  });
});

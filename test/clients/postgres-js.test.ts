/**
 * postgres.js (the `postgres` package) through the proxy: tagged queries with parameters,
 * its default named prepared statements, sql.begin transactions, listen/notify and
 * unsafe multi-statement simple queries.
 */
import postgres from 'postgres';
import { ClientEnv, startClientEnv, Target } from './env';

let env: ClientEnv;
beforeAll(async () => { env = await startClientEnv(); });
afterAll(async () => { await env?.stop(); });

function connect(t: Target, max = 4) {
  return postgres({
    host: t.host, port: t.port, user: t.user, password: t.password, database: t.database,
    ssl: false, max, onnotice: () => undefined,
  });
}

async function withSql<T>(t: Target, fn: (sql: postgres.Sql) => Promise<T>, max = 4): Promise<T> {
  const sql = connect(t, max);
  try { return await fn(sql); } finally { await sql.end({ timeout: 5 }); }
}

const sqlstate = (e: unknown) => ({ code: (e as postgres.PostgresError).code, message: (e as postgres.PostgresError).message });

describe('postgres.js', () => {
  it('runs parameterised queries as named prepared statements', async () => {
    const reset = 'DROP TABLE IF EXISTS pj_items; CREATE TABLE pj_items (id int PRIMARY KEY, name text, tags text[], doc jsonb)';
    const { direct, proxy, pooled } = await env.compare(reset, (t) => withSql(t, async (sql) => {
      for (let i = 1; i <= 20; i++) {
        await sql`INSERT INTO pj_items ${sql({ id: i, name: `item ${i}`, tags: [`t${i % 3}`], doc: sql.json({ n: i }) })}`;
      }
      const some = await sql`SELECT id, name, tags, doc FROM pj_items WHERE id = ANY(${[3, 7, 11]}::int[]) ORDER BY id`;
      const concurrent = await Promise.all(Array.from({ length: 30 }, (_, i) => sql`SELECT ${i}::int + 1 AS n`.then((r) => r[0].n)));
      // prepare: true (the default) leaves named statements on the server, reused on the next call
      const [prep] = await sql`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE NOT from_sql`;
      const err = await sql`SELECT ${'x'}::int`.catch(sqlstate);
      return { some: [...some], concurrent, prepared: prep.n > 0, err };
    }, 1));
    expect(direct.some).toEqual([
      { id: 3, name: 'item 3', tags: ['t0'], doc: { n: 3 } },
      { id: 7, name: 'item 7', tags: ['t1'], doc: { n: 7 } },
      { id: 11, name: 'item 11', tags: ['t2'], doc: { n: 11 } },
    ]);
    expect(direct.concurrent).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(direct.prepared).toBe(true);
    expect(direct.err).toEqual({ code: '22P02', message: 'invalid input syntax for type integer: "x"' });
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('commits and rolls back sql.begin transactions', async () => {
    const reset = 'DROP TABLE IF EXISTS pj_tx; CREATE TABLE pj_tx (id int PRIMARY KEY)';
    const { direct, proxy, pooled } = await env.compare(reset, (t) => withSql(t, async (sql) => {
      const committed = await sql.begin(async (tx) => {
        await tx`INSERT INTO pj_tx VALUES (1), (2)`;
        const sp = await tx.savepoint(async (s) => { await s`INSERT INTO pj_tx VALUES (2)`; }).catch(sqlstate);
        await tx`INSERT INTO pj_tx VALUES (3)`;
        return sp;
      });
      const rolledBack = await sql.begin(async (tx) => {
        await tx`INSERT INTO pj_tx VALUES (10)`;
        await tx`SELECT 1/0`;
      }).catch(sqlstate);
      const rows = await sql`SELECT id FROM pj_tx ORDER BY id`;
      return { committed, rolledBack, rows: rows.map((r) => r.id) };
    }));
    expect(direct).toEqual({
      committed: { code: '23505', message: 'duplicate key value violates unique constraint "pj_tx_pkey"' },
      rolledBack: { code: '22012', message: 'division by zero' },
      rows: [1, 2, 3],
    });
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('delivers notifications with sql.listen / sql.notify', async () => {
    const { direct, proxy, pooled } = await env.compare('SELECT 1', (t) => withSql(t, async (sql) => {
      const got: string[] = [];
      let done!: () => void;
      const arrived = new Promise<void>((r) => { done = r; });
      const sub = await sql.listen('pj_events', (payload) => { got.push(payload); if (got.length === 3) done(); });
      await sql.notify('pj_events', 'one');
      await sql`SELECT pg_notify('pj_events', 'two')`;
      await sql.notify('pj_events', JSON.stringify({ three: 3 }));
      await arrived;
      await sub.unlisten();
      return got;
    }));
    expect(direct).toEqual(['one', 'two', '{"three":3}']);
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('runs unsafe multi-statement simple queries', async () => {
    const { direct, proxy, pooled } = await env.compare('DROP TABLE IF EXISTS pj_multi', (t) => withSql(t, async (sql) => {
      const results = await sql.unsafe('CREATE TABLE pj_multi (v int); INSERT INTO pj_multi VALUES (1), (2); SELECT sum(v)::int AS total FROM pj_multi; SELECT 2 AS two');
      const shaped = (results as unknown as postgres.RowList<postgres.Row[]>[]).map((r) => ({ command: r.command, count: r.count, rows: [...r] }));
      const err = await sql.unsafe('SELECT 1; SELECT * FROM pj_nowhere; SELECT 3').catch(sqlstate);
      return { shaped, err };
    }));
    expect(direct).toEqual({
      // postgres.js starts a new result only at a RowDescription: INSERT's tag overwrites CREATE's
      shaped: [
        { command: 'INSERT', count: 2, rows: [] },
        { command: 'SELECT', count: 1, rows: [{ total: 3 }] },
        { command: 'SELECT', count: 1, rows: [{ two: 2 }] },
      ],
      err: { code: '42P01', message: 'relation "pj_nowhere" does not exist' },
    });
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('cancels a running query (CancelRequest on a new connection)', async () => {
    const { direct, proxy, pooled } = await env.compare('SELECT 1', (t) => withSql(t, async (sql) => {
      const running = sql`SELECT pg_sleep(30)`;
      const outcome = running.then(() => 'finished', sqlstate);
      await new Promise((r) => setTimeout(r, 300));
      await running.cancel();
      const err = await outcome;
      const [after] = await sql`SELECT 'usable' AS state`;
      return { err, after };
    }, 1));
    expect(direct).toEqual({ err: { code: '57014', message: 'canceling statement due to user request' }, after: { state: 'usable' } });
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });
});

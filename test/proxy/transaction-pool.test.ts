/**
 * Transaction mode (docs/proxy.md "Transaction pooling"): many clients share a few
 * server connections, each client's prepared statements, settings and SQL-prepared
 * statements stay its own, and every answer is what PostgreSQL itself gives — checked
 * side by side with the same bytes sent straight to the server.
 */
import { Client } from 'pg';
import postgres from 'postgres';
import { serialize } from 'pg-protocol';
import { startPair, TestCluster } from '../harness/clusters';
import { PROXY_PASSWORD, PROXY_USER, startProxyFor, TestProxy } from '../harness/proxy';
import { fields, RawClient, RawMessage } from './raw-client';
import { requireTool, runProgram, targetFrom } from '../clients/env';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
/** one server connection: whatever one client leaves on it, the next one meets */
let one: TestProxy;
/** three server connections for many clients */
let three: TestProxy;

beforeAll(async () => {
  pair = await startPair();
  [one, three] = await Promise.all([
    startProxyFor(pair, { proxy: { poolMode: 'transaction', poolSize: 1 } }),
    startProxyFor(pair, { proxy: { poolMode: 'transaction', poolSize: 3 } }),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all([one?.stop(), three?.stop()]);
  await pair?.stop();
});

const clients: Array<{ end(): Promise<void> }> = [];
const endClients = async (): Promise<void> => { await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined))); };
afterEach(endClients);

/** connected, ended after the test (a proxy stopped first ends it with 57P01: not an error of the test) */
async function track(c: Client): Promise<Client> {
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}

const pg = (p: TestProxy, applicationName = 'txpool'): Promise<Client> => track(new Client({ connectionString: p.url(), application_name: applicationName }));

async function raw(p: TestProxy): Promise<RawClient> {
  const c = await RawClient.login(p.proxy.port, PROXY_USER, PROXY_PASSWORD);
  clients.push({ end: async () => c.close() });
  return c;
}

/** the same, straight to blue as its superuser */
async function direct(): Promise<RawClient> {
  const u = new URL(pair.blue.url());
  const c = await RawClient.login(pair.blue.port, decodeURIComponent(u.username), decodeURIComponent(u.password));
  clients.push({ end: async () => c.close() });
  return c;
}

/** Send messages ending in Sync (or a Query); what comes back up to ReadyForQuery, as types and errors. */
async function exchange(c: RawClient, msgs: Buffer[]): Promise<{ types: string; errors: Array<{ code: string; message: string }>; rows: string[]; columns: number[] }> {
  c.send(msgs);
  const got: RawMessage[] = await c.until('Z');
  return {
    types: got.map((m) => m.type).join(''),
    errors: got.filter((m) => m.type === 'E').map((m) => ({ code: fields(m).C, message: fields(m).M })),
    // one column each: int16 count, int32 length, the text
    rows: got.filter((m) => m.type === 'D').map((m) => m.body.toString('utf8', 6, 6 + m.body.readInt32BE(2))),
    columns: got.filter((m) => m.type === 'D').map((m) => m.body.readInt16BE(0)),
  };
}

const S = serialize;
const parse = (name: string, text: string) => S.parse({ name, text, types: [] });
const bindExec = (statement: string) => [S.bind({ statement, portal: '', values: [] }), S.execute({ portal: '', rows: 0 })];

/** Each step's answer through pgflip equals PostgreSQL's own. */
async function sameAsPostgres(steps: Buffer[][], between?: () => Promise<void>): Promise<Array<Awaited<ReturnType<typeof exchange>>>> {
  const viaProxy = await raw(one);
  const server = await direct();
  const got = [];
  for (const step of steps) {
    const a = await exchange(viaProxy, step);
    const b = await exchange(server, step);
    expect(a).toEqual(b);
    got.push(a);
    await between?.();
  }
  return got;
}

/** another client runs a transaction on the single server connection, so it is not the first client's any more */
async function meanwhile(): Promise<void> {
  const o = await pg(one, 'meanwhile');
  await o.query({ name: 'other', text: 'SELECT $1::text AS v', values: ['x'] });
  await o.end();
}

describe('server connections', () => {
  test('twenty clients share three server connections; a transaction keeps its connection to the end', async () => {
    const cs = await Promise.all(Array.from({ length: 20 }, () => pg(three, 'txpool-many')));
    let peak = 0;
    const watch = setInterval(() => {
      void pair.blue.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'txpool-many'")
        .then((r) => { peak = Math.max(peak, r[0].n); }, () => undefined);
    }, 20);
    try {
      await Promise.all(cs.map(async (c, i) => {
        for (let round = 0; round < 10; round++) {
          const r = await c.query({ name: 'add', text: 'SELECT $1::int + $2::int AS x', values: [i, round] });
          expect(r.rows[0].x).toBe(i + round);
          await c.query('BEGIN');
          const a = await c.query('SELECT pg_backend_pid() AS pid, pg_sleep(0.002)');
          const b = await c.query('SELECT pg_backend_pid() AS pid');
          await c.query('COMMIT');
          expect(b.rows[0].pid).toBe(a.rows[0].pid);
        }
      }));
    } finally { clearInterval(watch); }
    const now = await pair.blue.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'txpool-many'");
    expect(now[0].n).toBeLessThanOrEqual(3);
    expect(peak).toBeLessThanOrEqual(3);
    const pool = three.proxy.status().pools.find((x) => x.side === 'blue' && x.database === 'app' && x.idle + x.active > 0);
    expect(pool).toBeDefined();
    expect(pool!.active).toBe(0);
  }, 60_000);

  test('beyond the pool a client waits its turn; past proxy.poolTimeoutMs it is told 53300', async () => {
    const p = await startProxyFor(pair, { proxy: { poolMode: 'transaction', poolSize: 1, poolTimeoutMs: 300 } });
    try {
      const a = await track(new Client({ connectionString: p.url() }));
      const b = await track(new Client({ connectionString: p.url() }));
      await a.query('BEGIN');
      await a.query('SELECT 1');
      const err = await b.query('SELECT 2').then(() => null, (e: { code?: string; message: string }) => e);
      expect(err?.code).toBe('53300');
      expect(err?.message).toMatch(/server connection/);
      await a.query('COMMIT');
      // a waiter that gets the connection in time is served
      const c = await track(new Client({ connectionString: p.url() }));
      await a.query('BEGIN');
      const waiting = c.query('SELECT 3 AS v');
      await new Promise((r) => setTimeout(r, 100));
      await a.query('COMMIT');
      expect((await waiting).rows[0].v).toBe(3);
    } finally { await endClients(); await p.stop(); }
  });

  test('a query cancelled by the client is cancelled on the connection it runs on (57014)', async () => {
    const sql = postgres(three.url(), { max: 1, onnotice: () => undefined });
    clients.push({ end: () => sql.end() });
    const q = sql`SELECT pg_sleep(10)`;
    const running = q.then(() => null, (e: { code?: string }) => e.code);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    q.cancel();
    expect(await running).toBe('57014');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await sql`SELECT 1 AS v`)[0].v).toBe(1);
  });
});

describe('protocol-level prepared statements', () => {
  test('the same name in two clients is two statements; the same statement under two names is one on the server', async () => {
    const a = await pg(one);
    const b = await pg(one);
    for (let i = 0; i < 3; i++) {
      expect((await a.query({ name: 'q', text: 'SELECT $1::int * 2 AS v', values: [i] })).rows[0].v).toBe(i * 2);
      expect((await b.query({ name: 'q', text: 'SELECT $1::int * 3 AS v', values: [i] })).rows[0].v).toBe(i * 3);
      expect((await b.query({ name: 'other-name', text: 'SELECT $1::int * 2 AS v', values: [i] })).rows[0].v).toBe(i * 2);
    }
    const onServer = await a.query("SELECT name, statement FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1::int * _ AS v' ORDER BY statement");
    expect(onServer.rows.map((r) => r.statement)).toEqual(['SELECT $1::int * 2 AS v', 'SELECT $1::int * 3 AS v']);
    for (const r of onServer.rows) expect(r.name).toMatch(/^pgflip_\d+$/);
  });

  test('Close, then Bind: 26000 as PostgreSQL says it; Parse again under the name works', async () => {
    await sameAsPostgres([
      [parse('s1', 'SELECT 1'), S.sync()],
      [...bindExec('s1'), S.sync()],
      [S.close({ type: 'S', name: 's1' }), S.sync()],
      [...bindExec('s1'), S.sync()],
      [parse('s1', 'SELECT 2'), ...bindExec('s1'), S.sync()],
    ], meanwhile);
  });

  test('a name prepared twice is 42P05, and the rest up to Sync is skipped as the server skips it', async () => {
    const got = await sameAsPostgres([
      [parse('dup', 'SELECT 1'), S.sync()],
      [parse('dup', 'SELECT 2'), ...bindExec('dup'), S.sync()],
      [...bindExec('dup'), S.sync()],
    ], meanwhile);
    expect(got[1].errors).toEqual([{ code: '42P05', message: 'prepared statement "dup" already exists' }]);
    expect(got[2].rows).toEqual(['1']);
  });

  test('an error in a batch undoes what the batch prepared; the next batch runs', async () => {
    const got = await sameAsPostgres([
      [parse('good', 'SELECT 7'), parse('bad', 'SELEC 1'), parse('after', 'SELECT 8'), S.sync()],
      [...bindExec('good'), S.sync()],
      [...bindExec('after'), S.sync()],
      [...bindExec('bad'), S.sync()],
    ], meanwhile);
    expect(got[0].errors[0].code).toBe('42601');
    expect(got[1].rows).toEqual(['7']);
    expect(got[2].errors[0].code).toBe('26000');
  });

  test('SQL DEALLOCATE of a protocol statement, DEALLOCATE ALL and DISCARD ALL drop it for that client', async () => {
    await sameAsPostgres([
      [parse('d1', 'SELECT 1'), parse('d2', 'SELECT 2'), parse('d3', 'SELECT 3'), S.sync()],
      [S.query('DEALLOCATE d1')],
      [...bindExec('d1'), S.sync()],
      [...bindExec('d2'), S.sync()],
      [S.query('DEALLOCATE ALL')],
      [...bindExec('d2'), S.sync()],
      [parse('d4', 'SELECT 4'), S.sync()],
      [S.query('DISCARD ALL')],
      [...bindExec('d4'), S.sync()],
      [S.query('DEALLOCATE nosuch')],
    ], meanwhile);
  });

  test('the unnamed statement lasts across transactions, as on the server, though another client used the connection', async () => {
    const got = await sameAsPostgres([
      [parse('', 'SELECT 42'), S.sync()],
      [...bindExec(''), S.sync()],
      [S.describe({ type: 'S', name: '' }), S.sync()],
    ], meanwhile);
    expect(got[1].rows).toEqual(['42']);
  });

  test('more statements than proxy.maxPreparedStatements: the connection keeps the newest, every client still runs all of its own', async () => {
    const p = await startProxyFor(pair, { proxy: { poolMode: 'transaction', poolSize: 1, maxPreparedStatements: 5 } });
    try {
      const c = await track(new Client({ connectionString: p.url() }));
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 12; i++) expect((await c.query({ name: `n${i}`, text: `SELECT ${i} + $1::int AS v`, values: [round] })).rows[0].v).toBe(i + round);
      }
      const n = await c.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'pgflip\\_%'");
      expect(n.rows[0].n).toBeLessThanOrEqual(5);
    } finally { await endClients(); await p.stop(); }
  });
});

describe('a plan that DDL invalidated (0A000 cached plan must not change result type)', () => {
  test('outside a transaction the statement is parsed again and run once more: the client sees the new columns where PostgreSQL says 0A000', async () => {
    await pair.blue.query('DROP TABLE IF EXISTS widened; CREATE TABLE widened (id int); INSERT INTO widened VALUES (1)');
    const a = await raw(one);
    const server = await direct();
    for (const c of [a, server]) expect((await exchange(c, [parse('w', 'SELECT * FROM widened'), ...bindExec('w'), S.sync()])).rows).toEqual(['1']);
    // another client of the same pool shares the statement
    const b = await raw(one);
    expect((await exchange(b, [parse('w2', 'SELECT * FROM widened'), ...bindExec('w2'), S.sync()])).rows).toEqual(['1']);
    await pair.blue.query("ALTER TABLE widened ADD COLUMN note text DEFAULT 'x'");
    expect((await exchange(server, [...bindExec('w'), S.sync()])).errors).toEqual([{ code: '0A000', message: 'cached plan must not change result type' }]);
    const got = await exchange(a, [S.bind({ statement: 'w', portal: '', values: [] }), S.describe({ type: 'P', name: '' }), S.execute({ portal: '', rows: 0 }), S.sync()]);
    expect(got.errors).toEqual([]);
    expect(got.types).toBe('2TDCZ');
    expect(got.columns).toEqual([2]);
    // the other client's copy was closed and parsed again as well: no 0A000 for it either
    const other = await exchange(b, [...bindExec('w2'), S.sync()]);
    expect(other.errors).toEqual([]);
    expect(other.types).toBe('2DCZ');
    expect(other.columns).toEqual([2]);
  });

  test('in a transaction block it is 0A000, as PostgreSQL says; after ROLLBACK the statement works', async () => {
    await pair.blue.query('DROP TABLE IF EXISTS widened2; CREATE TABLE widened2 (id int); INSERT INTO widened2 VALUES (1)');
    const a = await raw(one);
    expect((await exchange(a, [parse('w', 'SELECT * FROM widened2'), ...bindExec('w'), S.sync()])).rows).toEqual(['1']);
    await pair.blue.query('ALTER TABLE widened2 ADD COLUMN note text');
    await exchange(a, [S.query('BEGIN')]);
    expect((await exchange(a, [...bindExec('w'), S.sync()])).errors).toEqual([{ code: '0A000', message: 'cached plan must not change result type' }]);
    await exchange(a, [S.query('ROLLBACK')]);
    const got = await exchange(a, [...bindExec('w'), S.sync()]);
    expect(got.errors).toEqual([]);
    expect(got.types).toBe('2DCZ');
  });
});

describe('clients that prepare synchronously', () => {
  test('pgbench -M prepared, four clients per thread on one server connection: no client waits on another of its thread', async () => {
    const pgbench = requireTool('pgbench', 'postgresql-client');
    const init = await runProgram(pgbench, ['-i', '-q', '-s', '1'], { env: targetFrom('direct', pair.blue.url('app')).env });
    expect(init.code).toBe(0);
    // PQprepare blocks pgbench's thread: a Parse that waited for a connection held by a client of that thread would never end
    const r = await runProgram(pgbench, ['-n', '-c', '8', '-j', '2', '-t', '50', '-M', 'prepared'], { env: targetFrom('proxy', one.url()).env, timeoutMs: 60_000 });
    const out = r.stdout + r.stderr;
    expect({ code: r.code, processed: /actually processed: (\d+)/.exec(out)?.[1], failed: /number of failed transactions: (\d+)/.exec(out)?.[1] }).toEqual({ code: 0, processed: '400', failed: '0' });
  }, 90_000);

  test('a Parse answered without a server: a statement the schema no longer allows fails at its Bind with the server\'s error', async () => {
    await pair.blue.query('CREATE TABLE IF NOT EXISTS gone_soon (id int)');
    const a = await raw(one);
    expect((await exchange(a, [parse('g1', 'SELECT id FROM gone_soon'), S.sync()])).errors).toEqual([]);
    await pair.blue.query('DROP TABLE gone_soon');
    // another client prepares the same statement: ParseComplete, as the same text parsed before
    const b = await raw(one);
    expect(await exchange(b, [parse('g2', 'SELECT id FROM gone_soon'), S.sync()])).toEqual({ types: '1Z', errors: [], rows: [], columns: [] });
    const got = await exchange(b, [...bindExec('g2'), S.sync()]);
    expect(got.errors).toEqual([{ code: '42P01', message: 'relation "gone_soon" does not exist' }]);
    // the name stays the client's, as it would on the server
    expect((await exchange(b, [parse('g2', 'SELECT 1'), S.sync()])).errors[0]?.code).toBe('42P05');
  });
});

describe('session state per client', () => {
  test('SQL PREPARE/EXECUTE/DEALLOCATE belong to the client that prepared them', async () => {
    const a = await pg(one);
    const b = await pg(one);
    await a.query('PREPARE p(int) AS SELECT $1 + 100 AS v');
    await expect(b.query('EXECUTE p(1)')).rejects.toMatchObject({ code: '26000', message: 'prepared statement "p" does not exist' });
    await b.query('PREPARE p(int) AS SELECT $1 + 200 AS v');
    expect((await a.query('EXECUTE p(1)')).rows[0].v).toBe(101);
    expect((await b.query('EXECUTE p(1)')).rows[0].v).toBe(201);
    await a.query('DEALLOCATE p');
    await expect(a.query('EXECUTE p(1)')).rejects.toMatchObject({ code: '26000' });
    expect((await b.query('EXECUTE p(2)')).rows[0].v).toBe(202);
  });

  test('SET is carried per client and meets no other client; SET LOCAL ends with its transaction; RESET restores', async () => {
    const a = await pg(one);
    const b = await pg(one);
    await a.query("SET search_path = 'a_schema', public");
    await a.query("SET statement_timeout = '7s'");
    expect((await b.query('SHOW search_path')).rows[0].search_path).toBe('"$user", public');
    expect((await b.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('0');
    expect((await a.query('SHOW search_path')).rows[0].search_path).toBe('a_schema, public');
    expect((await a.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('7s');
    await b.query('BEGIN');
    await b.query("SET LOCAL work_mem = '8MB'");
    expect((await b.query('SHOW work_mem')).rows[0].work_mem).toBe('8MB');
    await b.query('COMMIT');
    expect((await b.query('SHOW work_mem')).rows[0].work_mem).toBe('4MB');
    await a.query('RESET statement_timeout');
    expect((await a.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('0');
    expect((await a.query('SHOW search_path')).rows[0].search_path).toBe('a_schema, public');
  });

  test('what cannot move pins the client to its connection until it ends: a temporary table', async () => {
    const p = await startProxyFor(pair, { proxy: { poolMode: 'transaction', poolSize: 2 } });
    const active = () => p.proxy.status().pools.filter((x) => x.side === 'blue').reduce((n, x) => n + x.active, 0);
    try {
      const a = await track(new Client({ connectionString: p.url() }));
      const b = await track(new Client({ connectionString: p.url() }));
      await a.query('LISTEN pinned_jobs');
      await a.query('CREATE TEMP TABLE scratch (id int)');
      await a.query('INSERT INTO scratch VALUES (1)');
      expect(active()).toBe(1);
      await b.query('SELECT 1');
      expect((await a.query('SELECT count(*)::int AS n FROM scratch')).rows[0].n).toBe(1);
      // idle on its pinned connection, it hears at once what the shared listening connection hears, as from PostgreSQL
      const heard = new Promise<string>((resolve) => a.once('notification', (n) => resolve(`${n.channel}:${n.payload}`)));
      await pair.blue.query("NOTIFY pinned_jobs, 'while pinned'");
      expect(await heard).toBe('pinned_jobs:while pinned');
      await a.query('UNLISTEN *');
      await a.query('DROP TABLE scratch');
      // as in session mode, the temporary schema stays the session's until DISCARD TEMP
      expect(active()).toBe(1);
      await a.query('DISCARD TEMP');
      expect(active()).toBe(0);
    } finally { await endClients(); await p.stop(); }
  });
});

describe('LISTEN through the shared listening connection', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /** three clients listen, notify, wait in a transaction, unlisten: what each one received, in order */
  async function scenario(url: string): Promise<Record<string, string[]>> {
    const names = ['a', 'b', 'c'] as const;
    const got: Record<string, string[]> = { a: [], b: [], c: [] };
    const cs = await Promise.all(names.map(async (n) => {
      const c = await track(new Client({ connectionString: url }));
      c.on('notification', (m) => got[n].push(`${m.channel}:${m.payload}`));
      return c;
    }));
    const [a, b, c] = cs;
    const notifier = await track(new Client({ connectionString: pair.blue.url() }));
    await a.query('LISTEN jobs');
    await b.query('LISTEN jobs');
    await c.query('LISTEN other');
    await notifier.query("NOTIFY jobs, 'one'");
    await notifier.query("NOTIFY other, 'two'");
    // a session hears its own notifications
    await a.query("NOTIFY jobs, 'from a'");
    // (each step waits for the notifications before it to arrive: through pgflip they take one hop more)
    await sleep(100);
    // inside a transaction block nothing is delivered until it ends
    await b.query('BEGIN');
    await notifier.query("NOTIFY jobs, 'during b''s transaction'");
    await sleep(200);
    await b.query('SELECT 1');
    got.b.push('-- before COMMIT');
    await b.query('COMMIT');
    // LISTEN and NOTIFY in one transaction: delivered at its commit
    await c.query('BEGIN');
    await c.query('LISTEN jobs');
    await c.query("NOTIFY jobs, 'c joins'");
    await c.query('COMMIT');
    await sleep(100);
    await a.query('UNLISTEN jobs');
    await notifier.query("NOTIFY jobs, 'after a left'");
    await sleep(300);
    for (const x of cs) await x.query('SELECT 1');
    return got;
  }

  test('clients listen without holding a connection, and hear what they would hear from PostgreSQL directly', async () => {
    const p = await startProxyFor(pair, { proxy: { poolMode: 'transaction', poolSize: 1 } });
    try {
      const direct = await scenario(pair.blue.url());
      await endClients();
      const pooled = await scenario(p.url());
      expect(direct.b).toEqual(['jobs:one', 'jobs:from a', '-- before COMMIT', "jobs:during b's transaction", 'jobs:c joins', 'jobs:after a left']);
      expect(pooled).toEqual(direct);
      // one listening connection for all of them; no client kept a pooled one
      expect(p.proxy.status().listening).toEqual([{ side: 'blue', database: 'app', channels: 2 }]);
      expect(p.proxy.status().pools.reduce((n, x) => n + x.active, 0)).toBe(0);
      const listening = await pair.blue.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgflip listener'");
      expect(listening[0].n).toBe(1);
    } finally { await endClients(); await p.stop(); }
  });

  test('a notification sent the moment LISTEN returns arrives once: none lost between the two LISTENs, none doubled', async () => {
    const p = await startProxyFor(pair, { proxy: { poolMode: 'transaction', poolSize: 2 } });
    try {
      const listener = await track(new Client({ connectionString: p.url() }));
      const notifier = await track(new Client({ connectionString: pair.blue.url() }));
      const got: string[] = [];
      listener.on('notification', (m) => got.push(`${m.channel}:${m.payload}`));
      const want: string[] = [];
      for (let i = 0; i < 40; i++) {
        // the notifier does not wait: its NOTIFY may commit before pgflip's listening connection LISTENs
        const listened = listener.query(`LISTEN race_${i}`);
        await listened;
        await notifier.query(`NOTIFY race_${i}, 'n${i}'`);
        want.push(`race_${i}:n${i}`);
        if (i % 2) await listener.query('SELECT 1');
      }
      await sleep(300);
      await listener.query('SELECT 1');
      expect(got).toEqual(want);
    } finally { await endClients(); await p.stop(); }
  });
});

describe('configuration', () => {
  test('proxy.pools picks the pool mode per database and user', async () => {
    const p = await startProxyFor(pair, { proxy: { poolMode: 'session', pools: [{ user: PROXY_USER, poolMode: 'transaction', poolSize: 1 }] } });
    try {
      const a = await track(new Client({ connectionString: p.url() }));
      await a.query('SELECT 1');
      expect(p.proxy.sessions().map((s) => s.poolMode)).toEqual(['transaction']);
    } finally { await endClients(); await p.stop(); }
  });
});

/**
 * The old application version through the compatibility schema with the real drivers:
 * postgres.js (its named prepared statements made before the flip, used after it), psycopg 3
 * (prepare=True, COPY) and pgjdbc (prepareThreshold=1) — simple and prepared statements,
 * RETURNING and ON CONFLICT on the renamed, dropped and retyped columns; and a new-version
 * session of each driver asking for the new schema.
 */
import path from 'node:path';
import postgres from 'postgres';
import { requireTool, runProgram } from '../clients/env';
import { cli } from '../controller/helpers';
import { APP, CompatEnv, startCompatEnv } from './env';

const JDBC_JAR = '/usr/share/java/postgresql.jar';
const PYTHON = '/usr/bin/python3';
let e: CompatEnv;
let classDir: string;

beforeAll(async () => {
  requireTool(JDBC_JAR, 'libpostgresql-jdbc-java');
  requireTool(PYTHON, 'python3');
  e = await startCompatEnv();
  classDir = path.join(e.dir, 'classes');
  const javac = await runProgram(requireTool('javac', 'default-jdk-headless'), ['-d', classDir, '-cp', JDBC_JAR, path.join(__dirname, 'CompatJdbc.java')]);
  if (javac.code !== 0) throw new Error(`javac CompatJdbc.java failed:\n${javac.stderr}`);
}, 120_000);
afterAll(async () => { await e?.stop(); });

/** what each driver runs as the old version; `$tag` is the driver's name */
const OLD = (tag: string) => [
  `INSERT INTO notes (t_short, body) VALUES ('${tag}-1', 'b') RETURNING t_short, body`,
  `INSERT INTO notes (id, t_short) VALUES (7, '${tag}-up') ON CONFLICT (id) DO UPDATE SET t_short = EXCLUDED.t_short RETURNING id, t_short`,
  `INSERT INTO items (name, legacy, qty) VALUES ('${tag}-i', 'L', 5) RETURNING name, legacy, qty`,
  `UPDATE items SET qty = qty + 1, legacy = 'x' WHERE id = 3`, // run twice by each driver: 3 → 7
  `SELECT t_short FROM notes WHERE id = 7`,
];
const expected = (tag: string) => [
  `${tag}-1|b;`, `7|${tag}-up;`, `${tag}-i|null|5;`, '1', `${tag}-up;`,
];

const jdbc = async (statements: string[], options?: string): Promise<string[]> => {
  const q = new URLSearchParams({ user: APP.user, password: APP.password, prepareThreshold: '1', sslmode: 'disable', ...(options ? { options } : {}) });
  const r = await runProgram(requireTool('java', 'default-jdk-headless'), ['-cp', `${classDir}:${JDBC_JAR}`, 'CompatJdbc', `jdbc:postgresql://127.0.0.1:${e.proxy.port}/app?${q}`, ...statements]);
  if (r.code !== 0) throw new Error(`pgjdbc exited ${r.code}: ${r.stderr}`);
  return r.stdout.trim().split('\n');
};

// psycopg 3: each statement with prepare=True (server-side from the first run), then COPY into the retyped table
const PSYCOPG = `
import json, sys, psycopg
out = []
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    for sql in json.loads(sys.argv[2]):
        for _ in range(2):
            try:
                cur = conn.execute(sql, prepare=True)
                r = ''.join('|'.join('null' if v is None else str(v) for v in row) + ';' for row in cur.fetchall()) if cur.description else str(cur.rowcount)
            except psycopg.Error as err:
                r = 'ERROR %s %s' % (err.sqlstate, err)
        out.append(r)
    if len(sys.argv) > 3:
        with conn.cursor().copy(sys.argv[3]) as cp:
            for i in range(3): cp.write_row(('copied-%d' % i, 'L', i))
        out.append(str(conn.execute("SELECT count(*) FROM items WHERE name LIKE 'copied-%'").fetchone()[0]))
print(json.dumps(out))
`;
const psycopg = async (statements: string[], opts: { options?: string; copy?: string } = {}): Promise<string[]> => {
  const conninfo = `host=127.0.0.1 port=${e.proxy.port} user=${APP.user} password=${APP.password} dbname=app${opts.options ? ` options='${opts.options}'` : ''}`;
  const r = await runProgram(PYTHON, ['-c', PSYCOPG, conninfo, JSON.stringify(statements), ...(opts.copy ? [opts.copy] : [])]);
  if (r.code !== 0) throw new Error(`psycopg exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
};

test('postgres.js, psycopg 3 and pgjdbc as the old version after a rename, a drop and a type change; each as the new version too', async () => {
  // postgres.js connects before the migration and prepares its statements on blue
  const sql = postgres({ host: '127.0.0.1', port: e.proxy.port, user: APP.user, password: APP.password, database: 'app', max: 1, onnotice: () => undefined });
  try {
    const pjs = async (id: number) => ({
      note: await sql`SELECT id, t_short FROM notes WHERE id = ${id}`,
      item: await sql`SELECT name, legacy, qty FROM items WHERE id = ${id}`,
      inserted: await sql`INSERT INTO notes (t_short) VALUES (${'pjs-' + id}) RETURNING t_short`,
      upserted: await sql`INSERT INTO notes (id, t_short) VALUES (${id}, ${'pjs'}) ON CONFLICT (id) DO NOTHING RETURNING id`,
    });
    const before = await pjs(1);
    expect(before.note[0]).toEqual({ id: '1', t_short: 'n1' });

    const r = await e.migrate('070_rename_drop_retype.sql');
    expect(r.code).toBe(0);
    expect(e.proxy.activeSide).toBe('green');

    // the same prepared statements, now on green through the compatibility schema
    const after = await pjs(2);
    expect(after.note[0]).toEqual({ id: '2', t_short: 'n2' });
    expect(after.item[0]).toEqual({ name: 'i2', legacy: null, qty: 2 });
    expect(after.inserted[0]).toEqual({ t_short: 'pjs-2' });
    expect([...after.upserted]).toEqual([]); // id 2 exists: nothing inserted, no error

    expect(await jdbc(OLD('jdbc'))).toEqual(expected('jdbc'));
    expect(await psycopg(OLD('pg3'), { copy: 'COPY items (name, legacy, qty) FROM STDIN' })).toEqual([...expected('pg3'), '3']);

    // each driver sets its own search_path its own way — a prepared SET, SET SCHEMA (pgjdbc's
    // setSchema), set_config — through the extended protocol: the compatibility schema stays first
    const PATHS = ['SET search_path TO public', 'SELECT t_short FROM notes WHERE id = 7', "SET SCHEMA 'public'", 'SELECT t_short FROM notes WHERE id = 7',
      "SELECT set_config('search_path', 'public', false)", 'SELECT t_short FROM notes WHERE id = 7'];
    const selects = (out: string[]) => out.filter((_, i) => i % 2 === 1);
    expect(selects(await jdbc(PATHS))).toEqual(['pg3-up;', 'pg3-up;', 'pg3-up;']);
    expect(selects(await psycopg(PATHS))).toEqual(['pg3-up;', 'pg3-up;', 'pg3-up;']);
    await sql`SET search_path TO public`;
    expect([...await sql`SELECT t_short FROM notes WHERE id = 7`]).toEqual([{ t_short: 'pg3-up' }]);
    await sql`SELECT set_config('search_path', ${'public'}, false)`;
    expect([...await sql`SELECT t_short FROM notes WHERE id = 7`]).toEqual([{ t_short: 'pg3-up' }]);

    // the new version of each driver asks for the new schema
    const NEW = [`SELECT title FROM notes WHERE id = 7`, `SELECT qty FROM items WHERE id = 3`];
    expect(await jdbc(NEW, '-c pgflip.version=latest')).toEqual(['pg3-up;', '7;']);
    expect(await psycopg(NEW, { options: '-c pgflip.version=latest' })).toEqual(['pg3-up;', '7;']);
    const fresh = postgres({ host: '127.0.0.1', port: e.proxy.port, user: APP.user, password: APP.password, database: 'app', max: 1, connection: { 'pgflip.version': 'latest' } as never, onnotice: () => undefined });
    try {
      expect([...await fresh`SELECT title, body FROM notes WHERE id = 7`]).toEqual([{ title: 'pg3-up', body: 'b7' }]);
    } finally { await fresh.end({ timeout: 5 }); }

    // every write of the old versions is in green's tables under the new names
    expect(await e.pair.green.query(`SELECT DISTINCT title FROM notes WHERE title IN ('jdbc-1', 'pg3-1', 'pjs-1', 'pjs-2') ORDER BY title`)).toEqual(
      [{ title: 'jdbc-1' }, { title: 'pg3-1' }, { title: 'pjs-1' }, { title: 'pjs-2' }]);
    expect(await e.pair.green.query(`SELECT DISTINCT name, qty::text FROM items WHERE name IN ('jdbc-i', 'pg3-i', 'copied-2') ORDER BY name`)).toEqual(
      [{ name: 'copied-2', qty: '2' }, { name: 'jdbc-i', qty: '5' }, { name: 'pg3-i', qty: '5' }]);

    // released, and the last old-version session ends: the previous schema version goes on its own
    const [rec] = await (await fetch(`${e.ctl.url}/migrations?limit=1`)).json() as Array<{ id: string }>;
    expect((await cli(['release', rec.id], e.env)).code).toBe(0);
    expect(await e.pair.green.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname LIKE 'pgflip_compat_%'`)).toEqual([{ n: 1 }]);
    await sql.end({ timeout: 5 });
    let left = 1;
    for (let i = 0; i < 100 && left; i++) {
      await new Promise((r) => setTimeout(r, 200));
      left = (await e.pair.green.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname LIKE 'pgflip_compat_%'`))[0].n;
    }
    expect(left).toBe(0);
    expect(await (await fetch(`${e.ctl.url}/migrations/${rec.id}`)).json()).toMatchObject({ compat: { state: 'dropped' } });
  } finally {
    await sql.end({ timeout: 5 });
  }
}, 240_000);

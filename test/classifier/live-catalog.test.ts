/**
 * --database-url: the server's version, table sizes, and missing tables / columns / extensions
 * as errors, against a real PostgreSQL cluster from the harness.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, TestCluster } from '../harness/clusters';
import { classifySql, loadCatalog } from '../../src/classifier';

let pg: TestCluster;
let serverVersion: number;

beforeAll(async () => {
  pg = await startCluster('classifier');
  await pg.query(`
    CREATE TABLE users (id bigint PRIMARY KEY, name varchar(50), email text, age int);
    INSERT INTO users SELECT g, 'u' || g, 'e' || g, g FROM generate_series(1, 5000) g;
    ALTER TABLE users ADD CONSTRAINT users_age_nn CHECK (age IS NOT NULL);
    ANALYZE users;`);
  serverVersion = Math.floor(Number((await pg.query<{ v: string }>("SELECT current_setting('server_version_num') AS v"))[0].v) / 10000);
});
afterAll(async () => { await pg?.stop(); });

const classify = (sql: string, pgVersion?: number) => classifySql(sql, { databaseUrl: pg.url(), pgVersion });

test('the target version is the server\'s', async () => {
  const r = await classify('SELECT 1', 10);
  expect(r.pgVersion).toBe(serverVersion);
  expect(r.warnings[0]).toBe(`--pg-version 10 ignored: the server is PostgreSQL ${serverVersion}`);
});

test('sizes of the tables the file touches: row estimate and bytes', async () => {
  const r = await classify('ALTER TABLE users ALTER COLUMN id TYPE numeric;');
  expect(r.tables).toEqual([{ table: 'public.users', rowEstimate: 5000, bytes: expect.any(Number) }]);
  expect(r.tables![0].bytes).toBeGreaterThan(100_000);
  expect(r.warnings.join('\n')).toMatch(/rewrites users\.id \(~5,000 rows, \d+ kB\) under ACCESS EXCLUSIVE/);
});

test('missing tables, columns and extensions are errors; IF EXISTS is not', async () => {
  const r = await classify([
    'ALTER TABLE nope ADD COLUMN c int;',
    'ALTER TABLE users DROP COLUMN nope;',
    'ALTER TABLE users ADD COLUMN email text;',
    'CREATE EXTENSION no_such_extension;',
    'DROP TABLE IF EXISTS also_nope;',
    'ALTER TABLE users DROP COLUMN IF EXISTS nope2;',
  ].join('\n'));
  expect(r.isValid).toBe(false);
  expect(r.errors).toEqual([
    'line 1, column 1: table nope does not exist (SQLSTATE 42P01)',
    'line 2, column 1: column nope of users does not exist (SQLSTATE 42703)',
    'line 3, column 1: column email of users already exists (SQLSTATE 42701)',
    'line 4, column 1: extension no_such_extension is not available on the server (SQLSTATE 0A000)',
  ]);
});

test('tables created earlier in the file are not missing', async () => {
  expect((await classify('CREATE TABLE fresh (id int);\nALTER TABLE fresh ADD COLUMN c int;\nCREATE INDEX ON fresh (c);')).errors).toEqual([]);
});

test('the live column type makes a varchar widening binary-coercible', async () => {
  const r = await classify('ALTER TABLE users ALTER COLUMN name TYPE varchar(100);');
  expect(r.operations[0]).toMatchObject({ type: 'ALTER_COLUMN_TYPE_COMPATIBLE', classification: 'safe', riskLevel: 'LOW', rewrite: false });
  expect((await classify('ALTER TABLE users ALTER COLUMN name TYPE varchar(10);')).operations[0].type).toBe('ALTER_COLUMN_TYPE');
});

test('a validated CHECK (col IS NOT NULL) in the database makes SET NOT NULL skip the scan', async () => {
  expect((await classify('ALTER TABLE users ALTER COLUMN age SET NOT NULL;')).operations[0]).toMatchObject({ type: 'SET_NOT_NULL_CHECKED', classification: 'safe' });
  expect((await classify('ALTER TABLE users ALTER COLUMN email SET NOT NULL;')).operations[0]).toMatchObject({ type: 'SET_NOT_NULL', classification: 'risky' });
});

test('the CLI with --database-url exits 1 on a missing table and 0 otherwise', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgflip-live-'));
  const bad = path.join(dir, 'bad.sql');
  const good = path.join(dir, 'good.sql');
  writeFileSync(bad, 'ALTER TABLE nope ADD COLUMN c int;');
  writeFileSync(good, 'ALTER TABLE users ADD COLUMN nickname text;');
  const run = (f: string) => spawnSync(process.execPath, [path.resolve(__dirname, '../../dist/cli/main.js'), 'validate', '--json', '--database-url', pg.url(), f], { encoding: 'utf8' });
  const r1 = run(bad);
  expect(r1.status).toBe(1);
  expect(JSON.parse(r1.stdout).errors).toEqual(['line 1, column 1: table nope does not exist (SQLSTATE 42P01)']);
  const r2 = run(good);
  expect(r2.status).toBe(0);
  expect(JSON.parse(r2.stdout)).toMatchObject({ pgVersion: serverVersion, tables: [{ table: 'public.users', rowEstimate: 5000 }] });
});

test('a NOT NULL column without default added to a table with rows is warned about; to an empty or new table it is not', async () => {
  await pg.query('CREATE TABLE IF NOT EXISTS empty_one (id int); ANALYZE empty_one;');
  const r = await classify([
    'ALTER TABLE users ADD COLUMN tier int NOT NULL;',
    'ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT \'free\';',
    'ALTER TABLE empty_one ADD COLUMN c int NOT NULL;',
    'CREATE TABLE later (id int);',
    'ALTER TABLE later ADD COLUMN c int NOT NULL;',
  ].join('\n'));
  expect(r.errors).toEqual([]);
  expect(r.warnings.filter((x) => /NOT NULL without a default/.test(x))).toEqual([
    'line 1: users.tier is added NOT NULL without a default to a table with rows (~5,000, planner estimate): PostgreSQL rejects that with SQLSTATE 23502; give it a default, or add it nullable, backfill, then set NOT NULL',
  ]);
  // the error is PostgreSQL's own verdict
  await expect(pg.query('ALTER TABLE users ADD COLUMN tier int NOT NULL')).rejects.toMatchObject({ code: '23502' });
});

test('a domain with constraints in the live database makes its column a rewrite, and PostgreSQL agrees', async () => {
  await pg.query(`CREATE DOMAIN live_pos AS int CHECK (VALUE > 0); CREATE DOMAIN live_plain AS int;`);
  const r = await classify('ALTER TABLE users ADD COLUMN p live_pos;\nALTER TABLE users ADD COLUMN q live_plain;');
  expect(r.operations.map((o) => [o.type, o.rewrite])).toEqual([['ADD_COLUMN_DOMAIN', true], ['ADD_COLUMN', false]]);
  // what the server does: the table's file is replaced for the first, not for the second
  const before = await pg.query<{ f: string }>(`SELECT pg_relation_filenode('users')::text AS f`);
  await pg.query('ALTER TABLE users ADD COLUMN q live_plain');
  const mid = await pg.query<{ f: string }>(`SELECT pg_relation_filenode('users')::text AS f`);
  await pg.query('ALTER TABLE users ADD COLUMN p live_pos');
  const after = await pg.query<{ f: string }>(`SELECT pg_relation_filenode('users')::text AS f`);
  expect(mid[0].f).toBe(before[0].f);
  expect(after[0].f).not.toBe(mid[0].f);
  await pg.query('ALTER TABLE users DROP COLUMN p, DROP COLUMN q');
});

describe('what the live catalog settles about compatibility and bounded changes', () => {
  beforeAll(async () => {
    await pg.query(`
      CREATE TABLE accounts (id bigint NOT NULL, code text, note text DEFAULT '', kind int NOT NULL DEFAULT 0, serial_no int,
                             odd int, tagged int DEFAULT 1 NOT NULL, CONSTRAINT something UNIQUE (code), CONSTRAINT accounts_code_key CHECK (code <> ''));
      CREATE UNIQUE INDEX lookup ON accounts (serial_no);
      CREATE INDEX uq_looking_but_not ON accounts (note);
      CREATE TABLE events (ts int NOT NULL) PARTITION BY RANGE (ts);
      CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (10);
      CREATE TABLE logs (ts int NOT NULL) PARTITION BY RANGE (ts);
      CREATE TABLE logs_default PARTITION OF logs DEFAULT;`);
  });

  test('a constraint\'s and an index\'s kind come from the catalog, whatever their names say', async () => {
    const r = await classify([
      'ALTER TABLE accounts DROP CONSTRAINT something;',
      'ALTER TABLE accounts DROP CONSTRAINT accounts_code_key;',
      'DROP INDEX lookup;',
      'DROP INDEX uq_looking_but_not;',
      'ALTER TABLE accounts RENAME CONSTRAINT something TO other;',
    ].join('\n'));
    expect(r.operations.map((o) => o.type)).toEqual(['DROP_KEY_CONSTRAINT', 'DROP_CONSTRAINT', 'DROP_UNIQUE_INDEX', 'DROP_INDEX', 'RENAME_KEY_CONSTRAINT']);
    expect(r.warnings.join('\n')).not.toMatch(/taken for|cannot tell/);
    // PostgreSQL's verdict on the old application's upsert once the key is gone
    const c = await pg.connect();
    await c.query('BEGIN; ALTER TABLE accounts DROP CONSTRAINT something');
    await expect(c.query("INSERT INTO accounts (id, code) VALUES (1, 'a') ON CONFLICT (code) DO NOTHING")).rejects.toMatchObject({ code: '42P10' });
    await c.query('ROLLBACK');
  });

  test('dropping a default: NOT NULL breaks the old inserts, nullable does not — and PostgreSQL agrees', async () => {
    const r = await classify('ALTER TABLE accounts ALTER COLUMN kind DROP DEFAULT;\nALTER TABLE accounts ALTER COLUMN note DROP DEFAULT;');
    expect(r.operations.map((o) => [o.type, o.classification])).toEqual([['DROP_DEFAULT_NOT_NULL', 'risky'], ['DROP_DEFAULT', 'safe']]);
    // one session, rolled back when it ends
    const err = await pg.query("BEGIN; ALTER TABLE accounts ALTER COLUMN kind DROP DEFAULT; INSERT INTO accounts (id, code) VALUES (2, 'b')").catch((e: { code: string }) => e);
    expect(err).toMatchObject({ code: '23502' });
  });

  test('the keys of a keyed batch come from the catalog\'s unique indexes', async () => {
    const r = await classify([
      "UPDATE accounts SET note = 'x' WHERE code = 'a';",
      "UPDATE accounts SET note = 'x' WHERE serial_no IN (1, 2);",
      "UPDATE accounts SET note = 'x' WHERE id = 1;",
    ].join('\n'));
    // id has no unique index here: not a key
    expect(r.operations.map((o) => o.type)).toEqual(['UPDATE_BOUNDED', 'UPDATE_BOUNDED', 'UPDATE']);
    expect(r.operations[0].reason).not.toMatch(/taking id/);
  });

  test('a keyed batch is bounded only where nothing makes one row many: triggers, cascading foreign keys; ranges only on integer keys', async () => {
    await pg.query(`
      CREATE TABLE par (id int PRIMARY KEY, n numeric UNIQUE);
      CREATE TABLE kid (id int, par_id int REFERENCES par ON DELETE CASCADE);
      INSERT INTO par SELECT g, g FROM generate_series(1, 10) g;
      INSERT INTO kid SELECT g, 1 FROM generate_series(1, 500) g;
      CREATE TABLE audited (id int PRIMARY KEY, v int);
      CREATE FUNCTION audited_f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
      CREATE TRIGGER audited_t BEFORE UPDATE ON audited FOR EACH ROW EXECUTE FUNCTION audited_f();`);
    const r = await classify([
      'DELETE FROM par WHERE id = 1;',
      'UPDATE par SET n = n WHERE id = 1;',
      'UPDATE par SET id = id WHERE n BETWEEN 1 AND 2;',
      'UPDATE audited SET v = 1 WHERE id = 1;',
      'BEGIN;',
      'ALTER TABLE par ADD COLUMN flag boolean;',
      'UPDATE par SET flag = true WHERE id = 2;',
      'COMMIT;',
    ].join('\n'));
    expect(r.operations.filter((o) => o.type !== 'ADD_COLUMN').map((o) => [o.line, o.type])).toEqual([[1, 'DELETE'], [2, 'UPDATE_BOUNDED'], [3, 'UPDATE'], [4, 'UPDATE'], [7, 'UPDATE_BOUNDED']]);
    expect(r.warnings.join('\n')).toMatch(/line 1: DELETE of par names at most 1 row by key, but a foreign key deletes or changes rows of other tables with it/);
    expect(r.warnings.join('\n')).toMatch(/line 4: UPDATE of audited names at most 1 row by key, but it has triggers/);
    // a keyed batch is not long work under the lock ADD COLUMN holds
    expect(r.operations.find((o) => o.line === 7)!.heldLock).toBeUndefined();
    // what PostgreSQL does with the one-row DELETE: 500 more rows go with it
    const c = await pg.connect();
    await c.query('BEGIN');
    await c.query('DELETE FROM par WHERE id = 1');
    expect((await c.query<{ n: number }>('SELECT count(*)::int AS n FROM kid')).rows[0].n).toBe(0);
    await c.query('ROLLBACK');
  });

  test('serial to identity: a default dropped earlier in the file is gone; a validated CHECK (x IS NOT NULL) makes DROP DEFAULT break inserts', async () => {
    await pg.query('CREATE TABLE ser (id serial PRIMARY KEY, v int DEFAULT 0, CONSTRAINT v_nn CHECK (v IS NOT NULL))');
    const sql = 'ALTER TABLE ser ALTER COLUMN id DROP DEFAULT;\nALTER TABLE ser ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY;';
    expect((await classify(sql)).errors).toEqual([]);
    await pg.query(`BEGIN; ${sql.replace(/\n/g, ' ')} ROLLBACK`);
    const d = await classify('ALTER TABLE ser ALTER COLUMN v DROP DEFAULT;');
    expect(d.operations[0].type).toBe('DROP_DEFAULT_NOT_NULL');
    const err = await pg.query('BEGIN; ALTER TABLE ser ALTER COLUMN v DROP DEFAULT; INSERT INTO ser DEFAULT VALUES').catch((e: { code: string }) => e);
    expect(err).toMatchObject({ code: '23514' });
  });

  test('CREATE OR REPLACE VIEW: a table is not a view (42809); columns dropped or renamed (42P16) — as PostgreSQL says', async () => {
    await pg.query('CREATE VIEW acc_v AS SELECT id, code FROM accounts');
    const cases: Array<[string, RegExp]> = [
      ['CREATE OR REPLACE VIEW accounts AS SELECT 1 AS id', /accounts is not a view \(SQLSTATE 42809\)/],
      ['CREATE OR REPLACE VIEW acc_v AS SELECT id FROM accounts', /cannot drop columns from view acc_v/],
      ['CREATE OR REPLACE VIEW acc_v AS SELECT id, code AS c FROM accounts', /cannot change name of view column "code" to "c" \(SQLSTATE 42P16\)/],
    ];
    for (const [sql, message] of cases) {
      const r = await classify(`${sql};`);
      expect(r.errors.join('\n')).toMatch(message);
      await expect(pg.query(sql)).rejects.toMatchObject({ code: /SQLSTATE (\w{5})/.exec(r.errors[0])![1] });
    }
    const ok = await classify('CREATE OR REPLACE VIEW acc_v AS SELECT id, code, note FROM accounts;');
    expect(ok.errors).toEqual([]);
    expect(ok.operations[0].type).toBe('REPLACE_VIEW');
  });

  test('ADD IDENTITY that PostgreSQL rejects is an error with its SQLSTATE', async () => {
    const r = await classify('ALTER TABLE accounts ALTER COLUMN odd ADD GENERATED BY DEFAULT AS IDENTITY;\nALTER TABLE accounts ALTER COLUMN tagged ADD GENERATED ALWAYS AS IDENTITY;');
    expect(r.errors).toEqual([
      'line 1, column 1: column odd of accounts must be declared NOT NULL before identity can be added (SQLSTATE 55000)',
      'line 2, column 1: column tagged of accounts already has a default value: drop it before adding the identity (SQLSTATE 55000)',
    ]);
    await expect(pg.query('ALTER TABLE accounts ALTER COLUMN odd ADD GENERATED BY DEFAULT AS IDENTITY')).rejects.toMatchObject({ code: '55000' });
    await expect(pg.query('ALTER TABLE accounts ALTER COLUMN tagged ADD GENERATED ALWAYS AS IDENTITY')).rejects.toMatchObject({ code: '55000' });
  });

  test('a partitioned table\'s key and DEFAULT partition from the catalog: the errors PostgreSQL raises', async () => {
    await pg.query('ALTER TABLE logs ADD COLUMN v int');
    // ONLY: refused on logs (it has a partition), taken by a partitioned table still without one
    await pg.query('CREATE TABLE empty_parted (ts int) PARTITION BY RANGE (ts)');
    expect((await classify('ALTER TABLE ONLY empty_parted ADD COLUMN w int;')).errors).toEqual([]);
    await pg.query('BEGIN; ALTER TABLE ONLY empty_parted ADD COLUMN w int; ROLLBACK');
    const cases: Array<[string, RegExp]> = [
      ['CREATE UNIQUE INDEX logs_v ON logs (v)', /must include all partitioning columns \(ts\)/],
      ['ALTER TABLE logs DETACH PARTITION logs_default CONCURRENTLY', /default partition exists/],
      ['ALTER TABLE ONLY logs ADD COLUMN w int', /must be added to the partitions/],
    ];
    for (const [sql, message] of cases) {
      const r = await classify(`${sql};`);
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatch(message);
      const stated = /SQLSTATE (\w{5})/.exec(r.errors[0])![1];
      await expect(pg.query(sql)).rejects.toMatchObject({ code: stated });
    }
    // with the key's columns it is fine, and PostgreSQL agrees (rolled back with the session)
    const ok = 'CREATE UNIQUE INDEX logs_tv ON logs (ts, v)';
    expect((await classify(`${ok};`)).errors).toEqual([]);
    await pg.query(`BEGIN; ${ok}; ROLLBACK`);
    await pg.query('ALTER TABLE logs DROP COLUMN v');
  });

  test('attaching a partition made in the file: safe without a DEFAULT partition (12+), risky with one', async () => {
    const r = await classify([
      'CREATE TABLE events_2 (ts int NOT NULL);',
      'ALTER TABLE events ATTACH PARTITION events_2 FOR VALUES FROM (10) TO (20);',
      'CREATE TABLE logs_1 (ts int NOT NULL);',
      'ALTER TABLE logs ATTACH PARTITION logs_1 FOR VALUES FROM (0) TO (10);',
    ].join('\n'));
    expect(r.operations.filter((o) => o.type.startsWith('ATTACH')).map((o) => [o.type, o.classification])).toEqual([
      ['ATTACH_NEW_PARTITION', serverVersion >= 12 ? 'safe' : 'risky'], ['ATTACH_PARTITION', 'risky'],
    ]);
    // what the server locks: the parent SHARE UPDATE EXCLUSIVE, the DEFAULT partition ACCESS EXCLUSIVE
    const c = await pg.connect();
    await c.query('BEGIN; CREATE TABLE logs_1 (ts int NOT NULL); ALTER TABLE logs ATTACH PARTITION logs_1 FOR VALUES FROM (0) TO (10)');
    const locks = (await c.query<{ rel: string; mode: string }>(`SELECT relation::regclass::text AS rel, mode FROM pg_locks
      WHERE pid = pg_backend_pid() AND relation IN ('logs'::regclass, 'logs_default'::regclass) ORDER BY 1`)).rows;
    await c.query('ROLLBACK');
    expect(locks.map((l) => [l.rel, l.mode])).toEqual([['logs', 'ShareUpdateExclusiveLock'], ['logs_default', 'AccessExclusiveLock']]);
    // before 12 attaching blocks the whole parent: the same catalog read as an 11 answers risky
    const sql = 'CREATE TABLE events_3 (ts int NOT NULL);\nALTER TABLE events ATTACH PARTITION events_3 FOR VALUES FROM (20) TO (30);';
    const catalog = await loadCatalog(pg.url(), ['public.events', 'public.events_3']);
    const old = await classifySql(sql, { catalog: { ...catalog, serverVersion: 11 } });
    expect(old.operations[1]).toMatchObject({ type: 'ATTACH_NEW_PARTITION', classification: 'risky', lock: 'ACCESS EXCLUSIVE' });
  });
});

test('a column assigned or listed twice: the SQLSTATE the classifier names is the one PostgreSQL raises', async () => {
  const cases = [
    "UPDATE users SET name = 'a', name = 'b' WHERE id = 1",
    'INSERT INTO users (id, id) VALUES (1, 2)',
    "INSERT INTO users (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET name = 'x', name = 'y'",
  ];
  for (const sql of cases) {
    const r = await classify(sql);
    const stated = /SQLSTATE (\w{5})/.exec(r.errors.join('\n'))?.[1];
    expect(stated).toBeDefined();
    await expect(pg.query(sql)).rejects.toMatchObject({ code: stated });
  }
});

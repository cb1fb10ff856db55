/**
 * --database-url: the server's version, table sizes, and missing tables / columns / extensions
 * as errors, against a real PostgreSQL cluster from the harness.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, TestCluster } from '../harness/clusters';
import { classifySql } from '../../src/classifier';

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

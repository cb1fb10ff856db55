/**
 * psql through the proxy prints exactly what it prints against PostgreSQL: result tables,
 * notices, errors with their SQLSTATE, \copy in and out (text, csv, binary), large values and
 * large objects (libpq sends FunctionCall messages for them).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ClientEnv, requireTool, runProgram, startClientEnv, Target } from './env';

let env: ClientEnv;
let psql: string;

beforeAll(async () => {
  psql = requireTool('psql', 'postgresql-client');
  env = await startClientEnv();
});
afterAll(async () => { await env?.stop(); });

const RESET = 'DROP TABLE IF EXISTS items';
const BIG_COPY_NOTE = 'y'.repeat(6 << 20); // one 6 MiB field in a \copy line
const BIG_LITERAL = 'z'.repeat(3 << 20); // one 3 MiB Query message

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

function writeScript(dir: string): string {
  const file = path.join(dir, 'session.sql');
  writeFileSync(file, `\\set VERBOSITY verbose
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, note text);
INSERT INTO items SELECT g, 'item ' || g, NULL FROM generate_series(1, 5) g;
SELECT id, name FROM items ORDER BY id;
SELECT 1 AS one \\; SELECT 'two' AS two \\; SELECT 3 AS three;
BEGIN;
INSERT INTO items VALUES (6, 'six', NULL);
SELECT * FROM no_such_table;
SELECT 'inside a failed transaction';
ROLLBACK;
INSERT INTO items VALUES (1, 'duplicate', NULL);
SELECT count(*) AS after_rollback FROM items;
DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; RAISE WARNING 'careful: %', 42; END $$;
\\copy items FROM 'in.txt'
\\copy items FROM 'in.csv' WITH (FORMAT csv, HEADER true)
\\copy (SELECT id, name, note FROM items WHERE id < 100 ORDER BY id) TO 'out.txt'
\\copy (SELECT id, name, note FROM items WHERE id < 100 ORDER BY id) TO 'out.csv' WITH (FORMAT csv, HEADER true)
SELECT id, length(note) AS len, md5(note) FROM items WHERE id >= 100 ORDER BY id;
\\copy (SELECT note FROM items WHERE id = 100) TO 'big.txt'
INSERT INTO items VALUES (101, 'big literal', '${BIG_LITERAL}');
SELECT id, length(note) AS len, md5(note) FROM items WHERE id = 101;
\\pset format unaligned
\\pset tuples_only on
\\o big-result.txt
SELECT repeat('ab', 2500000) || id FROM items WHERE id = 3;
\\o
\\pset tuples_only off
\\pset format aligned
SELECT count(*) AS total FROM items;
\\copy (SELECT id, name FROM items WHERE id < 100 ORDER BY id) TO 'out.bin' WITH (FORMAT binary)
CREATE TABLE items_bin (id int, name text);
\\copy items_bin FROM 'out.bin' WITH (FORMAT binary)
SELECT count(*) AS binary_copied FROM items_bin JOIN items USING (id, name);
DROP TABLE items_bin;
\\lo_import 'in.csv'
SELECT length(lo_get(:LASTOID)) AS lo_bytes, md5(lo_get(:LASTOID)) AS lo_md5;
\\lo_export :LASTOID 'lo-out.csv'
\\lo_unlink :LASTOID
`);
  return file;
}

function writeInputs(dir: string): void {
  writeFileSync(path.join(dir, 'in.txt'), `10\tten\t\\N\n11\televen\ttab\\there\n100\tbig copy\t${BIG_COPY_NOTE}\n`);
  writeFileSync(path.join(dir, 'in.csv'), 'id,name,note\n20,twenty,"quoted, with comma"\n21,"twenty ""one""",\n');
}

interface PsqlRun { code: number; stdout: string; stderr: string; files: Record<string, string> }

async function runSession(script: string, t: Target): Promise<PsqlRun> {
  const cwd = path.join(env.tmp, `psql-${t.name}`);
  mkdirSync(cwd, { recursive: true });
  writeInputs(cwd);
  const r = await runProgram(psql, ['-X', '-q', '-f', script], { env: t.env, cwd });
  const files: Record<string, string> = {};
  for (const f of ['out.txt', 'out.csv', 'lo-out.csv']) files[f] = readFileSync(path.join(cwd, f), 'utf8');
  for (const f of ['big.txt', 'big-result.txt', 'out.bin']) files[f] = sha(readFileSync(path.join(cwd, f)));
  return { ...r, files };
}

describe('psql', () => {
  it('prints the same rows, notices, errors and \\copy files through the proxy as directly', async () => {
    const script = writeScript(env.tmp);
    const { direct, proxy, pooled } = await env.compare(RESET, (t) => runSession(script, t));

    // What psql shows directly (so the comparison below compares something real).
    expect(direct.code).toBe(0);
    expect(direct.stdout).toContain(' one \n-----\n   1\n');
    expect(direct.stdout).toContain(' three \n-------\n     3\n');
    expect(direct.stderr).toContain('ERROR:  42P01: relation "no_such_table" does not exist');
    expect(direct.stderr).toContain('ERROR:  25P02: current transaction is aborted');
    expect(direct.stderr).toContain('ERROR:  23505: duplicate key value violates unique constraint "items_pkey"');
    expect(direct.stderr).toContain('NOTICE:  00000: hello from plpgsql');
    expect(direct.stderr).toContain('WARNING:  01000: careful: 42');
    expect(direct.stdout).toMatch(/after_rollback \n-+\n +5\n/);
    expect(direct.stdout).toMatch(/total \n-+\n +11\n/);
    expect(direct.files['out.txt']).toContain('11\televen\ttab\\there\n');
    expect(direct.files['out.csv']).toContain('20,twenty,"quoted, with comma"\n21,"twenty ""one""",\n');
    expect(direct.stdout).toContain(`100 | ${BIG_COPY_NOTE.length} | ${createHash('md5').update(BIG_COPY_NOTE).digest('hex')}`);
    expect(direct.files['big.txt']).toBe(sha(BIG_COPY_NOTE + '\n'));
    expect(direct.files['big-result.txt']).toBe(sha('ab'.repeat(2500000) + '3\n'));
    expect(direct.stdout).toMatch(/binary_copied \n-+\n +9\n/);
    // \lo_import and \lo_export go through libpq's large-object calls: FunctionCall messages
    expect(direct.files['lo-out.csv']).toBe(readFileSync(path.join(env.tmp, 'psql-direct', 'in.csv'), 'utf8'));

    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('stops at the first error with ON_ERROR_STOP and exit code 3, like PostgreSQL directly', async () => {
    const script = path.join(env.tmp, 'stop.sql');
    writeFileSync(script, "SELECT 'before';\nSELECT 1/0;\nSELECT 'never printed';\n");
    const { direct, proxy, pooled } = await env.compare('SELECT 1', (t) =>
      runProgram(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-f', script], { env: t.env }));
    expect(direct.code).toBe(3);
    expect(direct.stdout).toContain('before');
    expect(direct.stdout).not.toContain('never printed');
    expect(direct.stderr).toContain('ERROR:  22012: division by zero');
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  it('passes the startup parameters on: client_encoding, DateStyle, TimeZone, options, application_name', async () => {
    // a LATIN1 script: é is the single byte 0xE9, which the server must read as LATIN1
    const script = path.join(env.tmp, 'latin1.sql');
    writeFileSync(script, Buffer.concat([
      Buffer.from("SELECT length('"), Buffer.from([0xe9]), Buffer.from("') AS len, encode(convert_to('"), Buffer.from([0xe9]), Buffer.from("', 'UTF8'), 'hex') AS utf8;\n"),
      Buffer.from("SHOW client_encoding;\nSHOW DateStyle;\nSHOW TimeZone;\nSHOW search_path;\nSHOW statement_timeout;\nSHOW application_name;\nSELECT '2024-03-01 12:00+00'::timestamptz AS ts;\n"),
    ]));
    const { direct, proxy, pooled } = await env.compare('SELECT 1', (t) => runProgram(psql, ['-X', '-q', '-A', '-t', '-f', script], {
      env: { ...t.env, PGCLIENTENCODING: 'LATIN1', PGDATESTYLE: 'German', PGTZ: 'Asia/Tokyo', PGAPPNAME: 'client-test', PGOPTIONS: '-c search_path=extra,public -c statement_timeout=1234' },
    }));
    expect(direct).toEqual({
      code: 0,
      stdout: '1|c3a9\nLATIN1\nGerman, DMY\nAsia/Tokyo\nextra,public\n1234ms\nclient-test\n01.03.2024 21:00:00 JST\n',
      stderr: '',
    });
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });
});

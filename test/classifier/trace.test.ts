/**
 * `pgflip validate --trace`: the built CLI runs the files on a throwaway cluster of its own and
 * reports what PostgreSQL did per statement; a harness cluster holds the --database-url schema.
 * The CLI runs with TMPDIR set to a directory of this test, so that what it leaves behind there
 * (and the processes it leaves running) can be checked.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, TestCluster } from '../harness/clusters';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'dist/cli/main.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'pgflip-trace-test-'));
const tmp = path.join(dir, 'tmp');
const file = (name: string, sql: string) => { const p = path.join(dir, name); writeFileSync(p, sql); return p; };

let pg: TestCluster;

beforeAll(async () => {
  chmodSync(dir, 0o755); // the throwaway cluster runs as the postgres OS user when we are root
  spawnSync('mkdir', ['-m', '0755', tmp]);
  pg = await startCluster('trace');
  await pg.query(`
    CREATE TABLE t (id int PRIMARY KEY, x int, tags varchar(10)[]);
    INSERT INTO t SELECT g, g, '{a}' FROM generate_series(1, 100) g;
    CREATE TABLE u (id int);
    CREATE TABLE p (id int, k int) PARTITION BY RANGE (k);
    CREATE TABLE p_1 PARTITION OF p FOR VALUES FROM (0) TO (100);`);
});
afterAll(async () => {
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function pgflip(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, 'validate', '--json', '--trace', ...args], { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp } });
  let json;
  try { json = JSON.parse(r.stdout); } catch { throw new Error(`no JSON (exit ${r.status}): ${r.stdout}\n${r.stderr}`); }
  return { code: r.status, json, stderr: r.stderr };
}

/** What a trace leaves in TMPDIR (the initdb template it caches is meant to stay). */
const leftovers = () => readdirSync(tmp).filter((n) => n.startsWith('pgflip-trace-'));
/** A process that has exited (a zombie not yet reaped by init included) is not alive. */
function alive(pid: number): boolean {
  try { return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z'; } catch { return false; }
}
/** Processes whose command line names TMPDIR: the throwaway postmaster and its children. */
const processesInTmp = () => spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(tmp));

test('NOT VALID then VALIDATE: ACCESS EXCLUSIVE on t after the first statement, c validated by the second', () => {
  // both on one line: the operations' lines are the same, their statements are not
  const f = file('check.sql', 'ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT c;\n');
  const r = pgflip('--database-url', pg.url(), f);
  expect(r.code).toBe(0);
  const [add, validate] = r.json.operations;
  expect(add).toMatchObject({ type: 'ADD_CHECK_NOT_VALID', line: 1, trace: { locks: [{ lock: 'ACCESS EXCLUSIVE', relation: 't' }], rewrote: [], validated: [], created: ['constraint c on t'] } });
  expect(validate).toMatchObject({ type: 'VALIDATE_CONSTRAINT', line: 1, trace: { rewrote: [], validated: ['c on t'], created: [] } });
  expect(typeof validate.trace.ms).toBe('number');
  // the whole file ran as one transaction: the second statement took no lock the first had not
  expect(validate.trace.locks).toEqual([]);
});

test('a type change shows the rewrite of t', () => {
  const r = pgflip('--database-url', pg.url(), file('type.sql', 'ALTER TABLE t ALTER COLUMN id TYPE bigint;\n'));
  expect(r.json.operations[0]).toMatchObject({ type: 'ALTER_COLUMN_TYPE', rewrite: true, trace: { rewrote: ['t'], locks: expect.arrayContaining([{ lock: 'ACCESS EXCLUSIVE', relation: 't' }]) } });
  expect(r.json.operations[0].trace.created).toEqual(expect.arrayContaining(['index t_pkey (rebuilt)']));
});

test('what PostgreSQL rejects and the parser accepts: isValid false, with SQLSTATE, line and column', () => {
  const exists = pgflip('--database-url', pg.url(), file('exists.sql', 'SELECT 1;\n\n  CREATE TABLE t (id int);\n'));
  expect(exists.code).toBe(1);
  expect(exists.json.isValid).toBe(false);
  // PostgreSQL's words (or the classifier's, where it already says so for the line and SQLSTATE: the error is not repeated)
  expect(exists.json.errors).toEqual(expect.arrayContaining([expect.stringMatching(/^line 3, column 3: relation "?t"? already exists \(SQLSTATE 42P07\)$/)]));

  // a column named only inside a query: the classifier does not look there; the error's position is in the file
  const column = pgflip('--database-url', pg.url(), file('column.sql', 'ALTER TABLE t ADD COLUMN y int;\nCREATE VIEW v AS\n  SELECT id, nope FROM t;\n'));
  expect(column.code).toBe(1);
  expect(column.json.isValid).toBe(false);
  expect(column.json.errors).toEqual(['line 3, column 14: column "nope" does not exist (SQLSTATE 42703)']);
  expect(column.json.operations[0].trace).toBeDefined();
  expect(column.json.operations[1].trace).toBeUndefined();

  // no position: the statement's start
  const concurrently = pgflip('--database-url', pg.url(), file('cic.sql', '-- partitioned\nCREATE INDEX CONCURRENTLY p_k ON p (k);\n'));
  expect(concurrently.code).toBe(1);
  expect(concurrently.json.isValid).toBe(false);
  expect(concurrently.json.errors).toEqual(expect.arrayContaining([expect.stringMatching(/^line 2, column 1: cannot create index on partitioned table "?p"? concurrently.*\(SQLSTATE 0A000\)$/)]));
  expect(concurrently.json.operations[0].trace).toBeUndefined();
});

test('two files without --database-url: the second runs on what the first made', () => {
  const first = file('001_create.sql', 'CREATE TABLE accounts (id bigint PRIMARY KEY, email text);\n');
  const second = file('002_alter.sql', 'ALTER TABLE accounts ADD COLUMN name text;\nCREATE INDEX accounts_email ON accounts (email);\n');
  const r = pgflip(first, second);
  expect(r.code).toBe(0);
  const [a, b] = r.json;
  expect(a.operations[0].trace.created).toEqual(expect.arrayContaining(['table accounts', 'index accounts_pkey']));
  expect(b.isValid).toBe(true);
  expect(b.operations[0].trace.locks).toEqual([{ lock: 'ACCESS EXCLUSIVE', relation: 'accounts' }]);
  expect(b.operations[1].trace.created).toEqual(['index accounts_email']);
});

test('the trace leaves no cluster behind: its directory is removed and no postgres process is left', () => {
  const r = pgflip(file('plain.sql', 'CREATE TABLE z (id int);\n'));
  expect(r.code).toBe(0);
  expect(leftovers()).toEqual([]);
  expect(processesInTmp()).toEqual([]);
});

test('interrupted (SIGINT) while a statement runs: the cluster is stopped and removed, exit 130', async () => {
  const f = file('slow.sql', 'SELECT pg_sleep(60);\n');
  const child = spawn(process.execPath, [CLI, 'validate', '--trace', f], { env: { ...process.env, TMPDIR: tmp }, stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const children = (ppid: number) => spawnSync('ps', ['--ppid', String(ppid), '-o', 'args='], { encoding: 'utf8' }).stdout;
  let pid: number | undefined;
  for (let i = 0; i < 300 && pid === undefined; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const [d] = leftovers();
    const pidFile = d && path.join(tmp, d, 'data', 'postmaster.pid');
    if (!pidFile || !existsSync(pidFile)) continue;
    const postmaster = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    // a backend's process title ends with the command it runs
    if (/ SELECT\b/.test(children(postmaster))) pid = postmaster;
  }
  expect(pid).toBeDefined();
  child.kill('SIGINT');
  expect(await exited).toBe(130);
  expect(leftovers()).toEqual([]);
  expect(alive(pid!)).toBe(false);
  expect(children(pid!)).toBe('');
  expect(processesInTmp()).toEqual([]);
});

test('killed (SIGKILL) mid-trace: the next trace of any process stops the orphaned server and removes its directory', async () => {
  const f = file('slow2.sql', 'SELECT pg_sleep(60);\n');
  const child = spawn(process.execPath, [CLI, 'validate', '--trace', f], { env: { ...process.env, TMPDIR: tmp }, stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let pid: number | undefined;
  let stale: string | undefined;
  for (let i = 0; i < 300 && pid === undefined; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const [d] = leftovers();
    const pidFile = d && path.join(tmp, d, 'data', 'postmaster.pid');
    if (!pidFile || !existsSync(pidFile)) continue;
    pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    stale = d;
  }
  expect(pid).toBeDefined();
  await new Promise((r) => setTimeout(r, 500)); // the statement is running
  child.kill('SIGKILL');
  await exited;
  // what a SIGKILL leaves: the server running, the directory in place
  expect(alive(pid!)).toBe(true);
  expect(leftovers()).toEqual([stale]);
  // the next trace (another process) cleans it up before it makes its own
  const r = pgflip(file('after-kill.sql', 'CREATE TABLE z2 (id int);\n'));
  expect(r.code).toBe(0);
  for (let i = 0; i < 50 && alive(pid!); i++) await new Promise((res) => setTimeout(res, 100));
  expect(alive(pid!)).toBe(false);
  expect(leftovers()).toEqual([]);
  expect(processesInTmp()).toEqual([]);
});

test('where the operation table understates what PostgreSQL does, the trace wins, with a warning', () => {
  // the ALTER TABLE an EXECUTE of a computed string runs (DYNAMIC_SQL, lock NONE, no rewrite) takes ACCESS EXCLUSIVE;
  // CREATE POLICY, once understated too, now says what the trace sees (no warning)
  const policy = pgflip('--database-url', pg.url(), file('policy.sql', [
    'CREATE POLICY everyone ON t USING (true);',
    'DO $$',
    'BEGIN',
    "  EXECUTE format('ALTER TABLE %I ADD COLUMN z int', 'u');",
    'END $$;',
  ].join('\n')));
  const [create, dynamic] = policy.json.operations;
  expect(create).toMatchObject({ type: 'CREATE_POLICY', lock: 'ACCESS EXCLUSIVE', trace: { locks: [{ lock: 'ACCESS EXCLUSIVE', relation: 't' }] } });
  expect(dynamic).toMatchObject({ type: 'DYNAMIC_SQL', line: 4, lock: 'ACCESS EXCLUSIVE', trace: { locks: [{ lock: 'ACCESS EXCLUSIVE', relation: 'u' }] } });
  expect(policy.json.warnings).toContain('line 4: the trace took ACCESS EXCLUSIVE on u, stronger than the NONE the operation table says');
  expect(policy.json.warnings.filter((w: string) => w.startsWith('line 1: the trace'))).toEqual([]);

  // a type change run through EXECUTE cannot be read statically; the trace sees the rewrite
  const dyn = pgflip('--database-url', pg.url(), file('dynamic-rewrite.sql', "SET lock_timeout = '1s';\nDO $$ BEGIN EXECUTE format('ALTER TABLE %I ALTER COLUMN tags TYPE text', 't'); END $$;\n"));
  const op = dyn.json.operations.find((o: { type: string }) => o.type === 'DYNAMIC_SQL');
  expect(op).toMatchObject({ rewrite: true, classification: 'risky', riskLevel: 'HIGH', trace: { rewrote: ['t'] } });
  expect(dyn.json.warnings).toContain('line 2: the trace rewrote t, which the operation table says DYNAMIC SQL does not: counted as a rewrite under ACCESS EXCLUSIVE');

  // a trace never lowers an answer: the rewrite of an empty table is still a rewrite, and a scan still a scan
  const scan = pgflip('--database-url', pg.url(), file('scan.sql', 'ALTER TABLE t ADD CONSTRAINT big CHECK (x < 1000);\n'));
  expect(scan.json.operations[0]).toMatchObject({ type: 'ADD_CHECK', classification: 'risky', riskLevel: 'HIGH', scan: true, trace: { validated: ['big on t'] } });
});

test('the trace ran on another major version than the target: a warning says so', () => {
  const r = pgflip('--pg-version', '12', file('v.sql', 'SELECT 1;\n'));
  const version = /PostgreSQL (\d+) while/.exec(r.json.warnings.join('\n'));
  expect(version).not.toBeNull();
  expect(r.json.warnings).toContain(`the trace ran on PostgreSQL ${version![1]} while the target is PostgreSQL 12`);
});

test('table output: a trace line per operation after the report table', () => {
  const f = file('table.sql', 'ALTER TABLE t ADD COLUMN note text;\nCREATE INDEX CONCURRENTLY t_note ON t (note);\n');
  const r = spawnSync(process.execPath, [CLI, 'validate', '--trace', '--database-url', pg.url(), f], { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp } });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/\n {2}trace: line 1 ADD_COLUMN: ACCESS EXCLUSIVE on t; \d+(\.\d+)? ms\n/);
  expect(r.stdout).toMatch(/\n {2}trace: line 2 CREATE_INDEX_CONCURRENTLY: locks not seen \(outside a transaction block\); created index t_note; \d+(\.\d+)? ms\n/);
});

/**
 * `pgflip validate` as a user runs it: the built CLI, exit codes 0/1/2, JSON shape, text table.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'pgflip-validate-'));
const file = (name: string, sql: string) => { const p = path.join(dir, name); writeFileSync(p, sql); return p; };

function pgflip(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'validate', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const safe = file('001_add_column.sql', '-- add a column\nALTER TABLE users ADD COLUMN nickname text;\n');
const risky = file('002_drop_unused_table.sql', 'DROP TABLE legacy_sessions;\n');
const broken = file('003_broken.sql', 'CREATE TABLE ok (id int);\nALTER TABLE users ADD COLUMN;\n');

test('one valid file: exit 0 and one JSON object in the contract shape', () => {
  const r = pgflip('--json', risky);
  expect(r.code).toBe(0);
  const report = JSON.parse(r.stdout);
  expect(report).toMatchObject({
    file: risky, isValid: true, classification: 'risky', riskLevel: 'HIGH', pgVersion: 15, errors: [],
    operations: [{ type: 'DROP_TABLE', statement: 'DROP TABLE legacy_sessions', riskLevel: 'HIGH', classification: 'risky', table: 'legacy_sessions', lock: 'ACCESS EXCLUSIVE', rewrite: false, line: 1, reason: 'destructive: breaks the running application' }],
    mapping: { tables: [], newTables: [], droppedTables: ['public.legacy_sessions'] },
  });
  expect(Array.isArray(report.warnings)).toBe(true);
});

test('several files: an array; one invalid file makes the exit code 1', () => {
  const r = pgflip('--json', safe, broken);
  expect(r.code).toBe(1);
  const reports = JSON.parse(r.stdout);
  expect(reports.map((x: { file: string; isValid: boolean }) => [x.file, x.isValid])).toEqual([[safe, true], [broken, false]]);
  expect(reports[1].errors).toEqual(['line 2, column 29: syntax error at or near ";" (SQLSTATE 42601)']);
});

test('--pg-version decides what is too new', () => {
  const merge = file('004_merge.sql', 'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE;');
  expect(pgflip('--json', '--pg-version', '14', merge).code).toBe(1);
  expect(JSON.parse(pgflip('--json', '--pg-version', '14', merge).stdout).errors[0]).toMatch(/MERGE needs PostgreSQL 15/);
  expect(pgflip('--json', '--pg-version', '15', merge).code).toBe(0);
});

test('an unreadable file is an invalid report, exit 1', () => {
  const r = pgflip('--json', path.join(dir, 'missing.sql'));
  expect(r.code).toBe(1);
  expect(JSON.parse(r.stdout)).toMatchObject({ isValid: false, errors: [expect.stringMatching(/cannot read .*missing\.sql: no such file/)] });
});

test.each([
  [['--json']],
  [['--pg-version', '99', safe]],
  [['--pg-version', 'abc', safe]],
  [['--bogus', safe]],
])('usage errors exit 2: %j', (args) => {
  const r = pgflip(...args);
  expect(r.code).toBe(2);
  expect(r.stderr).not.toBe('');
});

test('without --json: a readable table per file', () => {
  const r = pgflip(safe, risky);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`${safe}: valid, safe (LOW), PostgreSQL 15`);
  expect(r.stdout).toMatch(/LINE\s+OPERATION\s+CLASS\s+RISK\s+LOCK\s+TABLE\s+REASON/);
  expect(r.stdout).toMatch(/1\s+DROP_TABLE\s+risky\s+HIGH\s+ACCESS EXCLUSIVE\s+legacy_sessions\s+destructive/);
});

test('empty and comment-only files are valid and safe', () => {
  const r = pgflip('--json', file('empty.sql', ''), file('comments.sql', '-- nothing yet\n'));
  expect(r.code).toBe(0);
  for (const rep of JSON.parse(r.stdout)) expect(rep).toMatchObject({ isValid: true, classification: 'safe', operations: [] });
});

test('npm run test:migrations validates and traces every file of the repository\'s migrations/', () => {
  const r = spawnSync('npm', ['run', '--silent', 'test:migrations'], { cwd: ROOT, encoding: 'utf8' });
  expect(r.status).toBe(0);
  const files = readdirSync(path.join(ROOT, 'migrations')).filter((f) => f.endsWith('.sql'));
  expect(files.length).toBeGreaterThan(0);
  for (const f of files) expect(r.stdout).toMatch(new RegExp(`^migrations/${f.replace('.', '\\.')}: valid, (safe|risky|maintenance)`, 'm'));
  expect(r.stdout).toMatch(/trace: /); // run on a real server, in order
}, 60_000);

test('--format github: an annotation on the file and line of each finding, escaped as workflow commands', () => {
  const r = pgflip('--format', 'github', risky, broken);
  expect(r.code).toBe(1);
  const lines = r.stdout.trim().split('\n');
  expect(lines).toContain(`::warning file=${risky.replace(/:/g, '%3A')},line=1,title=pgflip%3A risky DROP_TABLE::DROP_TABLE on legacy_sessions is risky (HIGH, ACCESS EXCLUSIVE lock): destructive: breaks the running application. Safer: stop using the table in the application first, then drop it in a later migration`);
  expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^::error file=${broken.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')},line=2,col=\\d+,title=pgflip%3A invalid SQL::syntax error at or near ";" \\(SQLSTATE 42601\\)$`)));
  expect(lines.filter((l) => l.startsWith('::notice ')).map((l) => l.replace(/^.*::/, ''))).toEqual([`${risky}: valid, risky (HIGH), PostgreSQL 15`, `${broken}: invalid, risky (MEDIUM), PostgreSQL 15`]);
  for (const l of lines) expect(l).toMatch(/^::(error|warning|notice) file=[^,]+(,line=\d+)?(,col=\d+)?,title=[^:]+::\S/);
  expect(pgflip('--format', 'github', safe).code).toBe(0);
  expect(pgflip('--format', 'xml', safe)).toMatchObject({ code: 2, stderr: expect.stringMatching(/Allowed choices are table, json, github, sarif/) });
  expect(pgflip('--json', '--format', 'sarif', safe)).toMatchObject({ code: 2, stderr: expect.stringMatching(/--json and --format sarif ask for two formats/) });
});

test('--format sarif: a SARIF 2.1.0 log, one result per finding with its region', () => {
  const r = pgflip('--format', 'sarif', risky, broken);
  expect(r.code).toBe(1);
  const log = JSON.parse(r.stdout);
  expect(log).toMatchObject({ version: '2.1.0', runs: [{ tool: { driver: { name: 'pgflip' } } }] });
  const results = log.runs[0].results as Array<{ ruleId: string; level: string; locations: Array<{ physicalLocation: { artifactLocation: { uri: string }; region?: { startLine: number; startColumn?: number } } }> }>;
  expect(results.find((x) => x.ruleId === 'DROP_TABLE')).toMatchObject({ level: 'warning', locations: [{ physicalLocation: { artifactLocation: { uri: risky }, region: { startLine: 1 } } }] });
  expect(results.find((x) => x.ruleId === 'invalid-sql')).toMatchObject({ level: 'error', locations: [{ physicalLocation: { artifactLocation: { uri: broken }, region: { startLine: 2, startColumn: expect.any(Number) } } }] });
  const ruleIds = (log.runs[0].tool.driver.rules as Array<{ id: string }>).map((x) => x.id);
  for (const x of results) expect(ruleIds).toContain(x.ruleId);
});

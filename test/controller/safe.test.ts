/**
 * Safe migrations end to end as a user runs them: execute-migration.sh → the
 * pgflip CLI → the controller API → the active side, with the state in a real
 * Redis. Ledger, refusals, dry run, invalid SQL, statement mode, lock-timeout
 * retries, abort, rollback points and the audit log.
 */
import { copyFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { api, cli, Env, ROOT, runCmd, schemaDump, script, startEnv, waitFor } from './helpers';

let env: Env;
beforeAll(async () => { env = await startEnv({ redis: true }); });
afterAll(async () => { await env?.stop(); });

const example = (name: string): string => {
  const f = path.join(env.dir, name);
  copyFileSync(path.join(ROOT, 'migrations', name), f);
  return f;
};
const columns = async (side: 'blue' | 'green', table: string): Promise<string[]> =>
  (await env[side].query<{ c: string }>(`SELECT column_name AS c FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, [table])).map((r) => r.c);
const ledger = async () => (await env.blue.query<{ name: string; class: string; side: string }>(
  `SELECT name, class, side FROM pgflip.migrations ORDER BY finished_at`));
const backups = (): string[] => { try { return readdirSync(env.cfg.controller.backupDir).sort(); } catch { return []; } };

test('safe files apply on the active side, in order, with a rollback point each and a ledger row; no flip', async () => {
  const r = await script('execute-migration.sh', ['--type', 'safe', example('000_example_schema.sql'), example('001_add_nullable_column.sql')], env.env);
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/000_example_schema\.sql: completed — applied on blue \(active\)/);
  expect(r.stdout).toMatch(/001_add_nullable_column\.sql: completed/);
  expect(await columns('blue', 'users')).toEqual(['id', 'name', 'email', 'created_at', 'nickname']);
  expect(await columns('green', 'users')).toEqual([]);
  expect(await ledger()).toEqual([
    { name: '000_example_schema.sql', class: 'safe', side: 'blue' },
    { name: '001_add_nullable_column.sql', class: 'safe', side: 'blue' },
  ]);
  expect(backups().filter((f) => /^rollback-.+-\d{8}T\d{9}Z\.sql$/.test(f))).toHaveLength(2);
  const status = await cli(['status', '--json'], env.env);
  expect(JSON.parse(status.stdout)).toMatchObject({ active: 'blue', epoch: 0, migration: null });
  // steps with timings, progress 1
  const [last] = (await api(env, 'GET', '/migrations?limit=1')).body;
  expect(last).toMatchObject({ name: '001_add_nullable_column.sql', state: 'completed', progress: 1, side: 'blue', type: 'safe', classification: 'safe' });
  expect(last.steps.map((s: { name: string; state: string }) => `${s.name}:${s.state}`)).toEqual(['validate:done', 'rollback point:done', 'apply:done', 'ledger:done']);
  expect(last.steps.every((s: { durationMs: number }) => s.durationMs >= 0)).toBe(true);
  // the CLI's calls are audited as such
  expect(env.auditLines().filter((l) => l.action === 'migration.submit' && l.via === 'cli')).toHaveLength(2);
  expect(env.auditLines().filter((l) => l.action === 'migration.finished' && l.outcome === 'completed').length).toBeGreaterThanOrEqual(2);
});

test('the same file again is skipped; a changed file under an applied name is refused', async () => {
  const again = await script('execute-migration.sh', ['--type', 'safe', example('001_add_nullable_column.sql')], env.env);
  expect(again.code).toBe(0);
  expect(again.stdout).toMatch(/001_add_nullable_column\.sql: completed — skipped: 001_add_nullable_column\.sql was already applied on blue/);
  const changed = env.migration('001_add_nullable_column.sql', 'ALTER TABLE users ADD COLUMN nickname2 text;\n');
  const r = await script('execute-migration.sh', ['--type', 'safe', changed], env.env);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/001_add_nullable_column\.sql: failed — refused: .*applied .* with checksum .* this file has .*a changed migration needs a new name/);
  expect(await columns('blue', 'users')).not.toContain('nickname2');
});

test('a risky file run as safe is refused with the reason and never runs', async () => {
  await env.blue.query(`INSERT INTO legacy_sessions (user_id, token) VALUES (1, 'a')`);
  const before = backups();
  const r = await script('execute-migration.sh', ['--type', 'safe', example('002_drop_unused_table.sql')], env.env);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/002_drop_unused_table\.sql: failed — refused: 002_drop_unused_table\.sql is risky, more than --type safe allows \(line 4: DROP_TABLE — destructive/);
  expect(await env.blue.query(`SELECT count(*)::int AS n FROM legacy_sessions`)).toEqual([{ n: 1 }]);
  expect(backups()).toEqual(before);
});

test('--dry-run changes nothing and prints the plan', async () => {
  const f = env.migration('010_dry.sql', 'ALTER TABLE users ADD COLUMN dry text;\nCREATE TABLE dry_new (id int PRIMARY KEY);\n');
  const schemaBefore = await schemaDump(env.blue);
  const ledgerBefore = await ledger();
  const before = backups();
  const r = await script('execute-migration.sh', ['--type', 'safe', '--dry-run', f], env.env);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/010_dry\.sql: completed — dry run: 010_dry\.sql is safe; nothing changed/);
  expect(r.stdout).toMatch(/1\. rollback point: plain SQL dump of blue/);
  expect(r.stdout).toMatch(/apply 2 statement\(s\) on blue \(active\) in one transaction, lock_timeout 200ms/);
  expect(await schemaDump(env.blue)).toBe(schemaBefore);
  expect(await ledger()).toEqual(ledgerBefore);
  expect(backups()).toEqual(before);
});

test('invalid SQL: a clear error with line and column, nothing applied', async () => {
  const f = env.migration('011_broken.sql', 'CREATE TABLE broken_first (id int);\nALTER TABLE users ADD COLUMN ;\n');
  const r = await script('execute-migration.sh', ['--type', 'safe', f], env.env);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/011_broken\.sql: failed — invalid SQL: 011_broken\.sql:2:\d+: syntax error at or near ";"; nothing applied/);
  expect(await env.blue.query(`SELECT to_regclass('broken_first') AS t`)).toEqual([{ t: null }]);
  expect((await ledger()).map((l) => l.name)).not.toContain('011_broken.sql');
});

test('a runtime failure rolls the file back and names the statement', async () => {
  const f = env.migration('012_fails.sql', "CREATE TABLE fails_first (id int);\nALTER TABLE users ADD CONSTRAINT email_is_short CHECK (length(email) < 0) NOT VALID;\nSELECT 1/0;\n");
  const r = await script('execute-migration.sh', ['--type', 'safe', '--no-rollback', f], env.env);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/statement 3 \(line 3: SELECT 1\/0\) failed: division by zero \[SQLSTATE 22012\]; nothing applied \(the transaction was rolled back\)/);
  expect(await env.blue.query(`SELECT to_regclass('fails_first') AS t`)).toEqual([{ t: null }]);
});

test('statement by statement: CONCURRENTLY runs outside a transaction; a failure says which statements ran', async () => {
  const ok = await script('execute-migration.sh', ['--type', 'safe', '--no-rollback', example('004_index_email_concurrently.sql')], env.env);
  expect(ok.code).toBe(0);
  expect(await env.blue.query(`SELECT indisvalid AS v FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass`)).toEqual([{ v: true }]);
  await env.blue.query(`CREATE TABLE dups (a int); INSERT INTO dups VALUES (1), (1)`);
  const f = env.migration('013_partial.sql', 'CREATE TABLE partial_first (id int);\nCREATE UNIQUE INDEX CONCURRENTLY dups_a_key ON dups (a);\nCREATE TABLE partial_third (id int);\n');
  const r = await script('execute-migration.sh', ['--type', 'safe', '--no-rollback', f], env.env);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/statement 2 \(line 2: CREATE UNIQUE INDEX CONCURRENTLY dups_a_key ON dups \(a\)\) failed: could not create unique index "dups_a_key" \[SQLSTATE 23505\].*; statements 1-1 of 3 ran and are committed, 2-3 did not run/);
  expect(await env.blue.query(`SELECT to_regclass('partial_first')::text AS a, to_regclass('partial_third')::text AS c`)).toEqual([{ a: 'partial_first', c: null }]);
  const [rec] = (await api(env, 'GET', '/migrations?limit=1')).body;
  expect(rec.statements).toEqual({ total: 3, committed: 1, mode: 'statements' });
});

test('a lock timeout is retried; one migration at a time; abort while blocked leaves nothing applied', async () => {
  // a reader holds users until the ALTER timed out (200 ms) once; a retry then succeeds
  const holder = await env.blue.connect();
  await holder.query('BEGIN; LOCK users IN ACCESS SHARE MODE');
  const f = env.migration('014_retry.sql', 'ALTER TABLE users ADD COLUMN retried text;\n');
  const run = script('execute-migration.sh', ['--type', 'safe', '--no-rollback', f], env.env);
  for (let i = 0; ; i++) {
    const [rec] = (await api(env, 'GET', '/migrations?limit=1')).body;
    if (rec?.name === '014_retry.sql' && rec.warnings.some((w: string) => /lock timeout/.test(w))) break;
    if (i > 300) throw new Error('no lock timeout seen');
    await new Promise((r) => setTimeout(r, 50));
  }
  await holder.query('COMMIT');
  const r = await run;
  expect(r.stderr).toMatch(/014_retry.sql: apply done/);
  expect(r.code).toBe(0);
  expect(r.stderr).toMatch(/warning: lock timeout on statement 1 \(line 1\), retry 1 of 3/);
  expect(await columns('blue', 'users')).toContain('retried');

  // never released: one migration at a time, then abort → nothing applied
  await holder.query('BEGIN; LOCK users IN ACCESS SHARE MODE');
  const sub = await api(env, 'POST', '/migrations', { sql: 'ALTER TABLE users ADD COLUMN blocked text;', name: '015_blocked.sql', type: 'safe', noRollback: true });
  expect(sub.status).toBe(202);
  await new Promise((r) => setTimeout(r, 300));
  const second = await api(env, 'POST', '/migrations', { sql: 'SELECT 1;', name: 'x.sql', type: 'safe' });
  expect(second.status).toBe(409);
  expect(second.body.error).toMatch(new RegExp(`migration ${sub.body.id} is running; one migration at a time`));
  expect((await api(env, 'GET', '/status')).body.migration).toMatchObject({ id: sub.body.id, state: 'running' });
  const ab = await api(env, 'POST', `/migrations/${sub.body.id}/abort`, {});
  expect(ab.status).toBe(202);
  const rec = await waitFor(env, sub.body.id);
  expect(rec.state).toBe('aborted');
  // --timeout is the health-check window after a risky switch, not a budget: a safe migration
  // still blocked is bounded by lock_timeout and its retries, nothing applied
  const timed = await script('execute-migration.sh', ['--type', 'safe', '--no-rollback', '--timeout', '1', env.migration('015_timeout.sql', 'ALTER TABLE users ADD COLUMN timed text;\n')], env.env);
  expect(timed.code).toBe(1);
  expect(timed.stderr).toMatch(/015_timeout\.sql: failed — .* failed after 4 attempts: .*lock timeout.*; nothing applied/);
  expect(timed.stderr).toMatch(/warning: --timeout 1: the health-check window after a risky migration's switch; a safe migration has no switch, so it is not used/);
  await holder.query('COMMIT');
  expect(await columns('blue', 'users')).not.toContain('blocked');
  expect(await columns('blue', 'users')).not.toContain('timed');
  expect(env.auditLines().find((l) => l.action === 'migration.abort')).toMatchObject({ target: sub.body.id, outcome: 'abort requested' });
});

test('rollback points: listed, and restored through the CLI after confirmation', async () => {
  const f = env.migration('016_drop_col.sql', 'ALTER TABLE users ADD COLUMN before_restore text;\n');
  expect((await script('execute-migration.sh', ['--type', 'safe', f], env.env)).code).toBe(0);
  expect(await columns('blue', 'users')).toContain('before_restore');
  await env.blue.query(`INSERT INTO users (name, email) VALUES ('ann', 'Ann@Example.com')`);
  const list = await cli(['rollback', 'list', '--json'], env.env);
  const points = JSON.parse(list.stdout);
  const [rec] = (await api(env, 'GET', '/migrations?limit=1')).body;
  expect(points[0]).toMatchObject({ id: rec.rollbackPoint, migrationId: rec.id, side: 'blue', database: 'app' });
  // without a terminal, restore needs --yes
  const refused = await cli(['rollback', 'restore', rec.rollbackPoint], env.env);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/pass --yes when stdin is not a terminal/);
  const restored = await cli(['rollback', 'restore', rec.rollbackPoint, '--yes'], env.env);
  expect(restored.stderr).toBe('');
  expect(restored.stdout).toBe(`restored ${rec.rollbackPoint} to blue\n`);
  expect(await columns('blue', 'users')).not.toContain('before_restore');
  expect(await env.blue.query(`SELECT count(*)::int AS n FROM users`)).toEqual([{ n: 0 }]);
  expect((await ledger()).map((l) => l.name)).not.toContain('016_drop_col.sql');
  expect(env.auditLines().find((l) => l.action === 'rollback.restore' && String(l.outcome).startsWith('restored'))).toMatchObject({ target: rec.rollbackPoint, via: 'cli' });
});

test('on a terminal the CLI rewrites one progress line in place; in a pipe it prints plain lines', async () => {
  const file = env.migration('090_tty_progress.sql', 'CREATE TABLE tty_progress (id int PRIMARY KEY);');
  const cmd = `node ${path.join(ROOT, 'dist/cli/main.js')} migrate --type safe ${file}`;
  // script(1) gives the command a pseudo-terminal, as an operator's shell would
  const tty = await runCmd('script', ['-qec', cmd, '/dev/null'], env.env);
  expect(tty.code).toBe(0);
  expect(tty.stdout).toContain('\r\x1b[2K');
  expect(tty.stdout).toMatch(/090_tty_progress\.sql: completed/);
  const file2 = env.migration('091_plain_progress.sql', 'CREATE TABLE plain_progress (id int PRIMARY KEY);');
  const plain = await cli(['migrate', '--type', 'safe', file2], env.env);
  expect(plain.code).toBe(0);
  expect(plain.stderr).not.toContain('\x1b[');
  expect(plain.stderr).toMatch(/^091_plain_progress\.sql: apply done/m);
});

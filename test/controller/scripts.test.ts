/**
 * The operator scripts as an operator runs them: health, switch, status and
 * the latency baseline, through the CLI and the API.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../src/pgcluster/local-cluster';
import { cli, Env, ROOT, script, startEnv } from './helpers';

let env: Env;
beforeAll(async () => { env = await startEnv(); });
afterAll(async () => { await env?.stop(); });

test('check-migration-health.sh: one line per component; 0 healthy, 1 degraded, 2 unreachable', async () => {
  const ok = await script('check-migration-health.sh', [], env.env);
  expect(ok.code).toBe(0);
  const lines = ok.stdout.trim().split('\n');
  expect(lines[0]).toBe('controller: up (leader)');
  expect(lines[1]).toBe('proxies: none registered');
  expect(lines[2]).toMatch(/^blue: up \(active\) \d+ ms$/);
  expect(lines[3]).toMatch(/^green: up \d+ ms$/);
  expect(lines[4]).toBe('status: ok');
  await env.green.kill();
  try {
    const degraded = await script('check-migration-health.sh', [], env.env);
    expect(degraded.code).toBe(1);
    expect(degraded.stdout).toMatch(/^green: DOWN — .*ECONNREFUSED/m);
    expect(degraded.stdout).toMatch(/^status: degraded$/m);
  } finally {
    await env.green.restart();
    env.cfg.green.url = env.green.url();
    await env.restart();
  }
  const closed = await freePort();
  const gone = await script('check-migration-health.sh', [], { ...env.env, PGFLIP_CONTROLLER_URL: `http://127.0.0.1:${closed}` });
  expect(gone.code).toBe(2);
  expect(gone.stdout).toBe(`controller: UNREACHABLE — cannot reach the controller at http://127.0.0.1:${closed} (ECONNREFUSED); set PGFLIP_CONTROLLER_URL\n`);
});

test('proxy-switch.sh: status, a manual flip each way, usage errors', async () => {
  const st = await script('proxy-switch.sh', ['status'], env.env);
  expect(st.code).toBe(0);
  expect(st.stdout).toMatch(/^active: blue \(epoch 0\)$/m);
  const green = await script('proxy-switch.sh', ['green'], env.env);
  expect(green.stderr).toBe('');
  expect(green.stdout).toMatch(/^active: green \(epoch 1/);
  expect((await cli(['status', '--json'], env.env)).stdout).toMatch(/"active": "green"/);
  expect((await script('proxy-switch.sh', ['green'], env.env)).stdout).toBe('active: green already (epoch 1)\n');
  expect((await script('proxy-switch.sh', ['blue'], env.env)).stdout).toMatch(/^active: blue \(epoch 2/);
  const bad = await script('proxy-switch.sh', ['purple'], env.env);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toBe('usage: proxy-switch.sh blue|green [--force] | status\n');
  const noToken = await script('proxy-switch.sh', ['green'], { ...env.env, PGFLIP_API_TOKEN: '' });
  expect(noToken.code).toBe(1);
  expect(noToken.stderr).toMatch(/HTTP 401: .*Bearer token is required.*\(set PGFLIP_API_TOKEN\)/);
  expect(env.auditLines().filter((l) => l.action === 'switch').map((l) => l.outcome)).toEqual(['switched (epoch 1)', 'already active', 'switched (epoch 2)', 'denied (401)']);
});

test('performance-baseline.sh and migrate usage errors', async () => {
  const none = await script('performance-baseline.sh', [], env.env);
  expect(none.code).toBe(0);
  expect(none.stdout).toBe('baseline: none stored (run with --update while traffic flows)\n');
  const upd = await script('performance-baseline.sh', ['--update'], env.env);
  expect(upd.code).toBe(1);
  expect(upd.stderr).toMatch(/HTTP 409: no proxy admin URL known/);
  expect((await script('performance-baseline.sh', ['--bogus'], env.env)).code).toBe(2);
  const noType = await script('execute-migration.sh', ['x.sql'], env.env);
  expect(noType.code).toBe(2);
  expect(noType.stderr).toMatch(/required option '--type <class>' not specified \(only --dry-run may leave it out\)/);
  const badType = await script('execute-migration.sh', ['--type', 'fast', 'x.sql'], env.env);
  expect(badType.code).toBe(2);
  expect(badType.stderr).toMatch(/Allowed choices are safe, risky, maintenance/);
  const badTimeout = await script('execute-migration.sh', ['--type', 'safe', '--timeout', 'soon', 'x.sql'], env.env);
  expect(badTimeout.code).toBe(2);
  expect(badTimeout.stderr).toMatch(/--timeout takes whole seconds >= 1, got "soon"/);
  const missing = await script('execute-migration.sh', ['--type', 'safe', '/nonexistent/x.sql'], env.env);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toBe('pgflip: /nonexistent/x.sql: cannot read (ENOENT)\n');
});

test('execute-migration.sh --dry-run without --type: each file planned as classified; an applied one skipped; only an invalid file fails', async () => {
  const dir = path.join(ROOT, 'migrations');
  const files = readdirSync(dir).filter((f) => f.endsWith('.sql')).sort().map((f) => path.join(dir, f));
  // as deployed: the example schema is applied, the later files are pending
  expect((await script('execute-migration.sh', ['--type', 'safe', files[0]], env.env)).code).toBe(0);
  const tables = () => env.blue.query("SELECT string_agg(relname || ':' || relnatts, ',' ORDER BY relname) AS t FROM pg_class WHERE relnamespace = 'public'::regnamespace");
  const before = await tables();
  const ok = await script('execute-migration.sh', ['--dry-run', ...files], env.env);
  expect(ok.stderr).not.toMatch(/error/);
  expect(ok.code).toBe(0);
  expect(ok.stdout).toMatch(new RegExp(`^${files[0]}: skipped: 000_example_schema.sql was already applied on blue`, 'm'));
  // one report per pending file: its class, the strategy, and a numbered plan
  expect(ok.stdout).toContain(`${path.join(dir, '001_add_nullable_column.sql')}: safe — runs on the live side`);
  expect(ok.stdout).toContain(`${path.join(dir, '002_drop_unused_table.sql')}: risky — applied to the idle side, synced, then flipped`);
  expect(ok.stdout.match(/^ {2}1\. /gm)).toHaveLength(files.length - 1);
  expect(ok.stdout).toContain(`${files.length} of ${files.length} files planned\n`);
  expect(await tables()).toEqual(before); // nothing changed

  const bad = env.migration('bad.sql', 'CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN;\n');
  const mixed = await script('execute-migration.sh', ['--dry-run', bad, files[1]], env.env);
  expect(mixed.code).toBe(1);
  expect(mixed.stderr).toMatch(new RegExp(`^${bad}: invalid SQL: bad\\.sql:2:\\d+: syntax error at or near ";"; nothing applied`, 'm'));
  // the invalid file does not stop the next one
  expect(mixed.stdout).toContain(`${files[1]}: safe — runs on the live side`);
  expect(mixed.stdout).toContain('1 of 2 files planned; 1 failed\n');
});

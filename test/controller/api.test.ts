/**
 * The controller's HTTP API: auth on every mutating call, request validation
 * naming the field, /openapi.json matching the routes served, /metrics,
 * /health, /status, and the audit log.
 */
import { api, Env, startEnv, TOKEN } from './helpers';
import { ROUTE_LIST } from '../../src/controller/api';
import { tokenFingerprint } from '../../src/controller/auth';

let env: Env;
beforeAll(async () => { env = await startEnv(); });
afterAll(async () => { await env?.stop(); });

const MUTATING: Array<[string, unknown]> = [
  ['/migrations/validate', { sql: 'SELECT 1' }],
  ['/migrations', { sql: 'SELECT 1', type: 'safe' }],
  ['/migrations/nope/abort', {}],
  ['/switch', { target: 'green' }],
  ['/rollback-points/nope/restore', { confirm: true }],
  ['/baseline', {}],
];

test('every mutating call: 401 without a token, 403 with a wrong one, and both are audited', async () => {
  for (const [p, body] of MUTATING) {
    const none = await api(env, 'POST', p, body, null);
    expect([p, none.status]).toEqual([p, 401]);
    expect(none.body.error).toMatch(/Bearer token is required/);
    const wrong = await api(env, 'POST', p, body, 'wrong-token-wrong-token');
    expect([p, wrong.status]).toEqual([p, 403]);
  }
  // a token of the right length but one character off is still refused
  expect((await api(env, 'POST', '/switch', { target: 'green' }, TOKEN.slice(0, -1) + 'x')).status).toBe(403);
  const denied = env.auditLines().filter((l) => String(l.outcome).startsWith('denied'));
  expect(denied.length).toBeGreaterThanOrEqual(MUTATING.length * 2);
  expect(denied.map((l) => l.outcome)).toEqual(expect.arrayContaining(['denied (401)', 'denied (403)']));
  // the active side did not move
  expect((await api(env, 'GET', '/status')).body.active).toBe('blue');
});

test('bad bodies get a 400 naming the field', async () => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['/migrations', { sql: 'SELECT 1' }, 'type', /is required/],
    ['/migrations', { sql: 'SELECT 1', type: 'fast' }, 'type', /one of safe, risky, maintenance/],
    ['/migrations', { type: 'safe' }, 'sql or file', /one of them is required/],
    ['/migrations', { sql: 'SELECT 1', file: 'x.sql', type: 'safe' }, 'sql or file', /only one/],
    ['/migrations', { sql: 'SELECT 1', type: 'safe', timeoutSeconds: 'soon' }, 'timeoutSeconds', /integer/],
    ['/migrations', { sql: 'SELECT 1', type: 'safe', switchDelaySeconds: -1 }, 'switchDelaySeconds', />= 0/],
    ['/migrations', { sql: 'SELECT 1', type: 'safe', dryRun: 'yes' }, 'dryRun', /boolean/],
    ['/migrations', { sql: 'SELECT 1', type: 'safe', colour: 'red' }, 'colour', /unknown field/],
    ['/migrations', { file: '/nonexistent/x.sql', type: 'safe' }, 'file', /cannot read .*ENOENT/],
    ['/switch', { target: 'purple' }, 'target', /blue, green/],
    ['/switch', {}, 'target', /is required/],
    ['/rollback-points/x/restore', {}, 'confirm', /is required/],
    ['/migrations/validate', {}, 'sql or file', /required/],
  ];
  for (const [p, body, field, msg] of cases) {
    const r = await api(env, 'POST', p, body);
    expect([p, field, r.status]).toEqual([p, field, 400]);
    expect(r.body.field).toBe(field);
    expect(r.body.error).toMatch(msg);
  }
  const broken = await api(env, 'POST', '/migrations', '{"type": ');
  expect(broken.status).toBe(400);
  expect(broken.body).toEqual({ error: 'body: invalid JSON', field: 'body' });
});

test('/openapi.json describes every route the server answers, with auth on the mutating ones', async () => {
  const r = await api(env, 'GET', '/openapi.json');
  expect(r.status).toBe(200);
  const doc = r.body;
  const described = Object.entries(doc.paths as Record<string, Record<string, { security?: unknown }>>)
    .flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`));
  expect(described.sort()).toEqual([...ROUTE_LIST].sort());
  // the contract routes (docs/controller.md) are all there
  for (const route of ['GET /health', 'GET /status', 'POST /migrations/validate', 'POST /migrations', 'GET /migrations/:id', 'GET /migrations',
    'POST /migrations/:id/abort', 'POST /switch', 'GET /rollback-points', 'POST /rollback-points/:id/restore', 'GET /metrics', 'GET /openapi.json']) {
    expect(described).toContain(route);
  }
  for (const route of described.filter((d) => d.startsWith('POST'))) {
    const [m, p] = route.split(' ');
    expect([route, doc.paths[p.replace(/:(\w+)/g, '{$1}')][m.toLowerCase()].security]).toEqual([route, [{ bearer: [] }]]);
  }
  // and the served routes are exactly those: an undocumented path is a 404
  expect((await api(env, 'GET', '/nowhere')).status).toBe(404);
});

test('/metrics, /health and /status', async () => {
  const m = await api(env, 'GET', '/metrics');
  expect(m.status).toBe(200);
  for (const name of ['migration_progress', 'migration_duration_seconds', 'migration_errors_total']) expect(m.body).toContain(`# TYPE ${name}`);
  const h = await api(env, 'GET', '/health');
  expect(h.body.status).toBe('ok');
  expect(h.body.components.blue).toMatchObject({ up: true, active: true });
  expect(h.body.components.green).toMatchObject({ up: true, active: false });
  const s = await api(env, 'GET', '/status');
  expect(s.body).toMatchObject({ active: 'blue', epoch: 0, health: 'ok', migration: null });
  expect(s.body.sides.blue.url).not.toContain('postgres:postgres@'); // password redacted
});

test('validate returns the classifier report; submit is audited with the token fingerprint', async () => {
  const v = await api(env, 'POST', '/migrations/validate', { sql: 'DROP TABLE legacy_sessions;', name: '002.sql' });
  expect(v.status).toBe(200);
  expect(v.body).toMatchObject({ isValid: false, classification: 'risky' }); // the table does not exist on blue
  expect(v.body.errors.join(' ')).toMatch(/legacy_sessions/);
  const sub = await api(env, 'POST', '/migrations', { sql: 'CREATE TABLE audit_probe (id int PRIMARY KEY);', name: 'audit_probe.sql', type: 'safe', noRollback: true });
  expect(sub.status).toBe(202);
  const lines = env.auditLines();
  const entry = lines.find((l) => l.action === 'migration.submit' && l.target === sub.body.id);
  expect(entry).toMatchObject({ who: tokenFingerprint(TOKEN), via: 'http', outcome: 'accepted' });
  expect(typeof entry!.at).toBe('string');
  expect(JSON.stringify(lines)).not.toContain(TOKEN);
});

test('GET /: the status page for a browser, JSON for any other client; other routes answer JSON whatever the Accept', async () => {
  const page = await fetch(`${env.ctl.url}/`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  expect(page.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
  const html = await page.text();
  expect(html).toContain('<title>pgflip status</title>');
  expect(html).not.toContain(TOKEN);
  const index = await api(env, 'GET', '/');
  expect(index.status).toBe(200);
  expect(index.body.routes).toEqual(expect.arrayContaining(['GET /status', 'GET /overview', 'GET /events']));
  const status = await fetch(`${env.ctl.url}/status`, { headers: { accept: 'text/html' } });
  expect(status.headers.get('content-type')).toMatch(/^application\/json/);
  expect(((await status.json()) as { active: string }).active).toBe('blue');
  const o = await api(env, 'GET', '/overview');
  expect(o.body.pair).toMatchObject({ active: 'blue', epoch: 0 });
  expect(o.body.sides.blue).toMatchObject({ up: true, active: true });
  expect(JSON.stringify(o.body)).not.toContain(TOKEN);
});

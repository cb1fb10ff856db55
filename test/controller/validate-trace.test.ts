/**
 * The controller's validate step traces the file (controller.trace, docs/controller.md): on a
 * throwaway cluster holding the active side's schema, before anything touches the live side.
 * What PostgreSQL rejects there fails the migration with its SQLSTATE and nothing applied; a
 * trace that cannot run is a warning (auto) or a failure (on).
 */
import { api, Env, startEnv, waitFor } from './helpers';

let env: Env;
beforeAll(async () => {
  env = await startEnv({ controller: { trace: 'auto' } });
  await env.blue.query('CREATE TABLE users (id bigint PRIMARY KEY, email text); INSERT INTO users SELECT g, \'u\' || g FROM generate_series(1, 100) g;');
});
afterAll(async () => { await env?.stop(); });

const migrate = async (name: string, sql: string, type = 'safe') => {
  const r = await api(env, 'POST', '/migrations', { name, sql, type });
  expect(r.status).toBe(202);
  return waitFor(env, r.body.id, 120_000);
};
const constraints = async () => (await env.blue.query<{ conname: string }>("SELECT conname FROM pg_constraint WHERE conrelid = 'users'::regclass ORDER BY 1")).map((r) => r.conname);

test('a file the static checks accept but PostgreSQL rejects fails at validate, with the SQLSTATE, and nothing is applied', async () => {
  // the CHECK names a column that does not exist: only the server finds out
  const m = await migrate('010_bad_check.sql', 'ALTER TABLE users ADD CONSTRAINT email_len CHECK (length(mail) < 300) NOT VALID;\n');
  expect(m.state).toBe('failed');
  expect(m.steps.map((s: { name: string; state: string }) => `${s.name}:${s.state}`)).toEqual(['validate:failed']);
  expect(m.errors.join('\n')).toMatch(/line 1, column \d+: .*column "mail" does not exist.*SQLSTATE 42703/);
  expect(await constraints()).toEqual(['users_pkey']);
});

test('a good file is traced, says so in its validate step, and applies', async () => {
  const m = await migrate('011_good_check.sql', 'ALTER TABLE users ADD CONSTRAINT email_len CHECK (length(email) < 300) NOT VALID;\n');
  expect(m.state).toBe('completed');
  expect(m.steps[0].detail).toMatch(/^safe \(LOW\), 1 statement\(s\), .*; traced on a throwaway cluster in \d+\.\d s$/);
  expect(await constraints()).toEqual(['email_len', 'users_pkey']);
});

test('a trace that cannot run: a warning with auto, a failure with on — and then nothing is applied', async () => {
  const saved = process.env.PGFLIP_PG_BIN;
  process.env.PGFLIP_PG_BIN = '/nonexistent/pgflip-bin';
  try {
    const auto = await migrate('012_auto.sql', 'ALTER TABLE users ADD COLUMN a1 text;\n');
    expect(auto.state).toBe('completed');
    expect(auto.warnings.join('\n')).toMatch(/not traced \(controller\.trace auto\): PGFLIP_PG_BIN=\/nonexistent\/pgflip-bin/);

    env.cfg.controller.trace = 'on'; // read at each validate step
    const on = await migrate('013_on.sql', 'ALTER TABLE users ADD COLUMN a2 text;\n');
    expect(on.state).toBe('failed');
    expect(on.errors.concat(on.message ?? [], on.steps.map((s: { detail?: string }) => s.detail ?? '')).join('\n')).toMatch(/controller\.trace is on, but the trace could not run/);
    const cols = (await env.blue.query<{ c: string }>("SELECT column_name AS c FROM information_schema.columns WHERE table_name = 'users'")).map((r) => r.c);
    expect(cols).toContain('a1');
    expect(cols).not.toContain('a2');
  } finally {
    if (saved === undefined) delete process.env.PGFLIP_PG_BIN; else process.env.PGFLIP_PG_BIN = saved;
    env.cfg.controller.trace = 'auto';
  }
});

test('POST /migrations/validate with trace: true returns the trace per operation; with pgVersion it is refused', async () => {
  const r = await api(env, 'POST', '/migrations/validate', { sql: 'ALTER TABLE users ADD CONSTRAINT u_email UNIQUE (email);', trace: true });
  expect(r.status).toBe(200);
  expect(r.body.operations[0]).toMatchObject({ type: 'ADD_UNIQUE', trace: { locks: [{ lock: 'ACCESS EXCLUSIVE', relation: 'users' }] } });
  const bad = await api(env, 'POST', '/migrations/validate', { sql: 'SELECT 1', trace: true, pgVersion: 150000 });
  expect(bad.status).toBe(400);
  expect(bad.body.error).toMatch(/trace: runs on the active side's schema and version: leave out pgVersion/);
});

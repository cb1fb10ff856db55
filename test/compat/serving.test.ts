/**
 * Both schema versions served through the proxy: the application's old version keeps running
 * across a risky migration that renames, drops and retypes columns it uses, through the
 * compatibility schema on the new side; a session that asks for the new version sees the new
 * schema; `release` moves the default, `finalize` drops the old version. Wired as `pgflip up`
 * is (one proxy, one controller, one shared store).
 */
import { Client } from 'pg';
import { cli } from '../controller/helpers';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { CompatEnv, MIGRATION_SQL, startCompatEnv } from './env';

let e: CompatEnv;
beforeAll(async () => { e = await startCompatEnv(); }, 120_000);
afterAll(async () => { await e?.stop(); });

async function connect(opts: { options?: string } = {}): Promise<Client> {
  const c = new Client({ connectionString: e.proxyUrl(), ...opts });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/**
 * The old application: simple and prepared statements, RETURNING, ON CONFLICT, on the columns
 * the migration renames (notes.t_short), drops (items.legacy) and retypes (items.qty).
 */
function oldApplication(clients: number) {
  const acked: string[] = [];
  const errors: string[] = [];
  let stop = false;
  let turns = 0;
  const runs = Array.from({ length: clients }, async (_, w) => {
    const c = await connect();
    try {
      for (let i = 0; !stop; i++) {
        const tag = `old-${w}-${i}`;
        const note = (err: unknown) => { errors.push(`${(err as { code?: string }).code} ${(err as Error).message} (${e.proxy.activeSide})`); };
        await c.query({ name: 'ins-note', text: 'INSERT INTO notes (t_short, body) VALUES ($1, $2) RETURNING id, t_short', values: [tag, 'x'] })
          .then((r) => { if (r.rows[0]?.t_short !== tag) throw new Error(`RETURNING gave ${JSON.stringify(r.rows[0])}`); acked.push(tag); }).catch(note);
        await c.query(`SELECT id, t_short, body FROM notes WHERE id = ${1 + (i % 500)}`).catch(note);
        await c.query('INSERT INTO notes (id, t_short) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET t_short = EXCLUDED.t_short', [1 + (i % 500), `up-${tag}`]).catch(note);
        await c.query({ name: 'ins-item', text: 'INSERT INTO items (name, legacy, qty) VALUES ($1, $2, $3) RETURNING id, legacy, qty', values: [tag, 'L', i % 1000] })
          .then(() => acked.push(`item:${tag}`)).catch(note);
        await c.query('UPDATE items SET qty = qty + 1 WHERE id = $1', [1 + (i % 500)]).catch(note);
        await c.query('SELECT name, legacy, qty FROM items WHERE id = $1', [1 + (i % 500)]).catch(note);
        turns++;
        await new Promise((r) => setTimeout(r, 3));
      }
    } finally { await c.end().catch(() => undefined); }
  });
  return { acked, errors, turns: () => turns, stop: async () => { stop = true; await Promise.all(runs); } };
}

const metric = async (name: string, labels: string): Promise<number> => {
  const m = (await e.registry.metrics()).split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return m ? Number(m.split(' ').pop()) : NaN;
};

test('a rename, a drop and a type change under the old application through the proxy: 0 errors, every write on the new side; the new version opts in; release and finalize', async () => {
  const app = oldApplication(3);
  // a session that set its own search_path before the flip
  const ownPath = await connect();
  await ownPath.query('SET search_path TO "$user", public');
  let rec: any;
  try {
    await new Promise((r) => setTimeout(r, 500));
    // so does pgflip validate against the database, before anything is submitted
    const file = path.join(e.dir, '060_validate.sql');
    writeFileSync(file, MIGRATION_SQL);
    const v = await cli(['validate', '--json', '--database-url', e.pair.blue.url(), file], e.env);
    expect(JSON.parse(v.stdout)).toMatchObject({ classification: 'risky', oldVersion: expect.arrayContaining([
      expect.stringMatching(/^old application version: public\.notes served as view .* \(automatically updatable\)$/),
      expect.stringMatching(/^old application version: public\.items served as view .* \(INSTEAD OF triggers write the new table\)$/),
    ]) });
    // the dry run tells the author what the old version keeps and what it loses
    const dry = await e.migrate('060_rename_drop_retype.sql', { dryRun: true });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/old application version: public\.notes served as view "pgflip_compat_\w+"\."notes" \(automatically updatable\)/);
    expect(dry.stdout).toMatch(/old application version: public\.items served as view "pgflip_compat_\w+"\."items" \(INSTEAD OF triggers write the new table\)/);
    expect(dry.stdout).toMatch(/legacy: dropped; reads show NULL::text, values written to it are discarded/);
    expect(dry.stdout).toMatch(/INSERT … ON CONFLICT \(…\) \/ ON CONFLICT … DO UPDATE: refused on a view with INSTEAD OF triggers \(42P10\)/);
    const r = await e.migrate('060_rename_drop_retype.sql');
    expect(r.stdout + r.stderr).toMatch(/060_rename_drop_retype\.sql: completed — switched to green; the previous schema version is served from pgflip_compat_/);
    expect(r.code).toBe(0);
    await new Promise((r2) => setTimeout(r2, 500)); // the old application keeps running on green
    rec = (await (await fetch(`${e.ctl.url}/migrations?limit=1`)).json() as any[])[0];
  } finally {
    await app.stop();
  }
  expect(app.errors).toEqual([]);
  expect(app.turns()).toBeGreaterThan(50);
  expect(rec.compat).toMatchObject({ state: 'serving', side: 'green', schema: expect.stringMatching(/^pgflip_compat_/) });
  expect(e.proxy.activeSide).toBe('green');

  // every acknowledged write is on green, under the new names
  const notes = new Set((await e.pair.green.query<{ title: string }>(`SELECT title FROM notes WHERE title LIKE 'old-%'`)).map((x) => x.title));
  const items = new Set((await e.pair.green.query<{ name: string }>(`SELECT name FROM items WHERE name LIKE 'old-%'`)).map((x) => `item:${x.name}`));
  expect(app.acked.filter((t) => !(t.startsWith('item:') ? items : notes).has(t))).toEqual([]);
  expect((await e.pair.green.query(`SELECT data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'items' AND column_name = 'qty'`))).toEqual([{ data_type: 'bigint' }]);

  // its own search_path, replayed on green, comes after the compatibility schema
  expect(Object.keys((await ownPath.query('SELECT * FROM notes LIMIT 1')).rows[0]).sort()).toEqual(['body', 'id', 't_short']);
  // a new session without asking: the old version (the default until release)
  const old = await connect();
  // a search_path the old version sets after the flip keeps the compatibility schema in front
  await old.query('SET search_path TO public');
  expect(Object.keys((await old.query('SELECT * FROM notes LIMIT 1')).rows[0]).sort()).toEqual(['body', 'id', 't_short']);
  // RESET goes back to the session's start, which begins with it too
  await old.query('RESET search_path');
  expect((await old.query('SELECT t_short FROM notes WHERE id = 600')).rows.length).toBeLessThanOrEqual(1);
  expect(Object.keys((await old.query('SELECT * FROM items LIMIT 1')).rows[0]).sort()).toEqual(['id', 'legacy', 'name', 'qty']);
  // the new version asks for it: the new schema
  const fresh = await connect({ options: '-c pgflip.version=latest' });
  expect(Object.keys((await fresh.query('SELECT * FROM notes LIMIT 1')).rows[0]).sort()).toEqual(['body', 'id', 'title']);
  await expect(fresh.query('SELECT t_short FROM notes LIMIT 1')).rejects.toMatchObject({ code: '42703' });
  await new Promise((r) => setTimeout(r, 1100)); // metrics flush
  expect(await metric('pgflip_sessions_by_schema_version', 'version="old"')).toBe(2);
  expect(await metric('pgflip_sessions_by_schema_version', 'version="new"')).toBe(1);
  // /status sums the proxies' reports: a gradual rollout is visible there
  let status: any;
  for (let i = 0; i < 50; i++) {
    status = await (await fetch(`${e.ctl.url}/status`)).json();
    if (status.schemaVersions?.sessions?.new === 1) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(status.schemaVersions).toMatchObject({ migrationId: rec.id, side: 'green', defaultVersion: 'old', sessions: { old: 2, new: 1 } });

  // release: new sessions get the new schema; the one connected keeps the old
  const rel = await cli(['release', rec.id], e.env);
  expect(rel.code).toBe(0);
  for (let i = 0; i < 50; i++) {
    const probe = await connect();
    const cols = Object.keys((await probe.query('SELECT * FROM notes LIMIT 1')).rows[0]);
    await probe.end();
    if (cols.includes('title')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const after = await connect();
  expect(Object.keys((await after.query('SELECT * FROM notes LIMIT 1')).rows[0]).sort()).toEqual(['body', 'id', 'title']);
  expect(Object.keys((await old.query('SELECT * FROM notes LIMIT 1')).rows[0]).sort()).toEqual(['body', 'id', 't_short']);
  // the sessions connected before the release still count as the old version: nothing is dropped under them
  await new Promise((r) => setTimeout(r, 1500));
  expect(await metric('pgflip_sessions_by_schema_version', 'version="old"')).toBe(2);
  expect(await e.pair.green.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname LIKE 'pgflip_compat_%'`)).toEqual([{ n: 1 }]);

  // finalize: the compatibility schema is gone; the old session now sees the new schema
  const fin = await cli(['finalize', rec.id], e.env);
  expect(fin.code).toBe(0);
  expect(await e.pair.green.query(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pgflip_compat_%'`)).toEqual([]);
  expect(Object.keys((await old.query('SELECT * FROM notes LIMIT 1')).rows[0]).sort()).toEqual(['body', 'id', 'title']);
  const done = await (await fetch(`${e.ctl.url}/migrations/${rec.id}`)).json() as any;
  expect(done.compat.state).toBe('dropped');
  await Promise.all([old.end(), fresh.end(), after.end(), ownPath.end()]);
}, 240_000);

/**
 * The README's "Trying it" block on a machine with nothing but Node: the
 * embedded PostgreSQL serves both sides (PGFLIP_PG_BIN) and no PostgreSQL
 * client tool is on the PATH, so the risky flow's schema copy and every
 * rollback point take the Node path. The block's lines are read from README.md
 * and run as written (through bash, cwd = the checkout), only the placeholders
 * substituted: the export line's values (from `pgflip up`) and `<id>` (the
 * newest rollback point, the first line of `rollback list`). `npm ci && npm
 * start` is `pgflip up` started here (npm ci has run; npm start is the build
 * and `node dist/cli/main.js up`).
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { embeddedBinDir } from '../../src/pgcluster/binaries';
import { api, ROOT, runCli, Running, startUp, stopUp, tempDataDir, userEnv } from './helpers';

/** PostgreSQL client and cluster tools a Node-only machine does not have. */
const PG_TOOLS = [
  'psql', 'pg_dump', 'pg_dumpall', 'pg_restore', 'pgbench', 'createdb', 'dropdb', 'createuser', 'dropuser',
  'pg_isready', 'clusterdb', 'reindexdb', 'vacuumdb', 'pg_basebackup', 'pg_receivewal', 'pg_recvlogical',
  'pg_ctlcluster', 'pg_lsclusters', 'pg_createcluster', 'pg_dropcluster', 'pg_upgradecluster', 'pg_conftool',
  'pg_config', 'pg_archivecleanup', 'pg_virtualenv', 'pg_buildext', 'pg_backupcluster', 'pg_restorecluster',
];

const dir = tempDataDir('pgflip-node-only-test-');
const running: Running[] = [];

/**
 * A directory of symlinks to every executable on the current PATH (the first of
 * each name, as a shell resolves it) but the PostgreSQL tools: by name, and
 * anything that resolves into a postgresql path (Debian's pg_wrapper).
 */
function nodeOnlyPath(): string {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  const seen = new Set<string>();
  for (const d of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    let names: string[];
    try { names = readdirSync(d); } catch { continue; }
    for (const name of names) {
      if (seen.has(name) || PG_TOOLS.includes(name)) continue;
      const full = path.join(d, name);
      try {
        if (!statSync(full).isFile()) continue;
        accessSync(full, constants.X_OK);
        if (realpathSync(full).includes('postgresql')) continue;
      } catch { continue; } // a broken link, not executable
      seen.add(name);
      symlinkSync(full, path.join(bin, name));
    }
  }
  return bin;
}

const pgBin = embeddedBinDir();
const PATH = nodeOnlyPath();
/** what `pgflip up` and every line of the block run with */
const nodeOnly = (): NodeJS.ProcessEnv => ({ ...userEnv(), PATH, PGFLIP_PG_BIN: pgBin });

// startUp() spawns with userEnv(), which copies this process's environment: give it the node-only one.
const saved = { PATH: process.env.PATH, PGFLIP_PG_BIN: process.env.PGFLIP_PG_BIN };
beforeAll(() => {
  process.env.PATH = PATH;
  process.env.PGFLIP_PG_BIN = pgBin;
});

afterAll(async () => {
  for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) await stopUp(r);
  for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  rmSync(dir, { recursive: true, force: true });
});

interface Ran { code: number; stdout: string; stderr: string }

function sh(line: string, env: NodeJS.ProcessEnv, timeoutMs = 180_000): Promise<Ran> {
  return new Promise((resolve) => {
    // `bash` is looked up on env.PATH: the node-only directory
    execFile('bash', ['-c', line], { cwd: ROOT, env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The ```sh block under `### Trying it`, one command a line, trailing `# comments` stripped. */
function tryingItBlock(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const m = /^### Trying it\n+```sh\n([\s\S]*?)\n```/m.exec(readme);
  if (!m) throw new Error('README.md: no ```sh block under "### Trying it"');
  return m[1].split('\n').map((l) => l.replace(/\s+#\s.*$/, '').trim()).filter(Boolean);
}

async function query<T = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try { return (await c.query(sql, params)).rows as T[]; } finally { await c.end(); }
}

/** a line of the demo's summary */
const field = (out: string, name: string): string => {
  const m = new RegExp(`^  ${name} +(.*)$`, 'm').exec(out);
  if (!m) throw new Error(`no "${name}" line in the demo's summary:\n${out}`);
  return m[1];
};

const fail = (line: string, r: Ran): string => `${line}\nexit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-4000)}`;

test('the PATH has node, bash and curl but no PostgreSQL tool; PGFLIP_PG_BIN is the embedded binaries', async () => {
  expect(pgBin).toBeDefined();
  expect(readdirSync(pgBin!)).toEqual(expect.arrayContaining(['initdb', 'pg_ctl', 'postgres']));
  expect(readdirSync(pgBin!)).not.toContain('pg_dump');
  const env = nodeOnly();
  for (const tool of ['psql', 'pg_dump']) expect((await sh(`command -v ${tool}`, env)).code).not.toBe(0);
  const any = await sh(`for t in ${PG_TOOLS.join(' ')}; do command -v "$t"; done; true`, env);
  expect(any.stdout).toBe('');
  for (const tool of ['node', 'npx', 'env', 'curl']) expect((await sh(`command -v ${tool}`, env))).toMatchObject({ code: 0, stdout: `${path.join(PATH, tool)}\n` });
});

test('README "Trying it", as written, with nothing but Node', async () => {
  const lines = tryingItBlock();
  expect(lines[0]).toBe('npm ci && npm start');
  const env = nodeOnly();
  const started = Date.now();
  const dataDir = path.join(dir, 'data');
  // `npm ci && npm start`: npm ci has run, the build is the test's prerequisite
  // as npm start, but a 5 s watch window instead of 60 s: the risky line returns after it, and the suite has a budget
  const r = await startUp(dataDir, ['--watch-seconds', '5']);
  running.push(r);
  const { info } = r;
  const timings = [`pgflip up ${((Date.now() - started) / 1000).toFixed(1)} s`];
  // the servers are the embedded binaries' (PGFLIP_PG_BIN), not the system PostgreSQL's
  const embeddedMajor = /\s(\d+)/.exec((await sh(`"${pgBin}/postgres" --version`, env)).stdout)?.[1];
  expect(embeddedMajor).toBeDefined();
  for (const url of [info.appUrl, info.blueUrl, info.greenUrl]) {
    expect((await query<{ v: string }>(url, "SELECT current_setting('server_version') AS v"))[0].v).toMatch(new RegExp(`^${embeddedMajor}\\.`));
  }

  const ids: Record<string, string> = {};
  const marker = { name: 'node-only', email: 'Mixed.Case@Example.COM' };
  let rollbackList: string[] | undefined;
  let restored: Ran | undefined;
  let status: Ran | undefined;
  let greenAfterRisky = false;
  for (const line of lines.slice(1)) {
    if (line.startsWith('export ')) {
      // the values are placeholders: the URL and token `pgflip up` printed
      const values: Record<string, string> = { PGFLIP_CONTROLLER_URL: info.controllerUrl, PGFLIP_API_TOKEN: info.apiToken };
      const names = [...line.matchAll(/(?:^export|\s)([A-Z_][A-Z0-9_]*)=/g)].map((m) => m[1]);
      expect(names.sort()).toEqual(Object.keys(values).sort());
      Object.assign(env, values);
      continue;
    }
    let cmd = line;
    if (/^npx pgflip rollback restore <id>/.test(line)) {
      expect(rollbackList?.length).toBeGreaterThan(0);
      cmd = line.replace('<id>', rollbackList![0].split(/\s+/)[0]);
    }
    expect(cmd).not.toMatch(/<[^>]+>/);
    const t0 = Date.now();
    const res = await sh(cmd, env);
    timings.push(`${cmd.replace(/^scripts\/migration\//, '')} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (res.code !== 0) throw new Error(fail(cmd, res));
    const migration = /^scripts\/migration\/execute-migration\.sh .*?(\d{3}_\w+\.sql)$/.exec(cmd);
    if (migration) {
      expect(res.stdout).toMatch(/: completed — /);
      const id = /\(id ([^)]+)\)/.exec(res.stdout)?.[1];
      if (!id) throw new Error(fail(cmd, res));
      ids[migration[1]] = id;
      if (migration[1] === '000_example_schema.sql') {
        // the row the maintenance migration rewrites, written through the application URL
        await query(info.appUrl, 'INSERT INTO users (name, email) VALUES ($1, $2)', [marker.name, marker.email]);
      }
      if (migration[1] === '002_drop_unused_table.sql') {
        expect(res.stdout).toMatch(/: completed — switched to green/);
        greenAfterRisky = (await api(info, 'GET', '/status')).body.active === 'green';
      }
      if (migration[1] === '003_normalise_emails.sql') {
        expect(await query(info.appUrl, 'SELECT email FROM users WHERE name = $1', [marker.name])).toEqual([{ email: marker.email.toLowerCase() }]);
      }
    } else if (cmd === 'scripts/migration/proxy-switch.sh status') {
      status = res;
    } else if (cmd === 'npx pgflip rollback list') {
      rollbackList = res.stdout.trim().split('\n');
    } else if (cmd.startsWith('npx pgflip rollback restore ')) {
      restored = res;
    } else {
      throw new Error(`README "Trying it": a line this test does not know: ${cmd}`);
    }
  }
  const elapsed = Date.now() - started;
  console.log(`README "Trying it" with nothing but Node: ${(elapsed / 1000).toFixed(1)} s in all\n  ${timings.join('\n  ')}`);

  // every line of the block ran
  expect(Object.keys(ids).sort()).toEqual(['000_example_schema.sql', '002_drop_unused_table.sql', '003_normalise_emails.sql']);
  expect(status).toBeDefined();
  expect(rollbackList).toBeDefined();
  expect(restored).toBeDefined();

  // the risky migration flipped: green is active
  expect(greenAfterRisky).toBe(true);
  expect(status!.stdout).toMatch(/^active: green \(epoch \d+\)$/m);
  expect(status!.stdout).toMatch(/^green: up \(active\)/m);

  // the migration records: the rollback points by the Node dump, the schema copy by the Node path
  for (const [name, id] of Object.entries(ids)) {
    const rec = (await api(info, 'GET', `/migrations/${encodeURIComponent(id)}`)).body;
    expect(rec).toMatchObject({ name, state: 'completed' });
    const point = rec.steps.find((s: { name: string }) => s.name === 'rollback point');
    expect(point).toMatchObject({ state: 'done', detail: expect.stringMatching(/written by the Node dump\)$/) });
    // controller.trace auto: each file ran first on a throwaway cluster of the embedded binaries
    expect(rec.steps[0]).toMatchObject({ name: 'validate', state: 'done', detail: expect.stringMatching(/; traced on a throwaway cluster in \d+\.\d s$/) });
  }
  const risky = (await api(info, 'GET', `/migrations/${encodeURIComponent(ids['002_drop_unused_table.sql'])}`)).body;
  expect(risky.steps.find((s: { name: string }) => s.name === 'prepare idle side'))
    .toMatchObject({ state: 'done', detail: expect.stringContaining('the Node schema copy: pg_dump is not installed') });

  // rollback list: one point before each migration, files rollback-<migration-id>-<timestamp>.sql in the backups
  expect(rollbackList!.length).toBeGreaterThanOrEqual(3);
  const listed = rollbackList!.map((l) => l.split(/\s+/)[0]);
  const files = readdirSync(path.join(dataDir, 'backups'));
  for (const id of listed) expect(files).toContain(`${id}.sql`);
  for (const f of files) expect(f).toMatch(/^rollback-.+-\d{8}T\d{6}(\d{3})?Z\.sql$/);
  for (const id of Object.values(ids)) {
    expect(files.some((f) => new RegExp(`^rollback-${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-\\d{8}T\\d{6}(\\d{3})?Z\\.sql$`).test(f))).toBe(true);
  }
  // the newest is the one taken before the maintenance migration, of green
  expect(listed[0]).toMatch(new RegExp(`^rollback-${ids['003_normalise_emails.sql']}-`));
  expect(rollbackList![0]).toMatch(/^\S+ {2}green {2}/);

  // restore: the side as it was before the maintenance migration
  expect(restored!.stdout).toBe(`restored ${listed[0]} to green\n`);
  expect(await query(info.appUrl, 'SELECT email FROM users WHERE name = $1', [marker.name])).toEqual([{ email: marker.email }]);

  expect(await stopUp(r)).toEqual({ code: 0, signal: null });
}, 240_000);

test('npm run demo with nothing but Node: 0 lost writes, exit 0', async () => {
  // `npm run demo` is the build and `node dist/cli/main.js demo`
  const started = Date.now();
  const r = runCli(['demo', '--data-dir', path.join(dir, 'demo')], nodeOnly());
  running.push(r);
  const guard = setTimeout(() => r.child.kill('SIGTERM'), 150_000);
  const { code } = await r.exited;
  clearTimeout(guard);
  console.log(`pgflip demo with nothing but Node: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const out = r.stdout();
  if (code !== 0) process.stderr.write(`pgflip demo exited ${code}:\n${out}\n${r.stderr()}\n`);
  // the schema copy took the Node path
  expect(out).toMatch(/✓ prepare idle side \(\d+ ms\): .*the Node schema copy: pg_dump is not installed/);
  expect(out).toMatch(/✓ flip \(\d+ ms\): all proxies on green/);
  expect(field(out, 'migration')).toMatch(/^completed — switched to green/);
  const attempted = Number(field(out, 'writes attempted'));
  const acknowledged = Number(/^(\d+)/.exec(field(out, 'acknowledged'))?.[1]);
  expect(acknowledged).toBeGreaterThan(0);
  expect(attempted).toBe(acknowledged);
  expect(field(out, 'lost')).toBe('0');
  expect(field(out, 'client errors')).toBe('0');
  expect(out).toMatch(/^OK: no acknowledged write lost, no client error$/m);
  expect(code).toBe(0);
}, 160_000);

test('pgflip validate --trace with nothing but Node: the repository\'s migrations run in order on a throwaway embedded cluster', async () => {
  // what `npm run test:migrations` runs after its build (the suite has built already)
  const res = await sh('node dist/cli/main.js validate --trace migrations/*.sql', nodeOnly());
  expect(res.code).toBe(0);
  expect(res.stdout).toMatch(/^migrations\/000_example_schema\.sql: valid, safe/m);
  expect(res.stdout).toMatch(/trace: line 3 ADD_COLUMN: ACCESS EXCLUSIVE on users/);
}, 120_000);

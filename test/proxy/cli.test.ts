/** `pgflip proxy` as a user runs it (spawns the built CLI: `npm run build` first). */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { startPair, TestCluster } from '../harness/clusters';

const CLI = path.join(__dirname, '../../dist/cli/main.js');
const baseEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, PGFLIP_LOG_LEVEL: 'silent' };
  for (const k of ['BLUE_DATABASE_URL', 'GREEN_DATABASE_URL', 'DB_USER', 'DB_PASSWORD', 'DB_NAME', 'PGFLIP_ACTIVE']) delete env[k];
  return env;
};

function runSync(args: string[], env: NodeJS.ProcessEnv = baseEnv()) {
  return spawnSync(process.execPath, [CLI, 'proxy', ...args], { env, encoding: 'utf8', timeout: 20_000 });
}

describe('configuration errors stop start-up with one line naming the key', () => {
  const green = 'postgres://u:p@127.0.0.1:1/app';
  test.each([
    [['--blue', 'not a url', '--green', green], 'pgflip: config blue.url: is not a valid URL'],
    [['--blue', green], 'pgflip: config green.url: is required (a postgres:// URL)'],
    [['--blue', 'mysql://x@h/db', '--green', green], 'pgflip: config blue.url: must start with postgres:// (got mysql://)'],
    [['--blue', green, '--green', green, '--listen', 'nope'], 'pgflip: config --listen: expected HOST:PORT, got "nope"'],
    [['--blue', green, '--green', green, '--active', 'purple'], 'pgflip: config active: must be blue or green (got "purple")'],
    [['--blue', green, '--green', green, '--auth', 'md5'], 'pgflip: config proxy.auth: must be scram or trust (got "md5")'],
    [['--config', '/nonexistent/pgflip.yaml'], 'pgflip: config --config: cannot read /nonexistent/pgflip.yaml: ENOENT'],
  ])('%j', (args, line) => {
    const r = runSync(args);
    expect(r.stderr).toBe(`${line}\n`);
    expect(r.status).toBe(1);
  });
});

describe('running', () => {
  let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
  let child: ChildProcess | undefined;
  let dir: string;
  beforeAll(async () => {
    pair = await startPair();
    await pair.green.query("CREATE TABLE side AS SELECT 'green'::text AS name");
    await pair.blue.query("CREATE TABLE side AS SELECT 'blue'::text AS name");
    dir = mkdtempSync(path.join(os.tmpdir(), 'pgflip-cli-'));
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await pair?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('flags over env over file; serves the chosen side; SIGTERM stops it', async () => {
    const file = path.join(dir, 'pgflip.yaml');
    writeFileSync(file, [
      `blue: { url: "${pair.blue.url()}" }`,
      'green: { url: "postgres://file:file@127.0.0.1:1/app" }',
      'active: blue',
      'proxy:',
      '  listen: { host: 127.0.0.1, port: 6432 }',
      '  admin: { host: 127.0.0.1, port: 0 }',
      '  users: { app: { password: apppass } }',
    ].join('\n'));
    const env = { ...baseEnv(), GREEN_DATABASE_URL: pair.green.url(), PGFLIP_ACTIVE: 'blue' };
    child = spawn(process.execPath, [CLI, 'proxy', '--config', file, '--listen', '127.0.0.1:0', '--active', 'green'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const line = await new Promise<string>((resolve, reject) => {
      child!.stdout!.on('data', (d) => { out += d; const m = /^.*listening on .*\n/m.exec(out); if (m) resolve(m[0]); });
      child!.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    expect(line).toMatch(/^pgflip proxy listening on 127\.0\.0\.1:\d+ \(admin http:\/\/127\.0\.0\.1:\d+\), active side green\n$/);
    const port = Number(/127\.0\.0\.1:(\d+) /.exec(line)![1]);
    const c = new Client({ connectionString: `postgres://app:apppass@127.0.0.1:${port}/app` });
    await c.connect();
    expect((await c.query('SELECT name FROM side')).rows).toEqual([{ name: 'green' }]);
    const exited = new Promise<number | null>((r) => child!.on('exit', (code) => r(code)));
    const ended = new Promise<{ code?: string }>((r) => c.on('error', (e) => r(e as { code?: string })));
    child.kill('SIGTERM');
    expect((await ended).code).toBe('57P01');
    expect(await exited).toBe(0);
    child = undefined;
  });
});

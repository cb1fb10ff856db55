/**
 * The live switch with real clients: node-postgres, postgres.js, psycopg 3
 * and pgjdbc each hold an open session with a named prepared statement, a SET and a LISTEN
 * while pgbench (-M prepared) writes through the proxy; the fleet flips blue → green → blue.
 * Every statement keeps working on the new side, settings survive, notifications sent on the
 * new side arrive, and pgbench sees no failed transaction.
 *
 * The same again in transaction mode (proxy.poolMode = transaction), with more pgbench clients
 * than server connections: there the statements live on pooled connections under pgflip's
 * names, and the LISTENs on the shared listening connection of each side (docs/proxy.md
 * "Transaction pooling").
 */
import path from 'node:path';
import { Client } from 'pg';
import postgres from 'postgres';
import { startPair, TestCluster } from '../harness/clusters';
import { startProxyFor, TestProxy } from '../harness/proxy';
import { requireTool, runProgram, targetFrom } from '../clients/env';
import { FlipCoordinator } from '../../src/switch/coordinator';
import { LineAgent } from './agent';

const PYTHON = '/usr/bin/python3';
const JDBC_JAR = '/usr/share/java/postgresql.jar';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  const pgbench = requireTool('pgbench', 'postgresql-client');
  requireTool('javac', 'default-jdk-headless');
  requireTool(JDBC_JAR, 'libpostgresql-jdbc-java');
  pair = await startPair();
  await Promise.all([pair.blue, pair.green].map(async (side) => {
    await side.query(`CREATE TABLE whoami AS SELECT '${side.name}'::text AS side`);
    const r = await runProgram(pgbench, ['-i', '-q', '-s', '1'], { env: targetFrom('direct', side.url('app')).env });
    if (r.code !== 0) throw new Error(`pgbench -i on ${side.name}: ${r.stderr}`);
  }));
}, 60_000);
afterAll(async () => {
  await pair?.stop();
});

type Mode = 'session' | 'transaction';
const POOL_SIZE = 3;

interface Check { side: string; statementTimeout: string; applicationName: string }
interface Tested {
  name: string;
  check(): Promise<Check>;
  /** payloads received since the last call, after NOTIFY on the given side */
  notifies(): Promise<string[]>;
  channel: string;
}

async function nodePostgres(px: TestProxy): Promise<Tested> {
  const c = new Client({ connectionString: px.url(), application_name: 'node-postgres-flip' });
  await c.connect();
  cleanups.push(() => c.end());
  const got: string[] = [];
  c.on('notification', (n) => got.push(n.payload ?? ''));
  const q = { name: 'side_q', text: 'SELECT side FROM whoami WHERE $1::int > 0', values: [1] };
  await c.query(q);
  await c.query("SET statement_timeout = '12345ms'");
  await c.query('LISTEN flip_node');
  return {
    name: 'node-postgres',
    channel: 'flip_node',
    async check() {
      const side = (await c.query(q)).rows[0].side;
      const st = (await c.query('SHOW statement_timeout')).rows[0].statement_timeout;
      const app = (await c.query('SHOW application_name')).rows[0].application_name;
      return { side, statementTimeout: st, applicationName: app };
    },
    async notifies() {
      for (let i = 0; i < 250 && !got.length; i++) await sleep(20);
      return got.splice(0);
    },
  };
}

async function postgresJs(px: TestProxy): Promise<Tested> {
  const sql = postgres(px.url(), { max: 1, prepare: true, onnotice: () => undefined, connection: { application_name: 'postgres.js-flip' } });
  cleanups.push(() => sql.end({ timeout: 1 }));
  const got: string[] = [];
  await sql`SET statement_timeout = '12345ms'`;
  await sql.listen('flip_pgjs', (p) => got.push(p));
  return {
    name: 'postgres.js',
    channel: 'flip_pgjs',
    async check() {
      const [{ side }] = await sql`SELECT side FROM whoami WHERE ${1}::int > 0`;
      const [{ statement_timeout: st }] = await sql`SHOW statement_timeout`;
      const [{ application_name: app }] = await sql`SHOW application_name`;
      return { side, statementTimeout: st, applicationName: app };
    },
    async notifies() {
      for (let i = 0; i < 250 && !got.length; i++) await sleep(20);
      return got.splice(0);
    },
  };
}

async function psycopg(px: TestProxy, mode: Mode): Promise<Tested> {
  const u = new URL(px.url());
  const conninfo = `host=127.0.0.1 port=${u.port} user=${u.username} password=${u.password} dbname=app sslmode=disable`;
  const a = LineAgent.start('psycopg', PYTHON, [path.join(__dirname, 'agents', 'psycopg_agent.py'), conninfo]);
  cleanups.push(() => a.stop());
  expect(JSON.parse(await a.line())).toEqual({ ready: true });
  return {
    name: 'psycopg 3',
    channel: 'flip_psycopg',
    async check() {
      const r = JSON.parse(await a.ask('check'));
      if (r.error) throw new Error(`psycopg: ${r.error}`);
      // server-side binding: under psycopg's name on its own backend, under pgflip's on a pooled one
      if (mode === 'session') expect(r.prepared).toContain('_pg3_0');
      else expect(r.prepared.some((n: string) => /^pgflip_\d+$/.test(n))).toBe(true);
      return { side: r.side, statementTimeout: r.statement_timeout, applicationName: r.application_name };
    },
    async notifies() { return JSON.parse(await a.ask('notifies')).payloads; },
  };
}

async function pgjdbc(px: TestProxy, tmp: string): Promise<Tested> {
  const r = await runProgram('javac', ['-d', tmp, '-cp', JDBC_JAR, path.join(__dirname, 'agents', 'PgjdbcAgent.java')]);
  if (r.code !== 0) throw new Error(`javac PgjdbcAgent.java: ${r.stderr}`);
  const u = new URL(px.url());
  const q = new URLSearchParams({ user: u.username, password: u.password, prepareThreshold: '1', sslmode: 'disable', ApplicationName: 'pgjdbc-flip' });
  const a = LineAgent.start('pgjdbc', 'java', ['-cp', `${tmp}:${JDBC_JAR}`, 'PgjdbcAgent', `jdbc:postgresql://127.0.0.1:${u.port}/app?${q}`]);
  cleanups.push(() => a.stop());
  expect(await a.line(30_000)).toBe('ready');
  return {
    name: 'pgjdbc',
    channel: 'flip_jdbc',
    async check() {
      const line = await a.ask('check');
      const [side, st, app, serverPrepared] = line.split('|');
      if (!side || line.startsWith('error')) throw new Error(`pgjdbc: ${line}`);
      expect(serverPrepared).toBe('true');
      return { side, statementTimeout: st, applicationName: app };
    },
    async notifies() {
      const line = await a.ask('notifies');
      if (!line.startsWith('notifies')) throw new Error(`pgjdbc: ${line}`);
      return line.slice('notifies '.length).split(',').filter(Boolean);
    },
  };
}

describe.each<Mode>(['session', 'transaction'])('%s mode', (mode) => {
  let px: TestProxy;
  let coordinator: FlipCoordinator;
  beforeAll(async () => {
    px = await startProxyFor(pair, mode === 'session' ? {} : { proxy: { poolMode: 'transaction', poolSize: POOL_SIZE } });
    coordinator = new FlipCoordinator(px.proxy.store, { commitWindowMs: 2000 });
  });
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    await coordinator?.close();
    await px?.stop();
  });

test('blue → green → blue: every client keeps its session, statements, settings and LISTEN; pgbench sees no error', async () => {
  const tmp = await import('node:fs').then((fs) => fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'pgflip-flip-')));
  cleanups.push(async () => require('node:fs').rmSync(tmp, { recursive: true, force: true }));
  const clients = [await nodePostgres(px), await postgresJs(px), await psycopg(px, mode), await pgjdbc(px, tmp)];
  const apps: Record<string, string> = { 'node-postgres': 'node-postgres-flip', 'postgres.js': 'postgres.js-flip', 'psycopg 3': 'psycopg-flip', pgjdbc: 'pgjdbc-flip' };
  const expectAll = async (side: string) => {
    for (const c of clients) {
      expect({ client: c.name, ...(await c.check()) }).toEqual({ client: c.name, side, statementTimeout: '12345ms', applicationName: apps[c.name] });
    }
    // notifications sent on the side now active reach the LISTENs carried there
    const cluster = side === 'blue' ? pair.blue : pair.green;
    for (const c of clients) await cluster.query(`NOTIFY ${c.channel}, 'on ${side}'`);
    for (const c of clients) expect({ client: c.name, got: await c.notifies() }).toEqual({ client: c.name, got: [`on ${side}`] });
  };
  await expectAll('blue');

  // pgbench writes through the proxy during both flips
  const benchClients = mode === 'session' ? 4 : 8;
  const bench = runProgram('pgbench', ['-n', '-c', String(benchClients), '-j', '2', '-T', '7', '-M', 'prepared'], { env: targetFrom('proxy', px.url()).env, timeoutMs: 30_000 });
  await sleep(1500);
  const there = await coordinator.flip({ target: 'green', deadlineMs: 5000 });
  expect(there.reason ?? null).toBeNull();
  expect(there).toMatchObject({ ok: true, from: 'blue', active: 'green', epoch: 1, sessionsTerminated: 0 });
  // 4 clients (postgres.js has a second connection for LISTEN) and the pgbench sessions
  const sessions = benchClients + 5;
  expect(there.sessionsCarried).toBeGreaterThanOrEqual(sessions);
  expect(px.proxy.activeSide).toBe('green');
  await expectAll('green');

  await sleep(1000);
  const back = await coordinator.flip({ target: 'blue', deadlineMs: 5000 });
  expect(back).toMatchObject({ ok: true, active: 'blue', epoch: 2, sessionsTerminated: 0 });
  expect(back.sessionsCarried).toBeGreaterThanOrEqual(sessions);
  if (mode === 'transaction') {
    // pgbench's clients shared the pool's connections on each side
    for (const side of [pair.blue, pair.green]) {
      const [{ n }] = await side.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgbench'");
      expect(n).toBeLessThanOrEqual(POOL_SIZE);
    }
  }
  await expectAll('blue');

  const r = await bench;
  const out = r.stdout + r.stderr;
  expect({ code: r.code, failed: /number of failed transactions: (\d+)/.exec(out)?.[1], aborted: /aborted/.test(out) }).toEqual({ code: 0, failed: '0', aborted: false });
  // pgbench wrote on both sides
  for (const side of [pair.blue, pair.green]) {
    const [{ n }] = await side.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history');
    expect(Number(n)).toBeGreaterThan(0);
  }
  const metrics = await px.registry.metrics();
  expect(metrics).toMatch(/pgflip_flip_pause_seconds_count 2/);
  expect(metrics).toMatch(/pgflip_held_sessions 0/);
});
});

/**
 * Sessions pinned to their backend (state that cannot move: a temporary table, a session
 * advisory lock, a WITH HOLD cursor): counted by reason in pgflip_pinned_sessions, and a log line
 * names each session and why, once per reason — before a flip has to end them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { startPair, startRedis, TestCluster, TestRedis } from '../harness/clusters';
import { ProxyProcess, spawnProxyProcess } from '../harness/proxy-process';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let redis: TestRedis;
let tmp: string;
let proxy: ProxyProcess;

beforeAll(async () => {
  [pair, redis] = await Promise.all([startPair(), startRedis()]);
  tmp = mkdtempSync(path.join(os.tmpdir(), 'pgflip-pinned-'));
  proxy = await spawnProxyProcess({ id: 'pin', pair, redis, dir: tmp, token: 'pinned-test-token-0123456789', logLevel: 'info' });
}, 60_000);
afterAll(async () => {
  proxy?.child.kill('SIGKILL');
  await redis?.stop();
  await pair?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const metric = async (reason: string): Promise<number> => {
  const line = (await (await fetch(`${proxy.admin}/metrics`)).text()).split('\n').find((l) => l.startsWith(`pgflip_pinned_sessions{reason="${reason}"} `));
  return line ? Number(line.split(' ').pop()) : NaN;
};

test('pinned sessions are counted by reason and logged once with why; unpinned again, the count drops', async () => {
  const a = new Client({ connectionString: proxy.url, application_name: 'temp' });
  const b = new Client({ connectionString: proxy.url, application_name: 'locker' });
  await Promise.all([a.connect(), b.connect()]);
  try {
    await a.query('CREATE TEMP TABLE scratch (id int)');
    await b.query('SELECT pg_advisory_lock(42)');
    const wait = async (reason: string, n: number) => {
      for (let i = 0; i < 40 && (await metric(reason)) !== n; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await metric(reason)).toBe(n);
    };
    await wait('temporary table', 1);
    await wait('session advisory lock', 1);
    expect(await metric('WITH HOLD cursor')).toBe(0);
    // the log line is written the same second as the count, but reaches the captured output a moment later
    const pinnedLines = () => proxy.logs().split('\n').filter((l) => l.includes('session pinned to its backend'));
    for (let i = 0; i < 40 && pinnedLines().length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    const lines = pinnedLines();
    expect(lines).toHaveLength(2);
    expect(lines.join('\n')).toMatch(/\(temporary table\): a flip ends it \(57P01\)/);
    expect(lines.join('\n')).toMatch(/\(session advisory lock\)/);
    // the lock released: no longer pinned
    await b.query('SELECT pg_advisory_unlock(42)');
    await wait('session advisory lock', 0);
    // a second count of the same state logs nothing more
    await new Promise((r) => setTimeout(r, 1200));
    expect(proxy.logs().split('\n').filter((l) => l.includes('session pinned to its backend'))).toHaveLength(2);
  } finally {
    await Promise.all([a.end(), b.end()]);
  }
});

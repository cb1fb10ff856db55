/**
 * Stopping `pgflip up` the ways processes really get stopped: a signal to `npm start`'s npm
 * process, a signal while the clusters are still starting, and a SIGTERM from a parent that
 * exits at once (closing the pipes). Each time both PostgreSQL servers must be gone.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { alive, gone, postmasterPid, ROOT, runCli, Running, stopUp, tempDataDir, userEnv } from './helpers';

const dirs: string[] = [];
const running: Running[] = [];
afterAll(async () => {
  for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) await stopUp(r);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const d = tempDataDir('pgflip-up-signal-');
  dirs.push(d);
  return path.join(d, 'data');
}

const SIDES = ['blue', 'green'] as const;

async function until(what: string, ok: () => boolean, ms = 90_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function bothStopped(dir: string, pids: Array<number | undefined>): Promise<void> {
  for (const p of pids) if (p !== undefined) expect(await gone(p)).toBe(true);
  for (const side of SIDES) expect(postmasterPid(dir, side)).toBeUndefined();
}

async function exitOf(r: Running): Promise<{ code: number | null }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      r.exited,
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('did not exit within 30 s')), 30_000); }),
    ]);
  } finally { clearTimeout(timer); }
}

test.each(['SIGINT', 'SIGTERM'] as const)('npm start stops both servers on %s sent to the npm process', async (sig) => {
  const dir = dataDir();
  const child = spawn('npm', ['start', '--silent', '--', '--json', '--data-dir', dir, '--proxy-port', '0', '--api-port', '0'],
    { cwd: ROOT, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.resume();
  const r: Running = {
    child, stdout: () => out, stderr: () => '',
    exited: new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal }))),
  };
  running.push(r);
  await until('the ready line', () => out.includes('\n'));
  const pids = SIDES.map((s) => postmasterPid(dir, s));
  expect(pids.every((p) => p !== undefined && alive(p))).toBe(true);
  process.kill(child.pid!, sig);
  await exitOf(r);
  await bothStopped(dir, pids);
}, 150_000);

test('a SIGTERM while the clusters start stops them once they are up, and exits 0', async () => {
  const dir = dataDir();
  const r = runCli(['up', '--json', '--data-dir', dir, '--proxy-port', '0', '--api-port', '0']);
  running.push(r);
  // the first server is running, the stack is not ready yet
  await until('blue to start', () => postmasterPid(dir, 'blue') !== undefined);
  expect(r.stdout()).toBe('');
  r.child.kill('SIGTERM');
  expect((await exitOf(r)).code).toBe(0);
  expect(r.stdout()).toBe('');
  await bothStopped(dir, SIDES.map((s) => postmasterPid(dir, s)));
}, 150_000);

test('a parent that sends SIGTERM and closes the pipes at once: both servers still stop', async () => {
  const dir = dataDir();
  const r = runCli(['up', '--data-dir', dir, '--proxy-port', '0', '--api-port', '0']); // the banner, not --json
  running.push(r);
  await until('the banner', () => /Ctrl-C stops everything/.test(r.stdout()));
  const pids = SIDES.map((s) => postmasterPid(dir, s));
  r.child.stdout!.destroy();
  r.child.stderr!.destroy();
  r.child.kill('SIGTERM');
  expect((await exitOf(r)).code).toBe(0);
  await bothStopped(dir, pids);
}, 150_000);

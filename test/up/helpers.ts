/**
 * `pgflip up` and `pgflip demo` as a user runs them: the built CLI as a child
 * process, its stdout read line by line, its logs (stderr) kept for messages.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../..');
export const CLI = path.join(ROOT, 'dist/cli/main.js');

export interface UpInfo { appUrl: string; controllerUrl: string; apiToken: string; blueUrl: string; greenUrl: string }

export interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The environment a user's shell gives: jest's NODE_ENV=test would silence the logs. */
export function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PGFLIP_LOG_LEVEL: 'info' };
  delete env.NODE_ENV;
  return env;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = userEnv()): Running {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** A data directory the postgres OS user can reach when the tests run as root. */
export function tempDataDir(prefix: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(d, 0o755);
  return d;
}

export interface UpRun extends Running { info: UpInfo }

/** Starts `pgflip up --json` and waits for its one line. */
export async function startUp(dataDir: string, extra: string[] = [], timeoutMs = 90_000): Promise<UpRun> {
  const r = runCli(['up', '--json', '--data-dir', dataDir, '--proxy-port', '0', '--api-port', '0', ...extra]);
  const deadline = Date.now() + timeoutMs;
  let done: { code: number | null } | undefined;
  void r.exited.then((x) => { done = x; });
  while (!r.stdout().includes('\n')) {
    if (done) throw new Error(`pgflip up exited ${done.code} before it was ready:\n${r.stderr().slice(-2000)}`);
    if (Date.now() > deadline) {
      r.child.kill('SIGKILL');
      throw new Error(`pgflip up not ready:\n${r.stderr().slice(-2000)}`);
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  return { ...r, info: JSON.parse(r.stdout().split('\n')[0]) as UpInfo };
}

/** SIGTERM, and the exit; SIGKILL after the guard so a hung process cannot outlive the test. */
export async function stopUp(r: Running, guardMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  r.child.kill('SIGTERM');
  const guard = setTimeout(() => r.child.kill('SIGKILL'), guardMs);
  try { return await r.exited; } finally { clearTimeout(guard); }
}

export async function api(info: UpInfo, method: 'GET' | 'POST', p: string, body?: unknown, token: string | null = info.apiToken): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(info.controllerUrl + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = JSON.parse(text); } catch { /* text */ }
  return { status: res.status, body: parsed };
}

/** Submits a migration through the API and waits for its end. */
export async function migrate(info: UpInfo, name: string, sql: string, type: 'safe' | 'risky' | 'maintenance', timeoutMs = 90_000): Promise<any> {
  const r = await api(info, 'POST', '/migrations', { name, sql, type });
  if (r.status !== 202) throw new Error(`POST /migrations: ${r.status} ${JSON.stringify(r.body)}`);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const rec = (await api(info, 'GET', `/migrations/${r.body.id}`)).body;
    if (['completed', 'failed', 'aborted', 'rolled_back'].includes(rec.state)) return rec;
    if (Date.now() > end) throw new Error(`migration ${r.body.id} still ${rec.state}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** The pid in a side's postmaster.pid, or undefined when the server is not running. */
export function postmasterPid(dataDir: string, side: 'blue' | 'green'): number | undefined {
  const f = path.join(dataDir, side, 'data', 'postmaster.pid');
  return existsSync(f) ? Number(readFileSync(f, 'utf8').split('\n')[0]) : undefined;
}

/** a process that exists and is not a zombie waiting to be reaped */
export function alive(pid: number): boolean {
  try { process.kill(pid, 0); } catch { return false; }
  try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
}

/** A server removes its pid file just before it exits: give it a moment to be gone. */
export async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  return !alive(pid);
}

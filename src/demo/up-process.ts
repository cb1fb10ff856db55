/**
 * `pgflip up` as a child process, the way a newcomer runs it: the demo reads its
 * one JSON line from stdout and sends its logs to a file in the data directory.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { UpInfo } from '../up/stack';

export interface UpProcess {
  info: UpInfo;
  logFile: string;
  /** SIGTERM, then wait for a clean exit; the exit code */
  stop(): Promise<number | null>;
}

const CLI = path.join(__dirname, '..', 'cli', 'main.js');

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export async function startUp(dataDir: string, extraArgs: string[] = []): Promise<UpProcess> {
  const logFile = path.join(dataDir, 'up.log');
  const log = openSync(logFile, 'a');
  const child: ChildProcess = spawn(process.execPath,
    [CLI, 'up', '--json', '--data-dir', dataDir, '--proxy-port', '0', '--api-port', '0', ...extraArgs],
    { stdio: ['ignore', 'pipe', log] });
  closeSync(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const info = await new Promise<UpInfo>((resolve, reject) => {
    let buf = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        try { resolve(JSON.parse(buf.slice(0, nl)) as UpInfo); } catch (err) { reject(new Error(`pgflip up printed ${JSON.stringify(buf.slice(0, nl))}: ${(err as Error).message}`)); }
      }
    });
    void exited.then((code) => reject(new Error(`pgflip up exited with code ${code} before it was ready:\n${tail(logFile)}`)));
  });
  child.stdout!.resume();
  return {
    info,
    logFile,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      try { return await exited; } finally { clearTimeout(timer); }
    },
  };
}

/**
 * The throwaway cluster a trace runs on: one LocalCluster (src/pgcluster, the code path every
 * local cluster takes) in a temporary directory, with settings that trade durability for speed,
 * removed afterwards — also when the process is interrupted (SIGINT, SIGTERM) or exits early.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalCluster } from '../pgcluster/local-cluster';
import { processAlive as alive } from '../util/process';

/** Nothing on this cluster outlives the call: no fsync, the least WAL, no autovacuum. */
const SCRATCH_SETTINGS: Record<string, string | number> = {
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  wal_level: 'minimal',
  max_wal_senders: 0,
  max_replication_slots: 0,
  max_connections: 20,
  shared_buffers: '32MB',
  autovacuum: 'off',
  jit: 'off',
};

/** Temporary directories of throwaway clusters start with this (under the OS temp dir). */
const SCRATCH_PREFIX = 'pgflip-trace-';

const live = new Set<ScratchCluster>();
const signals = ['SIGINT', 'SIGTERM'] as const;
const exitCodes = { SIGINT: 130, SIGTERM: 143 };

let interrupted = false;

/** After SIGINT / SIGTERM: what runs on the clusters fails from then on, and none of it is the files' fault. */
export const traceInterrupted = (): boolean => interrupted;

function onSignal(sig: typeof signals[number]): void {
  if (interrupted) { // a second Ctrl-C: no more waiting
    onExit();
    process.exit(exitCodes[sig]);
  }
  interrupted = true;
  void Promise.allSettled([...live].map((c) => c.destroy())).finally(() => process.exit(exitCodes[sig]));
}

/** Last resort when the process exits with a cluster still up (process.exit, an uncaught error): synchronous. */
function onExit(): void {
  for (const c of live) c.destroySync();
}

/** clusters whose process exits on SIGINT / SIGTERM once they are removed (the CLI; a server has its own shutdown) */
const exitOnSignal = new Set<ScratchCluster>();

function track(c: ScratchCluster, signalsToo: boolean): void {
  if (live.size === 0) process.on('exit', onExit);
  if (signalsToo && exitOnSignal.size === 0) for (const s of signals) process.on(s, onSignal);
  live.add(c);
  if (signalsToo) exitOnSignal.add(c);
}

function untrack(c: ScratchCluster): void {
  if (exitOnSignal.delete(c) && exitOnSignal.size === 0) for (const s of signals) process.off(s, onSignal);
  if (!live.delete(c) || live.size > 0) return;
  process.off('exit', onExit);
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** The file in a scratch directory that names the process it belongs to. */
const OWNER_FILE = 'owner.pid';
let reaped = false;

/**
 * The scratch clusters of processes that died without removing them (SIGKILL, the OOM killer):
 * their postmaster stopped (immediate shutdown), their directory removed. A postmaster is
 * signalled only when /proc shows it is a postgres serving that very directory. Run by the first
 * scratch cluster of a process.
 */
export function reapStaleScratchClusters(tmp = os.tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try { names = readdirSync(tmp).filter((n) => n.startsWith(SCRATCH_PREFIX)); } catch { return removed; }
  for (const name of names) {
    const dir = path.join(tmp, name);
    let owner: number;
    try { owner = Number(readFileSync(path.join(dir, OWNER_FILE), 'utf8').trim()); } catch { continue; } // not ours, or still being made
    if (!Number.isInteger(owner) || owner <= 0 || alive(owner)) continue;
    const dataDir = path.join(dir, 'data');
    try {
      const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (/postgres/.test(cmdline) && cmdline.includes(dataDir)) {
        process.kill(pid, 'SIGQUIT');
        for (let i = 0; i < 100 && alive(pid); i++) sleepSync(20);
      }
    } catch { /* no server left running there */ }
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

export class ScratchCluster {
  readonly dir: string;
  private readonly pg: LocalCluster;
  private starting?: Promise<void>;
  private gone = false;
  private removed = false;
  /** the server's major version, after start() */
  major = 0;

  /** `exitOnSignal`: on SIGINT / SIGTERM remove the cluster and exit (for a command; a server removes it in its own shutdown) */
  constructor(opts: { exitOnSignal?: boolean } = {}) {
    if (!reaped) { reaped = true; reapStaleScratchClusters(); }
    this.dir = mkdtempSync(path.join(os.tmpdir(), SCRATCH_PREFIX));
    chmodSync(this.dir, 0o755); // the server runs as the postgres OS user when we are root
    writeFileSync(path.join(this.dir, OWNER_FILE), `${process.pid}\n`);
    try {
      this.pg = new LocalCluster({ dir: this.dir, password: randomBytes(18).toString('base64url'), settings: SCRATCH_SETTINGS, template: true });
    } catch (err) {
      rmSync(this.dir, { recursive: true, force: true });
      throw err;
    }
    track(this, opts.exitOnSignal ?? true);
  }

  url(database = 'postgres'): string { return this.pg.url(database); }

  async start(): Promise<void> {
    this.starting = this.pg.start();
    await this.starting;
    this.major = Number(readFileSync(path.join(this.pg.dataDir, 'PG_VERSION'), 'utf8').trim());
  }

  /** Stops the server (immediate: nothing on it is worth keeping) and removes the directory. */
  async destroy(): Promise<void> {
    if (this.gone) return;
    this.gone = true;
    await this.starting?.catch(() => undefined);
    // pg_ctl interrupted mid-start can leave a postmaster coming up without having waited for it
    if (this.starting && !existsSync(path.join(this.pg.dataDir, 'postmaster.pid'))) await new Promise((r) => setTimeout(r, 300));
    try {
      if (!(await this.quit())) await this.pg.stop('immediate');
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
      this.removed = true;
      untrack(this);
    }
  }

  /**
   * Immediate shutdown by signal (what pg_ctl stop -m immediate sends), then a close watch on
   * the pid file the postmaster removes as it exits: pg_ctl looks only every 100 ms.
   */
  private async quit(): Promise<boolean> {
    const pid = this.pg.postmasterPid();
    if (!pid) return false;
    try { process.kill(pid, 'SIGQUIT'); } catch { return false; }
    const pidFile = path.join(this.pg.dataDir, 'postmaster.pid');
    for (let i = 0; i < 1000 && existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 5));
    return !existsSync(pidFile);
  }

  /** destroy() for an exit handler: SIGQUIT to the postmaster (immediate shutdown), a short wait, the directory removed. */
  destroySync(): void {
    if (this.removed) return;
    this.gone = true;
    const pid = this.pg.postmasterPid();
    if (pid) {
      try {
        process.kill(pid, 'SIGQUIT');
        for (let i = 0; i < 100; i++) { process.kill(pid, 0); sleepSync(20); }
      } catch { /* gone */ }
    }
    rmSync(this.dir, { recursive: true, force: true });
    this.removed = true;
    live.delete(this);
  }
}

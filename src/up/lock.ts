/**
 * One `pgflip up` per data directory: <dataDir>/up.pid holds the pid of the
 * process using it. A second `up` on the same directory stops with a clear
 * message instead of fighting over the clusters; a pid file left by an `up` that
 * was killed is taken over (its PostgreSQL servers are stopped and restarted).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { processAlive as alive } from '../util/process';

/** Claims the data directory for this process; returns the release function. */
export function lockDataDir(dataDir: string): () => void {
  const file = path.join(dataDir, 'up.pid');
  let holder: number | undefined;
  try { holder = Number(readFileSync(file, 'utf8').trim()) || undefined; } catch { /* no lock */ }
  if (holder && holder !== process.pid && alive(holder)) {
    throw new Error(`--data-dir ${dataDir} is in use by another pgflip up (pid ${holder}); stop it first or choose another --data-dir`);
  }
  writeFileSync(file, `${process.pid}\n`);
  return () => {
    try {
      if (Number(readFileSync(file, 'utf8').trim()) === process.pid) rmSync(file, { force: true });
    } catch { /* gone */ }
  };
}

/**
 * The serving side of `pgflip up`, kept across restarts. `up` runs on an
 * in-memory state store, which forgets a flip when the process stops; starting
 * again on the default side would send traffic to the old side of the last risky
 * migration (stale, and fenced read-only). So every change of the active side
 * is written to <dataDir>/active.json before the store reports it done.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Side, SIDES } from '../side';
import { MemoryStateStore } from '../state';
import type { ActiveState, FlipRecord } from '../state/store';

const FILE = 'active.json';

/** The side that served when `up` last ran on this data directory, if any. */
export function savedActiveSide(dataDir: string): Side | undefined {
  const file = path.join(dataDir, FILE);
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch { return undefined; }
  const side = (JSON.parse(text) as { active?: unknown }).active;
  if (!SIDES.includes(side as Side)) throw new Error(`${file}: "active" must be blue or green (got ${JSON.stringify(side)})`);
  return side as Side;
}

/** A memory state store that writes the active side to the data directory whenever it changes. */
export class DataDirStateStore extends MemoryStateStore {
  constructor(private readonly dataDir: string) {
    super();
  }

  private async save(): Promise<void> {
    const a = await this.getActive();
    if (!a) return;
    const file = path.join(this.dataDir, FILE);
    writeFileSync(`${file}.tmp`, `${JSON.stringify({ active: a.active, changedAt: new Date().toISOString() })}\n`);
    renameSync(`${file}.tmp`, file); // never a half-written file
  }

  override async initActive(side: Side): Promise<ActiveState> {
    const r = await super.initActive(side);
    await this.save();
    return r;
  }

  override async seedActive(state: ActiveState): Promise<ActiveState> {
    const r = await super.seedActive(state);
    await this.save();
    return r;
  }

  override async compareAndSetActive(expectEpoch: number, next: ActiveState, opts?: { fencingToken?: number }): Promise<boolean> {
    const ok = await super.compareAndSetActive(expectEpoch, next, opts);
    if (ok) await this.save();
    return ok;
  }

  override async commitFlip(id: string, opts?: { fencingToken?: number }): Promise<{ committed: boolean; record: FlipRecord | null; active: ActiveState | null }> {
    const r = await super.commitFlip(id, opts);
    if (r.committed) await this.save();
    return r;
  }
}

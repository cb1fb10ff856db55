/**
 * Migration records in the state store: `migration:<id>` holds the record,
 * `migrations` the history (newest first, capped), `controller:current` the id
 * of the migration that has not ended. Writes carry the leader lock's fencing
 * token.
 */
import { createHash } from 'node:crypto';
import type { StateStore } from '../state/store';
import { controllerMetrics } from './metrics';
import { isTerminal, MigrationRecord, StoredMigration } from './types';

export const STORE_KEYS = {
  migration: (id: string) => `migration:${id}`,
  current: 'controller:current',
  history: 'migrations',
  baseline: 'controller:baseline',
} as const;

export class ConflictError extends Error {}
export class NotFoundError extends Error {}

export const checksumOf = (sql: string): string => createHash('sha256').update(sql, 'utf8').digest('hex');

/** The record as the API returns it: without the SQL text. */
export function publicRecord(rec: StoredMigration): MigrationRecord {
  const { sql: _sql, ...pub } = rec;
  return pub;
}

export class MigrationRecords {
  private lastSave = 0;

  constructor(private readonly store: StateStore, private readonly token: () => number | undefined) {}

  async save(rec: StoredMigration): Promise<void> {
    const r = await this.store.setJson(STORE_KEYS.migration(rec.id), rec, { fencingToken: this.token() });
    if (!r.ok && r.reason === 'fenced') throw new Error('this controller is no longer the leader; stopping the migration');
    controllerMetrics().progress.set(rec.progress);
  }

  /** Live progress (copy %, lag) without a store write per event: at most every 500 ms. */
  saveSoon(rec: StoredMigration): void {
    if (Date.now() - this.lastSave < 500) return;
    this.lastSave = Date.now();
    void this.save(rec).catch(() => undefined);
  }

  /** A new migration: its record, the current pointer, its place in the history. */
  async add(rec: StoredMigration, historyLimit: number): Promise<void> {
    await this.save(rec);
    await this.store.setJson(STORE_KEYS.current, { id: rec.id }, { fencingToken: this.token() });
    await this.store.appendCapped(STORE_KEYS.history, rec.id, historyLimit);
  }

  /** No migration is running any more. */
  async clearCurrent(): Promise<void> {
    await this.store.setJson(STORE_KEYS.current, { id: null }, { fencingToken: this.token() });
  }

  /** The id in `controller:current`, whether or not its record has ended. */
  async currentId(): Promise<string | undefined> {
    const cur = await this.store.getJson<{ id: string | null }>(STORE_KEYS.current);
    return cur?.value?.id ?? undefined;
  }

  async getStored(id: string): Promise<StoredMigration | undefined> {
    return (await this.store.getJson<StoredMigration>(STORE_KEYS.migration(id)))?.value ?? undefined;
  }

  async get(id: string): Promise<MigrationRecord> {
    const rec = await this.getStored(id);
    if (!rec) throw new NotFoundError(`migration ${id} not found`);
    return publicRecord(rec);
  }

  async list(limit = 50): Promise<MigrationRecord[]> {
    const ids = await this.store.listRange<string>(STORE_KEYS.history, limit);
    const recs = await Promise.all(ids.map((id) => this.getStored(id)));
    return recs.filter((r): r is StoredMigration => !!r).map(publicRecord);
  }

  /** The running migration, if any. */
  async current(): Promise<MigrationRecord | undefined> {
    const id = await this.currentId();
    if (!id) return undefined;
    const rec = await this.getStored(id);
    return rec && !isTerminal(rec.state) ? publicRecord(rec) : undefined;
  }
}

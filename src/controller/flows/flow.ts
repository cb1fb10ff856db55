/**
 * What a flow is: its steps in order, how it runs, how it ends after a
 * controller restart, and the plan a dry run prints. Everything about one class
 * of migration lives in its own module (safe.ts, maintenance.ts, risky.ts):
 * adding a step to a flow touches that file only.
 */
import type { PgflipConfig } from '../../config';
import type { Side } from '../../side';
import type { StateStore } from '../../state/store';
import type { Applier } from '../apply';
import type { ClassifyPort, FencePort, FlipPort, SyncFactory } from '../ports';
import type { RollbackPoints } from '../rollback-points';
import type { SqlStatement } from '../statements';
import type { StepRunner } from '../steps';
import type { MigrationState, StoredMigration } from '../types';

/** The parts a flow drives. */
export interface FlowDeps {
  cfg: PgflipConfig;
  store: StateStore;
  classifier: ClassifyPort;
  rollbackPoints: RollbackPoints;
  flipper?: FlipPort;
  sync?: SyncFactory;
  fence?: FencePort;
}

/** One migration as its flow sees it. */
export interface FlowContext<N extends string> {
  readonly d: FlowDeps;
  readonly rec: StoredMigration;
  readonly steps: StepRunner<N>;
  /** aborts when the migration is aborted or times out; absent while a restarted controller recovers */
  readonly signal?: AbortSignal;
  sideUrl(side: Side): string;
  activeSide(): Promise<{ active: Side; epoch: number }>;
  save(): Promise<void>;
  /** at most every 500 ms: live progress */
  saveSoon(): void;
  /** the statements running now (undefined when they end), which an abort cancels */
  setApplier(a: Applier | undefined): void;
}

/** How a migration left unfinished by a stopped controller ends, or `rerun`: run its flow again under the same id. */
export type Recovery = 'rerun' | { state: Exclude<MigrationState, 'queued' | 'running'>; outcome: string };

export interface Flow<N extends string> {
  /** in order; each step's end is its share of the progress bar, and a dry run lists them as skipped */
  readonly steps: readonly N[];
  /** Runs the flow; returns normally when the migration completed (rec.outcome says how), else throws (FlowEnd for an early, planned end). */
  run(ctx: FlowContext<N>, o: { resume: boolean }): Promise<void>;
  /** After a restart: the record's running steps are already marked interrupted. */
  recover(ctx: FlowContext<N>): Promise<Recovery>;
  /** What the flow would do, for --dry-run. */
  plan(cfg: PgflipConfig, rec: StoredMigration, side: Side, statements: SqlStatement[]): string[];
}

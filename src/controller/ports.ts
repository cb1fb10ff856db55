/**
 * What the orchestrator needs from the other parts, as small interfaces. The
 * adapters in wiring.ts bind them to the classifier, the flip coordinator and
 * the sync engine; tests bind them the same way (real parts, real databases).
 */
import type { Side } from '../side';
import type { ValidationReport } from '../classifier/types';
import type { SchemaMapping } from '../classifier/mapping';

export interface ClassifyPort {
  /**
   * `trace` (with a database URL): also run the file on a throwaway cluster holding that database's
   * schema (src/trace). `auto`: a trace that cannot run is a warning; `on`: it is an error (thrown).
   */
  classify(sql: string, opts: { fileName: string; databaseUrl?: string; pgVersion?: number; trace?: 'auto' | 'on' }): Promise<ValidationReport>;
}

/** One table's comparison: row counts on both sides and whether the checksums matched. */
export interface TableVerifyResult {
  table: string;
  sourceRows: number;
  targetRows: number;
  equal: boolean;
  /** the first key whose row differs, when found */
  firstDifference?: string;
}

export interface VerifyOutcome {
  ok: boolean;
  problems: string[];
  tables: number;
  unequal: string[];
  results?: TableVerifyResult[];
}

/** Both sides fixed at one instant by pin() (two statements), compared by verify() later. */
export interface PinnedFlipState {
  pin(): Promise<void>;
  verify(tables?: string[]): Promise<VerifyOutcome>;
  close(): Promise<void>;
}

export interface FlipOutcome {
  committed: boolean;
  /** epoch after the flip (committed) or unchanged (aborted) */
  epoch: number;
  /** why it aborted */
  reason?: string;
  /** longest pause a proxy reported, ms */
  pauseMs?: number;
}

export interface FlipPort {
  /**
   * Two-phase fleet flip (docs/fleet.md). beforeCommit runs while every proxy holds
   * its sessions; if it throws, the flip aborts and traffic resumes where it was
   * (onAbort then undoes what beforeCommit did, e.g. fencing).
   */
  flip(o: { target: Side; deadlineMs: number; beforeCommit?: () => Promise<void>; onAbort?: (reason: string) => Promise<void> }): Promise<FlipOutcome>;
  /**
   * Holds every proxy's sessions at transaction boundaries, runs `during`, and
   * resumes them on the same side (maintenance). committed = `during` ran and succeeded;
   * releasedEarly = the proxies stopped holding before it finished (their hold limit passed).
   */
  hold(o: { deadlineMs: number; during: () => Promise<void> }): Promise<FlipOutcome & { releasedEarly?: boolean }>;
}

export interface SyncStatus {
  /** initial copy 0..1 */
  copyFraction?: number;
  rowsCopied?: number;
  /** bytes of table data copied so far, and the tables' total size on the source */
  bytesCopied?: number;
  bytesTotal?: number;
  lagSeconds?: number;
  lagBytes?: number;
}

/** One direction of sync between the sides, for one migration (src/sync SyncSession). */
export interface SyncPort {
  startStreaming(): Promise<void>;
  /** until the lag is under maxLagMs (or zero when traffic is held) */
  catchUp(opts?: { maxLagMs?: number; timeoutMs?: number }): Promise<SyncStatus>;
  stop(): Promise<void>;
  /** drops slots, publications and sync bookkeeping; idempotent */
  cleanup(): Promise<void>;
}

/** Active → idle, with the migration applied on the idle side. */
export interface ForwardSync extends SyncPort {
  checkPrerequisites(): Promise<string[]>;
  /** sizes and row estimates for the plan */
  estimate?(): Promise<Record<string, unknown>>;
  /** rebuilds the idle side's database from scratch with the active side's schema; says how the schema was read and why */
  rebuildTarget(): Promise<string>;
  initialCopy(onProgress: (p: SyncStatus) => void): Promise<void>;
  migrateTarget(): Promise<void>;
  /**
   * All tables, or those named (the source's `schema.table`), compared at one instant while
   * writes run (exact: a table that differs differs); `unequal` names the ones that differ.
   */
  verify(tables?: string[]): Promise<VerifyOutcome>;
  /**
   * The idle side's schema against the active side's now with the migration applied
   * (src/sync/parity.ts): empty when equal, else one line per object that differs.
   */
  schemaParity(): Promise<{ differences: string[]; seconds: number }>;
  /** connections for a comparison of both sides as the flip leaves them (pinned inside the pause, compared after it) */
  pinFlipState(): Promise<PinnedFlipState>;
  progress(): SyncStatus;
  /** whether the running stream's transactions carry pgflip's origin (a reverse stream skips them) */
  tagsOrigin(): boolean;
}

/** The new side → the old one after the flip, mapped with the inverse plan, from the flip's position: no copy. */
export interface ReverseSync extends SyncPort {
  /** the slot on the new side the stream will read from; where it starts is where the stream starts */
  createSlot(): Promise<void>;
  /**
   * With controller.synchronousReverse: commits on the new side wait until the running stream
   * has applied them on the old one, until the stream stops. Returns why not, or what limits it.
   */
  requireConfirmation(): Promise<string | undefined>;
}

export interface SyncFactory {
  forward(o: { migrationId: string; source: Side; target: Side; sql: string; mapping: SchemaMapping }): ForwardSync;
  reverse(o: { migrationId: string; source: Side; target: Side; mapping: SchemaMapping }): ReverseSync;
  /**
   * What a rollback through reverse sync could not carry back, checked against the old side's
   * catalog: `problems` make a rollback lose or refuse writes, `warnings` do not.
   */
  inverse(o: { mapping: SchemaMapping; oldSide: Side }): Promise<{ problems: string[]; warnings: string[] }>;
  /**
   * drops every slot, publication and origin of a migration on both sides
   * (after a restart); without an id, those of every earlier migration (one runs at a time)
   */
  leftovers(migrationId?: string): Promise<void>;
}

export interface FencePort {
  /** application roles can no longer write to the side */
  fence(side: Side): Promise<void>;
  /** a fence of the side made ready ahead (connected, bookkeeping in place), for a pause: fence() is then a few round trips */
  ready(side: Side): Promise<ReadyFence>;
  unfence(side: Side): Promise<void>;
  isFenced(side: Side): Promise<boolean>;
}

export interface ReadyFence {
  fence(): Promise<void>;
  close(): Promise<void>;
}

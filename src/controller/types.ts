/**
 * The migration record the orchestrator persists in the state store before and
 * after every step. GET /migrations/:id returns it as is (minus the SQL text).
 */
import type { CompatView } from '../compat/views';
import type { Side } from '../side';

export type MigrationClass = 'safe' | 'risky' | 'maintenance';
export const CLASS_ORDER: readonly MigrationClass[] = ['safe', 'risky', 'maintenance'];
export const classRank = (c: MigrationClass): number => CLASS_ORDER.indexOf(c);

export type MigrationState = 'queued' | 'running' | 'completed' | 'failed' | 'aborted' | 'rolled_back';
export const TERMINAL_STATES: readonly MigrationState[] = ['completed', 'failed', 'aborted', 'rolled_back'];
export const isTerminal = (s: MigrationState): boolean => TERMINAL_STATES.includes(s);

export type StepState = 'running' | 'done' | 'failed' | 'skipped';

export interface StepRecord {
  name: string;
  state: StepState;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  detail?: string;
}

export interface StatementProgress {
  total: number;
  /** statements whose effect is committed */
  committed: number;
  /** how the file runs: one transaction, statement by statement, or with its own BEGIN/COMMIT */
  mode?: 'transaction' | 'statements' | 'own-transactions';
}

export interface MigrationRequest {
  name: string;
  sql: string;
  type: MigrationClass;
  dryRun: boolean;
  noRollback: boolean;
  timeoutSeconds?: number;
  switchDelaySeconds: number;
}

export interface MigrationRecord {
  id: string;
  name: string;
  /** sha256 of the file's text */
  checksum: string;
  /** the class asked for (--type) */
  type: MigrationClass;
  /** the class the classifier found */
  classification?: MigrationClass;
  dryRun: boolean;
  noRollback: boolean;
  timeoutSeconds?: number;
  switchDelaySeconds: number;
  state: MigrationState;
  /** 0..1 */
  progress: number;
  steps: StepRecord[];
  errors: string[];
  warnings: string[];
  /** the side the migration changes (safe, maintenance: active; risky: the idle side that becomes active) */
  side?: Side;
  /** active side and epoch when the migration started */
  startSide?: Side;
  startEpoch?: number;
  rollbackPoint?: string;
  statements?: StatementProgress;
  /** risky: copy progress and replication lag while streaming */
  copy?: { fraction: number; rows?: number; bytes?: number; totalBytes?: number };
  /** risky: the latest comparison of each table (row counts, checksums) */
  verify?: Array<{ table: string; sourceRows: number; targetRows: number; equal: boolean; firstDifference?: string; at: string }>;
  /** the previous schema version served on the new side (controller/compat.ts): prepared before the flip, served after it until finalized */
  compat?: { schema: string; side: Side; state: 'prepared' | 'serving' | 'released' | 'dropped'; views: CompatView[] };
  lag?: { seconds: number; bytes: number };
  /** what --dry-run found: the plan and the estimates */
  plan?: string[];
  estimates?: Record<string, unknown>;
  /** why the migration ended as it did (skip, refusal, rollback reason…) */
  outcome?: string;
  requestedBy: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** abort was asked; steps check it between units of work */
  abortRequested?: boolean;
}

/** The stored form: the record plus the SQL, so a restarted controller can resume. */
export interface StoredMigration extends MigrationRecord {
  sql: string;
}

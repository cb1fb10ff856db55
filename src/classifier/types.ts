/**
 * Shapes of the validation report (a contract: docs/architecture.md) and of the classifier's options.
 */
import type { SchemaMapping } from './mapping';

export type Classification = 'safe' | 'risky' | 'maintenance';
export type RiskLevel = 'LOW' | 'MEDIUM' | 'HIGH';

/** PostgreSQL table-level lock modes, weakest first; NONE = no lock on an existing relation. */
export const LOCK_LEVELS = [
  'NONE', 'ACCESS SHARE', 'ROW SHARE', 'ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE',
  'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE',
] as const;
export type LockLevel = typeof LOCK_LEVELS[number];

const CLASS_ORDER: Classification[] = ['safe', 'risky', 'maintenance'];
const RISK_ORDER: RiskLevel[] = ['LOW', 'MEDIUM', 'HIGH'];

export const worseClass = (a: Classification, b: Classification): Classification =>
  CLASS_ORDER.indexOf(a) >= CLASS_ORDER.indexOf(b) ? a : b;
export const worseRisk = (a: RiskLevel, b: RiskLevel): RiskLevel =>
  RISK_ORDER.indexOf(a) >= RISK_ORDER.indexOf(b) ? a : b;
/** locks from SHARE upward block writes (or more) on the table they are taken on */
export const blocksWrites = (l: LockLevel): boolean => LOCK_LEVELS.indexOf(l) >= LOCK_LEVELS.indexOf('SHARE');

export interface ReportOperation {
  /** the operation table's row, e.g. DROP_TABLE (see docs/classifier.md) */
  type: string;
  /** the statement's text (long statements are shortened) */
  statement: string;
  riskLevel: RiskLevel;
  classification: Classification;
  /** the relation the operation acts on, as written in the SQL */
  table?: string;
  column?: string;
  lock: LockLevel;
  rewrite: boolean;
  /** a full scan of the table while the lock is held */
  scan: boolean;
  /** the application running against the old schema keeps working */
  backwardCompatible: boolean;
  /** 1-based line of the statement (of the inner statement for DO blocks) */
  line: number;
  reason: string;
  /** how to get the same result with less locking, when there is one */
  saferAlternative?: string;
  /**
   * The strongest lock an earlier statement of the same transaction holds while this one's
   * long work (a scan, rewrite, validation, index build, data change) runs: that work is paid
   * under it (PostgreSQL keeps every lock until the transaction ends).
   */
  heldLock?: HeldLock;
  /** what PostgreSQL did when the statement ran on a throwaway cluster (`pgflip validate --trace`) */
  trace?: OperationTrace;
}

/**
 * One statement run on a throwaway cluster (src/trace): what it locked, rewrote, validated and
 * created. Operations of the same statement share one.
 */
export interface OperationTrace {
  /** locks the statement took on relations that existed before it: the strongest mode per relation, where stronger than what the transaction already held */
  locks: { lock: LockLevel; relation: string }[];
  /** tables and materialized views whose storage was replaced (relfilenode changed) */
  rewrote: string[];
  /** constraints validated against existing rows (`c on t`): NOT VALID → valid, or added valid to a table that existed */
  validated: string[];
  /** new relations, indexes, constraints, functions and types (`table t`, `index i`, `constraint c on t`, …) */
  created: string[];
  /** the statement's own run time in milliseconds */
  ms: number;
  /** it ran outside a transaction block (it cannot run in one): its locks were released before they could be read */
  autocommit?: true;
}

export interface HeldLock {
  lock: LockLevel;
  /** the relation it is held on, as written */
  table: string;
  /** the statement that took it */
  line: number;
  operation: string;
}

export interface TableSize {
  table: string;
  /** planner estimate (pg_class.reltuples); -1 when the table was never analysed */
  rowEstimate: number;
  /** pg_total_relation_size: heap, indexes and TOAST */
  bytes: number;
}

export interface ValidationReport {
  file: string;
  isValid: boolean;
  classification: Classification;
  riskLevel: RiskLevel;
  /** target PostgreSQL major version the file was checked against */
  pgVersion: number;
  operations: ReportOperation[];
  warnings: string[];
  errors: string[];
  /** for risky files: how rows of the old schema map to the new one (sync engine input) */
  mapping?: SchemaMapping;
  /** with a database: how the old application version is served after the flip, and what of it fails (controller/compat.ts) */
  oldVersion?: string[];
  /** with a live database: size of each existing table the file touches */
  tables?: TableSize[];
}

export interface ClassifyOptions {
  /** target major version; default 15, or the server's when databaseUrl is given */
  pgVersion?: number;
  /** a live database to read versions, sizes and the catalog from */
  databaseUrl?: string;
  /** name shown as `file` in the report (classifySql) */
  fileName?: string;
}

export const DEFAULT_PG_VERSION = 15;
export const MIN_PG_VERSION = 10;
export const MAX_PG_VERSION = 18;

/**
 * Runs a file's statements on one connection in the file's own transaction structure, as the
 * controller applies it (docs/controller.md): all in one transaction when the file has no
 * BEGIN/COMMIT of its own and nothing that must run outside a transaction; otherwise as
 * written. A statement outside a transaction block runs in a transaction of its own (what
 * autocommit does), so that its locks can be read before they are released; a statement that
 * cannot run in a transaction block runs bare, and its locks are gone when it returns.
 * A snapshot (snapshot.ts) is taken after every statement, inside its transaction.
 */
import type { Client } from 'pg';
import type { ParsedStatement, SourceText } from '../classifier/parser';
import type { LockLevel } from '../classifier/types';
import { CatalogSnapshot, observe, StatementObservation, takeSnapshot } from './snapshot';

export interface TracedStatement extends ParsedStatement {
  /** cannot run inside a transaction block (CREATE INDEX CONCURRENTLY, VACUUM, …) */
  noTransaction: boolean;
}

export type TraceRunMode = 'transaction' | 'statements' | 'own-transactions';

export interface FileRunResult {
  mode: TraceRunMode;
  /** the catalog before the file's first statement: what "existing" means for this file */
  baseline: CatalogSnapshot;
  /** by statement index; statements after a failure have none */
  observations: Map<number, StatementObservation>;
  /** PostgreSQL's error, located: `line L, column C: message (SQLSTATE xxxxx)` */
  error?: string;
  /** the statement that failed */
  failedIndex?: number;
  /** why the trace stopped without the file being at fault (an extension the throwaway cluster lacks, a snapshot that failed) */
  stopped?: string;
}

type TxControl = 'begin' | 'end' | 'other';

function txControl(st: ParsedStatement): TxControl | undefined {
  if (st.kind !== 'TransactionStmt') return undefined;
  const k = String(st.node?.kind ?? '');
  if (k === 'TRANS_STMT_BEGIN' || k === 'TRANS_STMT_START') return 'begin';
  if (k === 'TRANS_STMT_COMMIT' || k === 'TRANS_STMT_ROLLBACK') return 'end';
  return 'other';
}

export function traceRunMode(statements: TracedStatement[]): TraceRunMode {
  if (statements.some((s) => { const t = txControl(s); return t === 'begin' || t === 'end'; })) return 'own-transactions';
  if (statements.some((s) => s.noTransaction)) return 'statements';
  return 'transaction';
}

interface PgError { message: string; code?: string; position?: string }

/** `line L, column C: message (SQLSTATE x)`, at the error's position in the statement, else at its start. */
export function locateError(source: SourceText, st: ParsedStatement, err: unknown): string {
  const e = err as PgError;
  const pos = Number(e.position);
  const byte = Number.isInteger(pos) && pos >= 1 ? st.start + Buffer.byteLength(st.text.slice(0, pos - 1), 'utf8') : st.start;
  const at = source.at(byte);
  return `line ${at.line}, column ${at.column}: ${e.message}${e.code ? ` (SQLSTATE ${e.code})` : ''}`;
}

const NOT_IN_TRANSACTION_BLOCK = '25001';
const MISSING_EXTENSION = /could not open extension control file|extension "[^"]*" is not available/;

/** Runs `statements` on `c` (which must be idle, outside a transaction) and records what each did. */
export async function runTraced(c: Client, source: SourceText, statements: TracedStatement[]): Promise<FileRunResult> {
  const mode = traceRunMode(statements);
  const result = await run(c, source, statements, mode);
  // a statement the classifier did not know to need autocommit (CREATE TABLESPACE, say): the
  // transaction rolled back whole, so the file runs again statement by statement
  if (mode === 'transaction' && result.errorCode === NOT_IN_TRANSACTION_BLOCK) return withoutCode(await run(c, source, statements, 'statements'));
  return withoutCode(result);
}

function withoutCode(r: FileRunResult & { errorCode?: string }): FileRunResult {
  delete r.errorCode;
  return r;
}

async function run(c: Client, source: SourceText, statements: TracedStatement[], mode: TraceRunMode): Promise<FileRunResult & { errorCode?: string }> {
  let snap = await takeSnapshot(c);
  const result: FileRunResult & { errorCode?: string } = { mode, baseline: snap, observations: new Map() };
  let held = new Map<number, LockLevel>();
  let inBlock = false;

  const fail = async (st: TracedStatement, err: unknown) => {
    await c.query('ROLLBACK').catch(() => undefined);
    const located = locateError(source, st, err);
    const at = source.at(st.start).line;
    if (st.kind === 'CreateExtensionStmt' && MISSING_EXTENSION.test((err as PgError).message)) {
      // the server the file is for may well have it (with --database-url the classifier checks that)
      result.stopped = `line ${at}: the trace stopped here: the throwaway cluster cannot install the extension (${located.replace(/^line \d+, column \d+: /, '')})`;
    } else {
      result.error = located;
      result.errorCode = (err as PgError).code;
    }
    result.failedIndex = st.index;
  };
  /** runs one statement and records it; false when it failed */
  const traced = async (st: TracedStatement, inTransaction: boolean): Promise<boolean> => {
    const t0 = performance.now();
    try {
      await c.query(st.text);
    } catch (err) {
      await fail(st, err);
      return false;
    }
    const ms = performance.now() - t0;
    let after: CatalogSnapshot;
    try {
      after = await takeSnapshot(c);
    } catch (err) {
      // a setting the file made (statement_timeout, say) can stop the catalog read; the file ran to here
      await c.query('ROLLBACK').catch(() => undefined);
      result.stopped = `line ${source.at(st.start).line}: the trace stopped here: reading the catalog after the statement failed: ${(err as Error).message}`;
      result.failedIndex = st.index;
      return false;
    }
    result.observations.set(st.index, observe(snap, after, held, ms, !inTransaction && st.noTransaction));
    snap = after;
    held = inTransaction ? after.locks : new Map();
    return true;
  };
  const commit = async (st: TracedStatement): Promise<boolean> => {
    try {
      await c.query('COMMIT'); // deferred constraints are checked here
    } catch (err) {
      await fail(st, err);
      return false;
    }
    held = new Map();
    return true;
  };

  if (mode === 'transaction') {
    await c.query('BEGIN');
    for (const st of statements) if (!(await traced(st, true))) return result;
    const last = statements[statements.length - 1];
    if (last && !(await commit(last))) return result;
    if (!last) await c.query('COMMIT');
    return result;
  }
  for (const st of statements) {
    const tx = txControl(st);
    if (tx === 'begin' || tx === 'end') {
      held = new Map();
      if (!(await traced(st, tx === 'begin'))) return result;
      inBlock = tx === 'begin';
      continue;
    }
    if (inBlock) {
      if (!(await traced(st, true))) return result;
    } else if (st.noTransaction || tx) {
      if (!(await traced(st, false))) return result;
    } else {
      await c.query('BEGIN');
      held = new Map();
      if (!(await traced(st, true)) || !(await commit(st))) return result;
    }
  }
  if (inBlock) await c.query('ROLLBACK').catch(() => undefined); // the file never commits: the classifier reports it
  return result;
}

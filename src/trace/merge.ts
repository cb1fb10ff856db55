/**
 * The trace of a file, put into its validation report: each operation gets its statement's
 * trace, and where the operation table and PostgreSQL disagree the more severe answer wins,
 * with a warning. A trace never lowers an answer: the scratch database has no data, so a scan
 * of an empty table proves nothing.
 */
import type { ParsedStatement } from '../classifier/parser';
import { OPERATIONS, OperationType, ruleFor } from '../classifier/operations';
import { blocksWrites, LOCK_LEVELS, LockLevel, ReportOperation, ValidationReport, worseClass, worseRisk } from '../classifier/types';
import type { FileRunResult } from './run';

/** Last line of each statement. */
function endLines(statements: ParsedStatement[], lineOf: (byte: number) => number): number[] {
  return statements.map((s) => lineOf(Math.max(s.start, s.end - 1)));
}

/**
 * Which statement each operation belongs to: an operation's line is its statement's first line
 * (a line inside it for a DO block's statements), and operations come in statement order;
 * where statements share a line, the one whose text the operation shows.
 */
export function statementsOfOperations(ops: ReportOperation[], statements: ParsedStatement[], lineOf: (byte: number) => number): Array<ParsedStatement | undefined> {
  const ends = endLines(statements, lineOf);
  let from = 0;
  return ops.map((op) => {
    const shown = op.statement.replace(/…$/, '');
    const holds = (i: number) => statements[i].line <= op.line && op.line <= ends[i];
    let pick: number | undefined;
    for (let i = from; i < statements.length && statements[i].line <= op.line; i++) {
      if (!holds(i)) continue;
      pick ??= i;
      if (statements[i].kind === 'DoStmt' || statements[i].text.startsWith(shown)) { pick = i; break; }
    }
    if (pick === undefined) return undefined;
    from = pick;
    return statements[pick];
  });
}

/** The classifier's key for a relation as written (`users` → `public.users`). */
const keyOf = (table?: string) => (table ? (table.includes('.') ? table : `public.${table}`) : undefined);

const TABLE_KINDS = new Set(['r', 'p', 'm', 'f']);
const rank = (l: LockLevel) => LOCK_LEVELS.indexOf(l);

/** Puts `run` into `report`; `statementOf[i]` is the statement of `report.operations[i]`. */
export function mergeTrace(report: ValidationReport, statementOf: Array<ParsedStatement | undefined>, run: FileRunResult): void {
  const byStatement = new Map<number, ReportOperation[]>();
  report.operations.forEach((op, i) => {
    const st = statementOf[i];
    if (!st) return;
    byStatement.set(st.index, [...(byStatement.get(st.index) ?? []), op]);
    const o = run.observations.get(st.index);
    if (o) op.trace = o.trace;
  });
  const existing = (oid: number, kinds: Set<string>) => {
    const rel = run.baseline.relations.get(oid);
    return !!rel && kinds.has(rel.kind);
  };
  for (const [index, ops] of byStatement) {
    const o = run.observations.get(index);
    if (!o) continue;
    const on = (key: string) => { const named = ops.filter((op) => keyOf(op.table) === key); return named.length ? named : ops; };
    // (a) a write-blocking lock on an existing table, stronger than the statement's operations say
    for (const l of o.locks) {
      if (!blocksWrites(l.lock) || !existing(l.oid, TABLE_KINDS)) continue;
      const targets = on(l.key);
      const strongest = targets.reduce((a, b) => (rank(b.lock) > rank(a.lock) ? b : a));
      if (rank(l.lock) <= rank(strongest.lock)) continue;
      report.warnings.push(`line ${strongest.line}: the trace took ${l.lock} on ${l.relation}, stronger than the ${strongest.lock} the operation table says`);
      strongest.lock = l.lock;
    }
    // (b) a rewrite of an existing table no operation of the statement owns up to; TRUNCATE gives a table new, empty storage, which is no rewrite
    for (const r of o.rewrites) {
      if (!existing(r.oid, new Set(['r', 'm']))) continue;
      const targets = on(r.key);
      if (targets.some((op) => op.rewrite || op.type === 'TRUNCATE')) continue;
      for (const op of targets) {
        op.rewrite = true;
        op.classification = worseClass(op.classification, 'risky');
        op.riskLevel = 'HIGH';
        report.warnings.push(`line ${op.line}: the trace rewrote ${r.relation}, which the operation table says ${op.type.replace(/_/g, ' ')} does not: counted as a rewrite under ${op.lock}`);
      }
    }
  }
  // (c) what PostgreSQL rejects; once only, when the classifier already said so for that line with the same SQLSTATE
  if (run.error) {
    const [, line, sqlstate] = /^line (\d+),.*(\(SQLSTATE \w+\))$/s.exec(run.error) ?? [];
    if (!report.errors.some((e) => e.startsWith(`line ${line},`) && e.endsWith(sqlstate))) report.errors.push(run.error);
    report.isValid = false;
  }
  if (run.stopped) report.warnings.push(run.stopped);
  for (const op of report.operations) {
    report.classification = worseClass(report.classification, op.classification);
    report.riskLevel = worseRisk(report.riskLevel, op.riskLevel);
  }
}

/** Whether a statement must run outside a transaction block, by the classifier's rows for its operations. */
export function needsAutocommit(st: ParsedStatement, ops: ReportOperation[], pgVersion: number): boolean {
  if (st.kind === 'DoStmt') return false; // inside a DO block it fails whatever: PostgreSQL says so
  return ops.some((op) => op.type in OPERATIONS && ruleFor(op.type as OperationType, pgVersion).nonTransactional === true);
}

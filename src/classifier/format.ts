/**
 * The human-readable form of a report (`pgflip validate` without --json).
 */
import type { OperationTrace, ValidationReport } from './types';

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

const oneLine = (s: string, max = 60) => {
  const t = s.replace(/\s+/g, ' ');
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
};

/** One statement's trace in a line: locks, rewrites, validations, new objects, time. */
function traceLine(t: OperationTrace): string {
  const parts: string[] = [t.locks.length ? t.locks.map((l) => `${l.lock} on ${l.relation}`).join(', ') : t.autocommit ? 'locks not seen (outside a transaction block)' : 'no new locks'];
  if (t.rewrote.length) parts.push(`rewrote ${t.rewrote.join(', ')}`);
  if (t.validated.length) parts.push(`validated ${t.validated.join(', ')}`);
  if (t.created.length) parts.push(`created ${t.created.length > 6 ? `${t.created.slice(0, 6).join(', ')} and ${t.created.length - 6} more` : t.created.join(', ')}`);
  parts.push(`${t.ms} ms`);
  return parts.join('; ');
}

export function formatReport(r: ValidationReport): string {
  const out: string[] = [];
  out.push(`${r.file}: ${r.isValid ? 'valid' : 'INVALID'}, ${r.classification} (${r.riskLevel}), PostgreSQL ${r.pgVersion}`);
  if (r.operations.length) {
    const rows = [['LINE', 'OPERATION', 'CLASS', 'RISK', 'LOCK', 'TABLE', 'REASON']];
    for (const op of r.operations) {
      rows.push([String(op.line), op.type, op.classification, op.riskLevel, op.lock, op.table ? (op.column ? `${op.table}.${op.column}` : op.table) : '', op.reason]);
    }
    out.push(table(rows).split('\n').map((l) => `  ${l}`).join('\n'));
    if (r.operations.some((o) => o.trace)) {
      for (const op of r.operations) out.push(`  trace: line ${op.line} ${op.type}: ${op.trace ? traceLine(op.trace) : 'not run'}`);
    }
    const alternatives = r.operations.filter((o) => o.saferAlternative);
    for (const op of alternatives) out.push(`  line ${op.line}: safer: ${op.saferAlternative}`);
  } else {
    out.push('  no operations');
  }
  if (r.tables?.length) {
    for (const t of r.tables) out.push(`  size: ${t.table} ~${Math.max(0, Math.round(t.rowEstimate))} rows, ${t.bytes} bytes`);
  }
  if (r.mapping && (r.mapping.tables.length || r.mapping.newTables.length || r.mapping.droppedTables.length)) {
    out.push(`  mapping: ${oneLine(JSON.stringify(r.mapping), 200)}`);
  }
  for (const w of r.warnings) out.push(`  warning: ${w}`);
  for (const e of r.errors) out.push(`  error: ${e}`);
  return out.join('\n');
}

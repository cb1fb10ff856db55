/**
 * A migration file as the statements the controller executes, split by the
 * real PostgreSQL parser (libpg-query), with what decides how the file runs:
 * statements that cannot run inside a transaction block, and the file's own
 * transaction control.
 */
import { loadModule, parseSync } from 'libpg-query';

export interface SqlStatement {
  /** 1-based position in the file */
  index: number;
  /** text as written, without the trailing semicolon */
  sql: string;
  /** 1-based line and column of the statement's first token */
  line: number;
  column: number;
  /** parse node name, e.g. IndexStmt */
  kind: string;
  /** cannot run inside a transaction block (CONCURRENTLY, VACUUM, CREATE DATABASE…) */
  noTransaction: boolean;
  /** BEGIN / COMMIT / ROLLBACK written in the file */
  txControl?: 'begin' | 'commit' | 'rollback' | 'other';
}

export type RunMode = 'transaction' | 'statements' | 'own-transactions';

export class SqlSyntaxError extends Error {
  constructor(readonly file: string, readonly line: number, readonly column: number, message: string) {
    super(`${file}:${line}:${column}: ${message}`);
    this.name = 'SqlSyntaxError';
  }
}

let ready: Promise<void> | undefined;
export const parserReady = (): Promise<void> => (ready ??= loadModule());

const NO_TX_KINDS = new Set(['VacuumStmt', 'CreatedbStmt', 'DropdbStmt', 'AlterSystemStmt', 'CreateTableSpaceStmt', 'DropTableSpaceStmt']);

type Node = Record<string, unknown>;

function needsNoTransaction(kind: string, node: Node): boolean {
  if (NO_TX_KINDS.has(kind)) return true;
  if ((kind === 'IndexStmt' || kind === 'DropStmt') && node.concurrent === true) return true;
  if (kind === 'ReindexStmt') {
    const params = (node.params as Array<{ DefElem?: { defname?: string } }> | undefined) ?? [];
    // REINDEX … CONCURRENTLY, and REINDEX SYSTEM/DATABASE, refuse transaction blocks
    return params.some((p) => p.DefElem?.defname === 'concurrently') || /SYSTEM|DATABASE/.test(String(node.kind));
  }
  if (kind === 'ClusterStmt') return !node.relation; // CLUSTER without a table
  if (kind === 'AlterTableStmt') return JSON.stringify(node.cmds ?? []).includes('"concurrent":true'); // DETACH PARTITION … CONCURRENTLY
  if (kind === 'AlterEnumStmt') return false; // ADD VALUE runs in a transaction since PostgreSQL 12
  return false;
}

function lineCol(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let last = -1;
  for (let i = 0; i < offset; i++) if (text.charCodeAt(i) === 10) { line++; last = i; }
  return { line, column: offset - last };
}

/** Offset of the first token after whitespace and comments. */
function skipTrivia(text: string, from: number): number {
  let i = from;
  for (;;) {
    while (i < text.length && /\s/.test(text[i])) i++;
    if (text.startsWith('--', i)) { const nl = text.indexOf('\n', i); i = nl < 0 ? text.length : nl + 1; continue; }
    if (text.startsWith('/*', i)) { const end = text.indexOf('*/', i + 2); i = end < 0 ? text.length : end + 2; continue; }
    return i;
  }
}

export async function parseStatements(sql: string, file = '<sql>'): Promise<SqlStatement[]> {
  await parserReady();
  let tree: { stmts?: Array<{ stmt: Node; stmt_location?: number; stmt_len?: number }> };
  try {
    tree = parseSync(sql) as typeof tree;
  } catch (err) {
    const e = err as Error & { sqlDetails?: { cursorPosition?: number } };
    // cursorPosition is a byte offset into the UTF-8 text
    const byteOffset = e.sqlDetails?.cursorPosition ?? 0;
    const offset = Buffer.from(sql, 'utf8').subarray(0, byteOffset).toString('utf8').length;
    const { line, column } = lineCol(sql, offset);
    throw new SqlSyntaxError(file, line, column, e.message);
  }
  // libpg-query reports byte offsets: slice the UTF-8 bytes, not the JS string
  const bytes = Buffer.from(sql, 'utf8');
  const out: SqlStatement[] = [];
  for (const raw of tree.stmts ?? []) {
    const start = raw.stmt_location ?? 0;
    const end = raw.stmt_len ? start + raw.stmt_len : bytes.length;
    const prefix = bytes.subarray(0, start).toString('utf8');
    const chunk = bytes.subarray(start, end).toString('utf8');
    const lead = skipTrivia(chunk, 0);
    const text = chunk.slice(lead).replace(/;\s*$/, '').trim();
    if (!text) continue;
    const { line, column } = lineCol(sql, prefix.length + lead);
    const kind = Object.keys(raw.stmt)[0];
    const node = (raw.stmt[kind] ?? {}) as Node;
    const st: SqlStatement = { index: out.length + 1, sql: text, line, column, kind, noTransaction: needsNoTransaction(kind, node) };
    if (kind === 'TransactionStmt') {
      const k = String(node.kind);
      st.txControl = /BEGIN|START/.test(k) ? 'begin' : /COMMIT/.test(k) ? 'commit' : /ROLLBACK/.test(k) && !/TO/.test(k) ? 'rollback' : 'other';
    }
    out.push(st);
  }
  return out;
}

/** How a file runs (docs/controller.md). */
export function runMode(statements: SqlStatement[]): RunMode {
  if (statements.some((s) => s.txControl === 'begin' || s.txControl === 'commit')) return 'own-transactions';
  if (statements.some((s) => s.noTransaction)) return 'statements';
  return 'transaction';
}

export const describeStatement = (s: SqlStatement): string =>
  `statement ${s.index} (line ${s.line}: ${s.sql.length > 80 ? `${s.sql.slice(0, 77)}...` : s.sql})`;

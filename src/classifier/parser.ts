/**
 * The real PostgreSQL parser (libpg-query, WASM, PostgreSQL 18 grammar) and positions.
 *
 * libpg-query reports statement and node locations as UTF-8 byte offsets, but error cursor
 * positions as string (character) offsets; SourceText converts both to 1-based line:column.
 */
// eslint-disable-next-line @typescript-eslint/no-var-requires
import * as lq from 'libpg-query';

let loading: Promise<void> | undefined;
let loaded = false;

/** Loads the WASM parser once per process. */
export function loadParser(): Promise<void> {
  loading ??= lq.loadModule().then(() => { loaded = true; });
  return loading;
}

function assertLoaded(): void {
  if (!loaded) throw new Error('the SQL parser is not loaded: await loadParser() first');
}

export interface Position { line: number; column: number }

export class SourceText {
  readonly buf: Buffer;
  private readonly lineStarts: number[] = [0];

  constructor(readonly sql: string) {
    this.buf = Buffer.from(sql, 'utf8');
    for (let i = 0; i < this.buf.length; i++) if (this.buf[i] === 0x0a) this.lineStarts.push(i + 1);
  }

  /** byte offset → line and (character) column, both 1-based */
  at(byte: number): Position {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid] <= byte) lo = mid; else hi = mid - 1;
    }
    const column = this.buf.toString('utf8', this.lineStarts[lo], byte).length + 1;
    return { line: lo + 1, column };
  }

  /** character offset (as in JS strings and parser error cursors) → line and column */
  atChar(index: number): Position {
    return this.at(Buffer.byteLength(this.sql.slice(0, index), 'utf8'));
  }

  slice(start: number, end: number): string { return this.buf.toString('utf8', start, end); }
}

/** One top-level statement: its AST node, where it is, and its text. */
export interface ParsedStatement {
  index: number;
  /** the node's type, e.g. AlterTableStmt */
  kind: string;
  /** the node's fields */
  node: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** byte range of the statement without leading comments/whitespace */
  start: number;
  end: number;
  text: string;
  line: number;
}

export interface ParseFailure { message: string; line: number; column: number }

export interface ParsedFile {
  source: SourceText;
  statements: ParsedStatement[];
  failures: ParseFailure[];
}

/** Skips whitespace and comments (nested block comments too) from a byte offset. */
function skipTrivia(buf: Buffer, i: number, end: number): number {
  while (i < end) {
    const c = buf[i];
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c) { i++; continue; }
    if (c === 0x2d && buf[i + 1] === 0x2d) { // -- comment
      while (i < end && buf[i] !== 0x0a) i++;
      continue;
    }
    if (c === 0x2f && buf[i + 1] === 0x2a) { // /* comment */
      let depth = 1;
      i += 2;
      while (i < end && depth > 0) {
        if (buf[i] === 0x2f && buf[i + 1] === 0x2a) { depth++; i += 2; } else if (buf[i] === 0x2a && buf[i + 1] === 0x2f) { depth--; i += 2; } else i++;
      }
      continue;
    }
    break;
  }
  return i;
}

function toStatements(source: SourceText, raw: Array<{ stmt?: Record<string, unknown>; stmt_location?: number; stmt_len?: number }>, base: number, firstIndex: number): ParsedStatement[] {
  const out: ParsedStatement[] = [];
  for (const r of raw) {
    if (!r.stmt) continue;
    const from = base + (r.stmt_location ?? 0);
    const to = r.stmt_len ? from + r.stmt_len : source.buf.length;
    const start = skipTrivia(source.buf, from, to);
    let end = to;
    while (end > start && /\s|;/.test(String.fromCharCode(source.buf[end - 1]))) end--;
    const kind = Object.keys(r.stmt)[0];
    out.push({ index: firstIndex + out.length, kind, node: (r.stmt as Record<string, unknown>)[kind], start, end, text: source.slice(start, end), line: source.at(start).line });
  }
  return out;
}

function errorPosition(err: unknown): number | undefined {
  const d = (err as { sqlDetails?: { cursorPosition?: number } }).sqlDetails;
  return typeof d?.cursorPosition === 'number' ? d.cursorPosition : undefined;
}

/**
 * Parses a whole file. When PostgreSQL rejects it, the file is split at top-level semicolons
 * (with the real scanner, so strings and dollar quotes are respected) and every piece is parsed
 * on its own: the report then names every bad statement and still classifies the good ones.
 */
export function parseFile(sql: string): ParsedFile {
  assertLoaded();
  const source = new SourceText(sql);
  if (sql.trim() === '') return { source, statements: [], failures: [] }; // the parser rejects an empty query
  try {
    return { source, statements: toStatements(source, lq.parseSync(sql).stmts ?? [], 0, 0), failures: [] };
  } catch (err) {
    const whole = failure(source, err, 0, sql);
    let tokens: lq.ScanToken[];
    try { tokens = lq.scanSync(sql).tokens; } catch { return { source, statements: [], failures: [whole] }; }
    const statements: ParsedStatement[] = [];
    const failures: ParseFailure[] = [];
    let pieceStart = 0;
    const cuts = tokens.filter((t) => t.text === ';').map((t) => t.end);
    if (cuts.length === 0 || cuts[cuts.length - 1] < source.buf.length) cuts.push(source.buf.length);
    for (const cut of cuts) {
      const piece = source.slice(pieceStart, cut);
      try {
        statements.push(...toStatements(source, lq.parseSync(piece).stmts ?? [], pieceStart, statements.length));
      } catch (e) {
        failures.push(failure(source, e, pieceStart, piece));
      }
      pieceStart = cut;
    }
    if (failures.length === 0) failures.push(whole); // the pieces parse but the whole does not (e.g. BEGIN ATOMIC)
    return { source, statements, failures };
  }
}

function failure(source: SourceText, err: unknown, pieceStartByte: number, piece: string): ParseFailure {
  const cursor = errorPosition(err);
  const byte = pieceStartByte + (cursor === undefined ? 0 : Buffer.byteLength(piece.slice(0, cursor), 'utf8'));
  const pos = source.at(Math.min(byte, source.buf.length));
  return { message: (err as Error).message, ...pos };
}

/** Parses one statement string (EXECUTE strings, bodies of DO blocks); throws on syntax errors. */
export function parseSql(sql: string): Array<{ kind: string; node: any; location: number }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  assertLoaded();
  return (lq.parseSync(sql).stmts ?? []).filter((s) => s.stmt).map((s) => {
    const kind = Object.keys(s.stmt as object)[0];
    return { kind, node: (s.stmt as Record<string, unknown>)[kind], location: s.stmt_location ?? 0 };
  });
}

/** Parses a PL/pgSQL function body; throws on syntax errors. */
export function parsePlpgsqlBody(body: string): unknown {
  assertLoaded();
  let tag = 'pgflip';
  while (body.includes(`$${tag}$`)) tag += '_';
  return lq.parsePlPgSQLSync(`CREATE FUNCTION pgflip_do_block() RETURNS void LANGUAGE plpgsql AS $${tag}$${body}$${tag}$`);
}

/** Tokens of a piece of SQL (byte offsets), for recovering the text of expressions. */
export function scanTokens(sql: string): lq.ScanToken[] {
  assertLoaded();
  return lq.scanSync(sql).tokens;
}

/**
 * Just enough SQL reading to track session state: split a query string into
 * statements and recognise the few statement kinds that change what a session
 * carries (SET/RESET, PREPARE/DEALLOCATE, LISTEN/UNLISTEN, DISCARD) or what
 * pins it to its backend (temporary objects, WITH HOLD cursors, session
 * advisory locks, PREPARE TRANSACTION). It runs only when the cheap byte check
 * `mayChangeState` says a query could be one of these.
 */

export type PinReason = 'temporary table' | 'WITH HOLD cursor' | 'session advisory lock' | 'prepared transaction';

export type Action =
  | { k: 'set'; name: string; sql: string }
  | { k: 'reset'; name: string }
  | { k: 'resetAll' }
  | { k: 'discardAll' }
  | { k: 'discardTemp' }
  | { k: 'prepare'; name: string; sql: string }
  | { k: 'deallocate'; name: string }
  | { k: 'deallocateAll' }
  | { k: 'listen'; channel: string }
  | { k: 'unlisten'; channel: string }
  | { k: 'unlistenAll' }
  | { k: 'pin'; reason: PinReason; cursor?: string }
  | { k: 'closeCursor'; name: string }
  | { k: 'closeAllCursors' }
  | { k: 'advisoryUnlockAll' };

/** Actions that follow the transaction (undone by ROLLBACK); the rest take effect at once. */
export const TRANSACTIONAL: ReadonlySet<Action['k']> = new Set(['set', 'reset', 'resetAll', 'listen', 'unlisten', 'unlistenAll']);

/** The first word of the CommandComplete tag each action's statement produces. */
export function expectedTag(a: Action): string {
  switch (a.k) {
    case 'set': return 'SET';
    case 'reset': case 'resetAll': return 'RESET';
    case 'discardAll': case 'discardTemp': return 'DISCARD';
    case 'prepare': return 'PREPARE';
    case 'deallocate': case 'deallocateAll': return 'DEALLOCATE';
    case 'listen': return 'LISTEN';
    case 'unlisten': case 'unlistenAll': return 'UNLISTEN';
    case 'pin':
      if (a.reason === 'temporary table') return 'CREATE';
      if (a.reason === 'WITH HOLD cursor') return 'DECLARE';
      if (a.reason === 'prepared transaction') return 'PREPARE';
      return 'SELECT';
    case 'closeCursor': case 'closeAllCursors': return 'CLOSE';
    case 'advisoryUnlockAll': return 'SELECT';
  }
}

// Leading keywords that can change tracked state, as upper-case ASCII.
const KEYWORDS = ['SET', 'RESET', 'PREPARE', 'DEALLOCATE', 'LISTEN', 'UNLISTEN', 'DISCARD', 'CREATE', 'DECLARE', 'CLOSE'];
const KEYWORD_BYTES = KEYWORDS.map((k) => Buffer.from(k, 'latin1'));
const ADVISORY_LC = Buffer.from('advisory_', 'latin1');
const ADVISORY_UC = Buffer.from('ADVISORY_', 'latin1');

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x0c;

/**
 * Cheap test on the raw query bytes (no string is built): true when the text
 * starts with a keyword above or a comment, mentions advisory locks, or holds
 * more than one statement. Only then is the text analysed.
 */
export function mayChangeState(buf: Buffer, start: number, end: number): boolean {
  let p = start;
  while (p < end && isSpace(buf[p])) p++;
  if (p >= end) return false;
  const c0 = buf[p];
  if (c0 === 0x2d /* - */ || c0 === 0x2f /* / */ || c0 === 0x28 /* ( */) return true;
  let q = p;
  while (q < end && ((buf[q] | 0x20) >= 0x61 && (buf[q] | 0x20) <= 0x7a)) q++;
  const len = q - p;
  for (let i = 0; i < KEYWORD_BYTES.length; i++) {
    const kw = KEYWORD_BYTES[i];
    if (kw.length !== len) continue;
    let j = 0;
    while (j < len && (buf[p + j] & 0xdf) === kw[j]) j++;
    if (j === len) return true;
  }
  if (buf.indexOf(ADVISORY_LC, p) >= 0 && buf.indexOf(ADVISORY_LC, p) < end) return true;
  const u = buf.indexOf(ADVISORY_UC, p);
  if (u >= 0 && u < end) return true;
  const semi = buf.indexOf(0x3b /* ; */, p);
  if (semi >= 0 && semi < end) {
    for (let r = semi + 1; r < end; r++) if (!isSpace(buf[r]) && buf[r] !== 0) return true;
  }
  return false;
}

interface Token { t: 'word' | 'ident' | 'str' | 'punct' | 'other'; v: string }

/** Split a query string into statements, honouring quotes, dollar quotes and comments. */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  const n = sql.length;
  let depth = 0; // parentheses: a ';' inside (e.g. CREATE RULE) does not end a statement
  while (i < n) {
    const c = sql[i];
    if (c === "'" || c === '"') {
      // E'...' strings take backslash escapes
      const escapes = c === "'" && /[eE]/.test(sql[i - 1] ?? '') && !/[A-Za-z0-9_]/.test(sql[i - 2] ?? '');
      i++;
      while (i < n) {
        if (escapes && sql[i] === '\\') { i += 2; continue; }
        if (sql[i] === c) { if (sql[i + 1] === c) { i += 2; continue; } break; }
        i++;
      }
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n') i++;
    } else if (c === '/' && sql[i + 1] === '*') {
      let level = 1; i += 2;
      while (i < n && level > 0) { if (sql[i] === '/' && sql[i + 1] === '*') { level++; i += 2; } else if (sql[i] === '*' && sql[i + 1] === '/') { level--; i += 2; } else i++; }
    } else if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
      if (m && !/[A-Za-z0-9_]/.test(sql[i - 1] ?? '')) {
        const close = sql.indexOf(m[0], i + m[0].length);
        i = close < 0 ? n : close + m[0].length;
      } else i++;
    } else if (c === '(') { depth++; i++; } else if (c === ')') { depth = Math.max(0, depth - 1); i++; } else if (c === ';' && depth === 0) {
      const s = sql.slice(start, i).trim();
      if (s && stripComments(s)) out.push(s);
      start = ++i;
    } else i++;
  }
  const s = sql.slice(start).replace(/\0+$/, '').trim();
  if (s && stripComments(s)) out.push(s);
  return out;
}

function stripComments(s: string): string {
  return tokenize(s).length ? s : '';
}

/** Tokens of one statement (comments dropped). */
export function tokenize(sql: string): Token[] {
  const toks: Token[] = [];
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql[i];
    if (/\s/.test(c)) { i++; continue; }
    if (c === '-' && sql[i + 1] === '-') { while (i < n && sql[i] !== '\n') i++; continue; }
    if (c === '/' && sql[i + 1] === '*') {
      let level = 1; i += 2;
      while (i < n && level > 0) { if (sql[i] === '/' && sql[i + 1] === '*') { level++; i += 2; } else if (sql[i] === '*' && sql[i + 1] === '/') { level--; i += 2; } else i++; }
      continue;
    }
    if (c === '"') {
      let j = i + 1; let v = '';
      while (j < n) { if (sql[j] === '"') { if (sql[j + 1] === '"') { v += '"'; j += 2; continue; } break; } v += sql[j++]; }
      toks.push({ t: 'ident', v }); i = j + 1; continue;
    }
    if (c === "'") {
      let j = i + 1; let v = '';
      while (j < n) { if (sql[j] === "'") { if (sql[j + 1] === "'") { v += "'"; j += 2; continue; } break; } v += sql[j++]; }
      toks.push({ t: 'str', v }); i = j + 1; continue;
    }
    const w = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(sql.slice(i, i + 256));
    if (w) { toks.push({ t: 'word', v: w[0] }); i += w[0].length; continue; }
    toks.push({ t: /[=,.;()]/.test(c) ? 'punct' : 'other', v: c }); i++;
  }
  return toks;
}

const kw = (t: Token | undefined, ...words: string[]): boolean => t?.t === 'word' && words.includes(t.v.toUpperCase());
/** Identifier as PostgreSQL folds it: unquoted → lower case. */
const ident = (t: Token | undefined): string | undefined => (t?.t === 'word' ? t.v.toLowerCase() : t?.t === 'ident' ? t.v : undefined);

/** Dotted name starting at tokens[i] (e.g. myapp.tenant); returns name and next index. */
function dottedName(toks: Token[], i: number): [string | undefined, number] {
  let name = ident(toks[i]);
  if (name === undefined) return [undefined, i];
  i++;
  while (toks[i]?.v === '.' && ident(toks[i + 1]) !== undefined) { name += '.' + ident(toks[i + 1]); i += 2; }
  return [name, i];
}

const SPECIAL_SET: Array<[string[], string]> = [
  [['TIME', 'ZONE'], 'timezone'],
  [['SCHEMA'], 'search_path'],
  [['NAMES'], 'client_encoding'],
  [['ROLE'], 'role'],
  [['SESSION', 'AUTHORIZATION'], 'session_authorization'],
  [['XML', 'OPTION'], 'xmloption'],
];

function specialName(toks: Token[], i: number): [string, number] | undefined {
  for (const [words, name] of SPECIAL_SET) {
    if (words.every((w, j) => kw(toks[i + j], w))) return [name, i + words.length];
  }
  return undefined;
}

/** What one statement does to tracked state, if anything. */
export function analyzeStatement(stmt: string): Action | undefined {
  const toks = tokenize(stmt);
  const first = toks[0];
  if (!first || first.t !== 'word') return undefined;
  const head = first.v.toUpperCase();
  switch (head) {
    case 'SET': {
      let i = 1;
      if (kw(toks[i], 'LOCAL') || kw(toks[i], 'TRANSACTION', 'CONSTRAINTS')) return undefined;
      if (kw(toks[i], 'SESSION') && kw(toks[i + 1], 'CHARACTERISTICS')) return { k: 'set', name: 'session characteristics', sql: stmt };
      if (kw(toks[i], 'SESSION') && !kw(toks[i + 1], 'AUTHORIZATION')) i++;
      const special = specialName(toks, i);
      if (special) return { k: 'set', name: special[0], sql: stmt };
      const [name] = dottedName(toks, i);
      return name === undefined ? undefined : { k: 'set', name, sql: stmt };
    }
    case 'RESET': {
      if (kw(toks[1], 'ALL')) return { k: 'resetAll' };
      const special = specialName(toks, 1);
      if (special) return { k: 'reset', name: special[0] };
      const [name] = dottedName(toks, 1);
      return name === undefined ? undefined : { k: 'reset', name };
    }
    case 'DISCARD':
      if (kw(toks[1], 'ALL')) return { k: 'discardAll' };
      if (kw(toks[1], 'TEMP', 'TEMPORARY')) return { k: 'discardTemp' };
      return undefined;
    case 'PREPARE': {
      if (kw(toks[1], 'TRANSACTION')) return { k: 'pin', reason: 'prepared transaction' };
      const name = ident(toks[1]);
      return name === undefined ? undefined : { k: 'prepare', name, sql: stmt };
    }
    case 'DEALLOCATE': {
      const i = kw(toks[1], 'PREPARE') ? 2 : 1;
      if (kw(toks[i], 'ALL')) return { k: 'deallocateAll' };
      const name = ident(toks[i]);
      return name === undefined ? undefined : { k: 'deallocate', name };
    }
    case 'LISTEN': {
      const channel = ident(toks[1]);
      return channel === undefined ? undefined : { k: 'listen', channel };
    }
    case 'UNLISTEN': {
      if (toks[1]?.v === '*') return { k: 'unlistenAll' };
      const channel = ident(toks[1]);
      return channel === undefined ? undefined : { k: 'unlisten', channel };
    }
    case 'CREATE': {
      let i = 1;
      if (kw(toks[i], 'OR') && kw(toks[i + 1], 'REPLACE')) i += 2;
      if (kw(toks[i], 'GLOBAL', 'LOCAL')) i++;
      if (kw(toks[i], 'TEMP', 'TEMPORARY')) return { k: 'pin', reason: 'temporary table' };
      if (kw(toks[i], 'TABLE', 'VIEW', 'SEQUENCE') && (toks[i + 1]?.v.toLowerCase() === 'pg_temp' && toks[i + 2]?.v === '.')) return { k: 'pin', reason: 'temporary table' };
      return undefined;
    }
    case 'DECLARE': {
      const name = ident(toks[1]);
      // WITH HOLD appears before FOR: DECLARE name [BINARY] [ASENSITIVE|INSENSITIVE] [[NO] SCROLL] CURSOR [{WITH|WITHOUT} HOLD] FOR query
      for (let i = 2; i < toks.length && !kw(toks[i], 'FOR'); i++) {
        if (kw(toks[i], 'WITH') && kw(toks[i + 1], 'HOLD')) return { k: 'pin', reason: 'WITH HOLD cursor', cursor: name };
      }
      return undefined;
    }
    case 'CLOSE': {
      if (kw(toks[1], 'ALL')) return { k: 'closeAllCursors' };
      const name = ident(toks[1]);
      return name === undefined ? undefined : { k: 'closeCursor', name };
    }
    default: {
      const lc = stmt.toLowerCase();
      if (lc.includes('advisory_unlock_all')) return { k: 'advisoryUnlockAll' };
      // pg_advisory_lock, pg_try_advisory_lock, *_shared; not the _xact_ variants
      if (/advisory_lock/.test(lc)) return { k: 'pin', reason: 'session advisory lock' };
      return undefined;
    }
  }
}

/** Each statement of a query string with what it does (undefined: nothing tracked). */
export function analyzeQuery(sql: string): Array<Action | undefined> {
  return splitStatements(sql).map(analyzeStatement);
}

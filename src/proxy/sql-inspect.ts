/**
 * Just enough SQL reading to track session state: split a query string into
 * statements and recognise the few statement kinds that change what a session
 * carries (SET/RESET, PREPARE/DEALLOCATE, LISTEN/UNLISTEN, DISCARD) or what
 * pins it to its backend (temporary objects, WITH HOLD cursors, session
 * advisory locks, PREPARE TRANSACTION). It runs only when the cheap byte check
 * `mayChangeState` says a query could be one of these.
 */

export const PIN_REASONS = ['temporary table', 'WITH HOLD cursor', 'session advisory lock', 'prepared transaction', 'settings changed in a way pgflip cannot follow'] as const;
export type PinReason = (typeof PIN_REASONS)[number];

/** How set_config() got an argument: a literal, or the text of bound parameter $n. */
export type Arg = { lit: string } | { param: number };

/** One advisory-lock function call of a plain `SELECT f(…), …` */
export type AdvisoryCall = 'lock' | 'try' | 'unlock' | 'unlockAll';

export type TxOp =
  | { op: 'begin' }
  | { op: 'commit'; chain: boolean }
  | { op: 'rollback'; chain: boolean }
  | { op: 'savepoint'; name: string }
  | { op: 'release'; name: string }
  | { op: 'rollbackTo'; name: string }
  | { op: 'prepareTransaction' }
  | { op: 'finishPrepared' };

export type Action =
  /** session-level SET (SET ROLE and SET SESSION AUTHORIZATION included); `name` folded to lower case */
  | { k: 'set'; name: string; sql: string }
  /** SET LOCAL: no trace after the transaction, but a custom name becomes a placeholder */
  | { k: 'setLocal'; name: string }
  | { k: 'reset'; name: string }
  | { k: 'resetAll' }
  /** `SELECT set_config(name, value, is_local)[, …]` with literal or parameter arguments */
  | { k: 'setConfig'; calls: Array<{ name: Arg; value: Arg; local: Arg }> }
  | { k: 'discardAll' }
  | { k: 'discardTemp' }
  | { k: 'prepare'; name: string; sql: string }
  | { k: 'deallocate'; name: string }
  | { k: 'deallocateAll' }
  | { k: 'listen'; channel: string }
  | { k: 'unlisten'; channel: string }
  | { k: 'unlistenAll' }
  | { k: 'tempObject' }
  | { k: 'holdCursor'; name: string }
  | { k: 'closeCursor'; name: string }
  | { k: 'closeAllCursors' }
  /** a plain SELECT of advisory lock functions: counted from its result row */
  | { k: 'advisory'; calls: AdvisoryCall[] }
  /** a statement whose effect on what the tracker follows cannot be read from its text */
  | { k: 'untracked'; what: 'settings' | 'advisory' }
  | { k: 'tx'; tx: TxOp }
  /** several effects of one statement (SET SESSION CHARACTERISTICS) */
  | { k: 'multi'; actions: Action[] };

/** GUCs that RESET ALL leaves alone (GUC_NO_RESET_ALL; the transaction_* ones never outlive a transaction). */
export const NO_RESET_ALL: ReadonlySet<string> = new Set(['role', 'session_authorization']);

/** A custom (extension or placeholder) GUC: its name has a dot. */
export const isCustomGuc = (name: string): boolean => name.includes('.');

// Leading keywords that can change tracked state, as upper-case ASCII.
const KEYWORDS = ['SET', 'RESET', 'PREPARE', 'DEALLOCATE', 'LISTEN', 'UNLISTEN', 'DISCARD', 'CREATE', 'DECLARE', 'CLOSE', 'DO'];
/** transaction control: it matters only while a transaction carries effects the tracker follows */
const TX_KEYWORDS = ['BEGIN', 'START', 'COMMIT', 'END', 'ROLLBACK', 'ABORT', 'SAVEPOINT', 'RELEASE'];
const KEYWORD_BYTES = KEYWORDS.map((k) => Buffer.from(k, 'latin1'));
const TX_KEYWORD_BYTES = TX_KEYWORDS.map((k) => Buffer.from(k, 'latin1'));


const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x0c;

/**
 * Cheap test on the raw query bytes (no string is built): true when the text
 * starts with a keyword above (transaction control too when `txControl`) or a comment, mentions advisory locks,
 * set_config or INTO (SELECT … INTO TEMP), or holds more than one statement.
 * Only then is the text analysed.
 */
export function mayChangeState(buf: Buffer, start: number, end: number, txControl = false): boolean {
  let p = start;
  while (p < end && isSpace(buf[p])) p++;
  if (p >= end) return false;
  const c0 = buf[p];
  if (c0 === 0x2d /* - */ || c0 === 0x2f /* / */ || c0 === 0x28 /* ( */) return true;
  let q = p;
  while (q < end && ((buf[q] | 0x20) >= 0x61 && (buf[q] | 0x20) <= 0x7a)) q++;
  const len = q - p;
  if (startsWithKeyword(buf, p, len, KEYWORD_BYTES) || (txControl && startsWithKeyword(buf, p, len, TX_KEYWORD_BYTES))) return true;
  if (mentionsTrigger(buf, p, end)) return true;
  const semi = buf.indexOf(0x3b /* ; */, p);
  if (semi >= 0 && semi < end) {
    for (let r = semi + 1; r < end; r++) if (!isSpace(buf[r]) && buf[r] !== 0) return true;
  }
  return false;
}

function startsWithKeyword(buf: Buffer, p: number, len: number, words: Buffer[]): boolean {
  for (let i = 0; i < words.length; i++) {
    const kw = words[i];
    if (kw.length !== len) continue;
    let j = 0;
    while (j < len && (buf[p + j] & 0xdf) === kw[j]) j++;
    if (j === len) return true;
  }
  return false;
}

const lower = (c: number): number => c | 0x20;
/** buf[at…] spells `word` (lower-case ASCII), ignoring case */
function spells(buf: Buffer, at: number, end: number, word: string, from = 0): boolean {
  if (at < from || at + word.length > end) return false;
  for (let i = 0; i < word.length; i++) if (lower(buf[at + i]) !== word.charCodeAt(i)) return false;
  return true;
}

/**
 * One pass over the bytes for what can change tracked state in a statement
 * that starts with any keyword: `advisory_…` and `set_config` (both found at
 * their underscore), and `INTO TEMP…` (SELECT … INTO TEMP t).
 */
function mentionsTrigger(buf: Buffer, p: number, end: number): boolean {
  for (let i = p; i < end; i++) {
    const c = buf[i];
    if (c === 0x5f /* _ */) {
      if (spells(buf, i - 8, end, 'advisory', p) || (spells(buf, i - 3, end, 'set', p) && spells(buf, i + 1, end, 'config'))) return true;
    } else if ((c | 0x20) === 0x69 /* i */ && spells(buf, i, end, 'into') && i + 4 < end && isSpace(buf[i + 4])) {
      let j = i + 5;
      while (j < end && isSpace(buf[j])) j++;
      if (spells(buf, j, end, 'temp')) return true;
    }
  }
  return false;
}

/** `str` is a plain '…' literal; `estr` any other string form (E'…', dollar quotes); `param` is $n */
interface Token { t: 'word' | 'ident' | 'str' | 'estr' | 'param' | 'num' | 'punct' | 'other'; v: string }

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
    if (c === "'" || ((c === 'E' || c === 'e') && sql[i + 1] === "'")) {
      // E'…' takes backslash escapes: kept as an opaque string (its value is not needed exactly)
      const escapes = c !== "'";
      let j = escapes ? i + 2 : i + 1; let v = '';
      while (j < n) {
        if (escapes && sql[j] === '\\') { v += sql.slice(j, j + 2); j += 2; continue; }
        if (sql[j] === "'") { if (sql[j + 1] === "'") { v += "'"; j += 2; continue; } break; }
        v += sql[j++];
      }
      toks.push({ t: escapes ? 'estr' : 'str', v }); i = j + 1; continue;
    }
    if (c === '$') {
      const m = /^\$(\d+)/.exec(sql.slice(i, i + 16));
      if (m) { toks.push({ t: 'param', v: m[1] }); i += m[0].length; continue; }
      const d = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
      if (d) {
        const close = sql.indexOf(d[0], i + d[0].length);
        const to = close < 0 ? n : close;
        toks.push({ t: 'estr', v: sql.slice(i + d[0].length, to) });
        i = close < 0 ? n : close + d[0].length;
        continue;
      }
    }
    const w = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(sql.slice(i, i + 256));
    if (w) { toks.push({ t: 'word', v: w[0] }); i += w[0].length; continue; }
    const num = /^[0-9][0-9.eE+-]*/.exec(sql.slice(i, i + 64));
    if (num) { toks.push({ t: 'num', v: num[0] }); i += num[0].length; continue; }
    toks.push({ t: /[=,.;()]/.test(c) ? 'punct' : 'other', v: c }); i++;
  }
  return toks;
}

const kw = (t: Token | undefined, ...words: string[]): boolean => t?.t === 'word' && words.includes(t.v.toUpperCase());
/** Identifier as PostgreSQL folds it: unquoted → lower case. */
const ident = (t: Token | undefined): string | undefined => (t?.t === 'word' ? t.v.toLowerCase() : t?.t === 'ident' ? t.v : undefined);
/** GUC names are looked up case-insensitively, quoted or not */
const gucPart = (t: Token | undefined): string | undefined => (t?.t === 'word' || t?.t === 'ident' ? t.v.toLowerCase() : undefined);

/** Dotted GUC name starting at tokens[i] (e.g. myapp.tenant), folded; returns name and next index. */
function gucName(toks: Token[], i: number): [string | undefined, number] {
  let name = gucPart(toks[i]);
  if (name === undefined) return [undefined, i];
  i++;
  while (toks[i]?.v === '.' && gucPart(toks[i + 1]) !== undefined) { name += '.' + gucPart(toks[i + 1]); i += 2; }
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

/** The value part of SET name {TO|=} value is DEFAULT: the same as RESET */
function setsDefault(toks: Token[], i: number): boolean {
  if (toks[i]?.v === '=' || kw(toks[i], 'TO')) i++;
  return kw(toks[i], 'DEFAULT') && toks.length === i + 1;
}

/** SET SESSION CHARACTERISTICS AS TRANSACTION modes: one SET per default_transaction_* GUC */
function sessionCharacteristics(toks: Token[], i: number): Action | undefined {
  const sets: Action[] = [];
  const set = (name: string, value: string) => sets.push({ k: 'set', name, sql: `SET ${name} = '${value}'` });
  while (i < toks.length) {
    if (toks[i].v === ',') { i++; continue; }
    if (kw(toks[i], 'ISOLATION') && kw(toks[i + 1], 'LEVEL')) {
      i += 2;
      if (kw(toks[i], 'SERIALIZABLE')) { set('default_transaction_isolation', 'serializable'); i++; } else if (kw(toks[i], 'REPEATABLE') && kw(toks[i + 1], 'READ')) { set('default_transaction_isolation', 'repeatable read'); i += 2; } else if (kw(toks[i], 'READ') && kw(toks[i + 1], 'COMMITTED')) { set('default_transaction_isolation', 'read committed'); i += 2; } else if (kw(toks[i], 'READ') && kw(toks[i + 1], 'UNCOMMITTED')) { set('default_transaction_isolation', 'read uncommitted'); i += 2; } else return undefined;
    } else if (kw(toks[i], 'READ') && kw(toks[i + 1], 'ONLY')) { set('default_transaction_read_only', 'on'); i += 2; } else if (kw(toks[i], 'READ') && kw(toks[i + 1], 'WRITE')) { set('default_transaction_read_only', 'off'); i += 2; } else if (kw(toks[i], 'DEFERRABLE')) { set('default_transaction_deferrable', 'on'); i++; } else if (kw(toks[i], 'NOT') && kw(toks[i + 1], 'DEFERRABLE')) { set('default_transaction_deferrable', 'off'); i += 2; } else return undefined;
  }
  return sets.length === 1 ? sets[0] : sets.length ? { k: 'multi', actions: sets } : undefined;
}

function setStatement(stmt: string, toks: Token[]): Action | undefined {
  let i = 1;
  if (kw(toks[i], 'TRANSACTION', 'CONSTRAINTS')) return undefined;
  const local = kw(toks[i], 'LOCAL');
  if (kw(toks[i], 'SESSION') && kw(toks[i + 1], 'CHARACTERISTICS')) {
    return kw(toks[i + 2], 'AS') && kw(toks[i + 3], 'TRANSACTION') ? sessionCharacteristics(toks, i + 4) : undefined;
  }
  if (local || (kw(toks[i], 'SESSION') && !kw(toks[i + 1], 'AUTHORIZATION'))) i++;
  const special = specialName(toks, i);
  const [name, next] = special ?? gucName(toks, i);
  if (name === undefined) return undefined;
  if (local) return { k: 'setLocal', name };
  if (name === 'session_authorization' && kw(toks[next], 'DEFAULT') && toks.length === next + 1) return { k: 'reset', name };
  if (setsDefault(toks, next)) return { k: 'reset', name };
  return { k: 'set', name, sql: stmt };
}

function resetStatement(toks: Token[]): Action | undefined {
  if (kw(toks[1], 'ALL')) return { k: 'resetAll' };
  const special = specialName(toks, 1);
  if (special) return { k: 'reset', name: special[0] };
  const [name] = gucName(toks, 1);
  return name === undefined ? undefined : { k: 'reset', name };
}

/** BEGIN, COMMIT, ROLLBACK [TO], SAVEPOINT, RELEASE … */
function txStatement(head: string, toks: Token[]): Action | undefined {
  const tx = (t: TxOp): Action => ({ k: 'tx', tx: t });
  let i = 1;
  const skipWork = () => { if (kw(toks[i], 'WORK', 'TRANSACTION')) i++; };
  const chain = (): boolean => {
    for (let j = i; j < toks.length; j++) if (kw(toks[j], 'AND')) return !kw(toks[j + 1], 'NO') && kw(toks[j + 1], 'CHAIN');
    return false;
  };
  switch (head) {
    case 'BEGIN': return tx({ op: 'begin' });
    case 'START': return kw(toks[1], 'TRANSACTION') ? tx({ op: 'begin' }) : undefined;
    case 'COMMIT':
      if (kw(toks[1], 'PREPARED')) return tx({ op: 'finishPrepared' });
      skipWork(); return tx({ op: 'commit', chain: chain() });
    case 'END': skipWork(); return tx({ op: 'commit', chain: chain() });
    case 'ABORT': skipWork(); return tx({ op: 'rollback', chain: chain() });
    case 'ROLLBACK': {
      if (kw(toks[1], 'PREPARED')) return tx({ op: 'finishPrepared' });
      skipWork();
      if (kw(toks[i], 'TO')) {
        i++;
        if (kw(toks[i], 'SAVEPOINT')) i++;
        const name = ident(toks[i]);
        return name === undefined ? undefined : tx({ op: 'rollbackTo', name });
      }
      return tx({ op: 'rollback', chain: chain() });
    }
    case 'SAVEPOINT': {
      const name = ident(toks[1]);
      return name === undefined ? undefined : tx({ op: 'savepoint', name });
    }
    case 'RELEASE': {
      if (kw(toks[i], 'SAVEPOINT')) i++;
      const name = ident(toks[i]);
      return name === undefined ? undefined : tx({ op: 'release', name });
    }
  }
  return undefined;
}

const BOOL_WORDS: Record<string, string> = { TRUE: 'true', FALSE: 'false' };

/** A set_config argument: a plain literal (a boolean keyword for the third), or $n */
function configArg(t: Token | undefined, third: boolean): Arg | undefined {
  if (!t) return undefined;
  if (t.t === 'str') return { lit: t.v };
  if (t.t === 'param') return { param: Number(t.v) };
  if (third && t.t === 'word' && BOOL_WORDS[t.v.toUpperCase()]) return { lit: BOOL_WORDS[t.v.toUpperCase()] };
  return undefined;
}

/** SELECT call(args)[ AS alias][, …] with nothing else: the calls, each from its name to its closing parenthesis */
function plainSelectCalls(toks: Token[]): Array<{ fn: string; args: Token[][] }> | undefined {
  if (!kw(toks[0], 'SELECT')) return undefined;
  const calls: Array<{ fn: string; args: Token[][] }> = [];
  let i = 1;
  for (;;) {
    if (kw(toks[i], 'pg_catalog') && toks[i + 1]?.v === '.') i += 2;
    const fn = toks[i];
    if (!fn || fn.t !== 'word' || toks[i + 1]?.v !== '(') return undefined;
    i += 2;
    const args: Token[][] = [[]];
    let depth = 0;
    for (;;) {
      const t = toks[i++];
      if (!t) return undefined;
      if (t.v === '(') depth++;
      else if (t.v === ')') { if (depth === 0) break; depth--; } else if (t.v === ',' && depth === 0) { args.push([]); continue; }
      args[args.length - 1].push(t);
    }
    calls.push({ fn: fn.v.toLowerCase(), args: args.length === 1 && args[0].length === 0 ? [] : args });
    if (kw(toks[i], 'AS')) i += 2; else if (toks[i]?.t === 'word' || toks[i]?.t === 'ident') i++;
    if (i >= toks.length) return calls;
    if (toks[i].v !== ',') return undefined;
    i++;
  }
}

const ADVISORY_FN: Record<string, AdvisoryCall> = {
  pg_advisory_lock: 'lock', pg_advisory_lock_shared: 'lock',
  pg_try_advisory_lock: 'try', pg_try_advisory_lock_shared: 'try',
  pg_advisory_unlock: 'unlock', pg_advisory_unlock_shared: 'unlock',
  pg_advisory_unlock_all: 'unlockAll',
};

/** set_config and session advisory locks inside any other statement */
function functionEffects(stmt: string, toks: Token[]): Action | undefined {
  const lc = stmt.toLowerCase();
  const configs = lc.includes('set_config');
  // the _xact_ variants end with their transaction: nothing to follow
  const advisory = /pg_(try_)?advisory_(un)?lock(_shared|_all)?\s*\(/.test(lc);
  if (!configs && !advisory) return undefined;
  const calls = plainSelectCalls(toks);
  if (configs && !advisory && calls?.every((c) => c.fn === 'set_config' && c.args.length === 3)) {
    const parsed = calls.map((c) => ({
      name: c.args[0].length === 1 ? configArg(c.args[0][0], false) : undefined,
      value: c.args[1].length === 1 ? configArg(c.args[1][0], false) : undefined,
      local: c.args[2].length === 1 ? configArg(c.args[2][0], true) : undefined,
    }));
    if (parsed.every((p) => p.name && p.value && p.local)) return { k: 'setConfig', calls: parsed as Array<{ name: Arg; value: Arg; local: Arg }> };
  }
  if (advisory && !configs && calls?.every((c) => ADVISORY_FN[c.fn] !== undefined)) {
    return { k: 'advisory', calls: calls.map((c) => ADVISORY_FN[c.fn]) };
  }
  if (configs && advisory) return { k: 'multi', actions: [{ k: 'untracked', what: 'settings' }, { k: 'untracked', what: 'advisory' }] };
  return { k: 'untracked', what: configs ? 'settings' : 'advisory' };
}

/** What one statement does to tracked state, if anything. */
export function analyzeStatement(stmt: string): Action | undefined {
  const toks = tokenize(stmt);
  const first = toks[0];
  if (!first || first.t !== 'word') return undefined;
  const head = first.v.toUpperCase();
  switch (head) {
    case 'SET': return setStatement(stmt, toks);
    case 'RESET': return resetStatement(toks);
    case 'BEGIN': case 'START': case 'COMMIT': case 'END': case 'ABORT': case 'ROLLBACK': case 'SAVEPOINT': case 'RELEASE':
      return txStatement(head, toks);
    case 'DO':
      // SET or set_config inside a DO block: its effect cannot be read from here
      return toks.some((t) => (t.t === 'estr' || t.t === 'str') && /\b(set|reset)\b|set_config/i.test(t.v)) ? { k: 'untracked', what: 'settings' } : undefined;
    case 'DISCARD':
      if (kw(toks[1], 'ALL')) return { k: 'discardAll' };
      if (kw(toks[1], 'TEMP', 'TEMPORARY')) return { k: 'discardTemp' };
      return undefined;
    case 'PREPARE': {
      if (kw(toks[1], 'TRANSACTION')) return { k: 'tx', tx: { op: 'prepareTransaction' } };
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
      const temp = kw(toks[i], 'TEMP', 'TEMPORARY')
        || (kw(toks[i], 'TABLE', 'VIEW', 'SEQUENCE') && toks[i + 1]?.v.toLowerCase() === 'pg_temp' && toks[i + 2]?.v === '.');
      if (!temp) return functionEffects(stmt, toks);
      // ON COMMIT DROP: gone with its transaction
      for (let j = i; j < toks.length - 2; j++) if (kw(toks[j], 'ON') && kw(toks[j + 1], 'COMMIT') && kw(toks[j + 2], 'DROP')) return undefined;
      return { k: 'tempObject' };
    }
    case 'DECLARE': {
      const name = ident(toks[1]);
      // WITH HOLD appears before FOR: DECLARE name [BINARY] [ASENSITIVE|INSENSITIVE] [[NO] SCROLL] CURSOR [{WITH|WITHOUT} HOLD] FOR query
      for (let i = 2; i < toks.length && !kw(toks[i], 'FOR'); i++) {
        if (kw(toks[i], 'WITH') && kw(toks[i + 1], 'HOLD') && name !== undefined) return { k: 'holdCursor', name };
      }
      return undefined;
    }
    case 'CLOSE': {
      if (kw(toks[1], 'ALL')) return { k: 'closeAllCursors' };
      const name = ident(toks[1]);
      return name === undefined ? undefined : { k: 'closeCursor', name };
    }
    case 'SELECT': case 'WITH': {
      // SELECT … INTO [TEMP|TEMPORARY] [TABLE] name
      for (let j = 1; j < toks.length - 1; j++) if (kw(toks[j], 'INTO') && kw(toks[j + 1], 'TEMP', 'TEMPORARY')) return { k: 'tempObject' };
      return functionEffects(stmt, toks);
    }
    default:
      return functionEffects(stmt, toks);
  }
}

/** Each statement of a query string with what it does (undefined: nothing tracked). */
export function analyzeQuery(sql: string): Array<Action | undefined> {
  return splitStatements(sql).map(analyzeStatement);
}

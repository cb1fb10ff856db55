/**
 * Follows what a session has changed, exactly as PostgreSQL leaves it at the
 * session's transaction boundaries (`carried`), and what pins it to its
 * backend. The relay calls in here only for the messages that matter.
 *
 * Every effect is applied once the server confirmed the statement (its
 * CommandComplete, ParseComplete, CloseComplete). Transactional effects (SET,
 * RESET, set_config, LISTEN/UNLISTEN, temporary tables, WITH HOLD cursors) go
 * into a stack of transaction levels: a savepoint opens a level, RELEASE
 * merges it into its parent, ROLLBACK TO drops it, COMMIT folds everything
 * into `carried`, ROLLBACK or an error in an implicit transaction drops it.
 * PREPARE/DEALLOCATE, Parse/Close, CLOSE, DISCARD, advisory locks and GUC
 * placeholders are not transactional and apply at once.
 *
 * Statements and their completions are matched by position: each batch (a
 * Query, or the extended-protocol messages up to a Sync) counts its
 * executions on the way in and its completions (CommandComplete,
 * EmptyQueryResponse, PortalSuspended) on the way out.
 */
import { Carried, CarriedStatement, copyCarried, emptyCarried, setConfigSql } from './carried';
import { TargetKind, TxStatusByte } from './protocol/codes';
import { escapeIdentifier } from 'pg';
import { Action, AdvisoryCall, analyzeQuery, analyzeStatement, Arg, isCustomGuc, mayChangeState, NO_RESET_ALL, PinReason, TxOp } from './sql-inspect';

export type TxStatus = 'I' | 'T' | 'E';
export type { CarriedStatement } from './carried';

/** Inspect at most this much of a query's text (the leading statement is what usually matters). */
export const MAX_INSPECTED_QUERY = 1024 * 1024;

/** An effect that follows its transaction */
type TxEffect =
  | { k: 'set'; name: string; sql: string }
  | { k: 'reset'; name: string }
  | { k: 'resetAll' }
  | { k: 'listen'; channel: string }
  | { k: 'unlisten'; channel: string }
  | { k: 'unlistenAll' }
  | { k: 'tempObject' }
  | { k: 'holdCursor'; name: string };

interface Level { savepoint?: string; effects: TxEffect[] }

/** A tracked execution: the `ordinal`-th statement of batch `batch` (the index of the ReadyForQuery that ends it). */
interface Entry { batch: number; ordinal: number; action: Action; rows?: number[] }

/** A pending ParseComplete / CloseComplete that changes state when it arrives. */
interface Ack { op: 'parse' | 'closeStatement'; name: string; message?: Buffer; superseded?: boolean }

const TRUE_BYTE = 0x74; // 't' in a text bool
const BINARY_TRUE = 0x01;

export class SessionState {
  /** startup parameters the client sent (user and database included) */
  readonly startupParams: Map<string, string>;
  /** what a new backend must be given (as of the last transaction boundary) */
  readonly carried: Carried = emptyCarried();
  txStatus: TxStatus = 'I';

  // ---- what pins the session to its backend
  tempObjects = false;
  readonly holdCursors = new Set<string>();
  /** session-level advisory locks held (each lock call counts; unlock returns true only for a held one) */
  advisoryLocks = 0;
  /** an advisory lock call whose result could not be read (a lock may be held) */
  advisoryUncounted = false;
  preparedTransactions = 0;
  /** settings changed in a way that cannot be read from the statement (set_config on computed arguments) */
  settingsUntracked = false;

  /** Query/Sync/FunctionCall messages sent, and ReadyForQuery received: equal when nothing is in flight. */
  sent = 0;
  done = 0;
  /** state changes since the session started (a flip compares it with what it replayed) */
  version = 0;
  /** when the current transaction began (performance.now() at the ReadyForQuery that left `I`) */
  txSince = 0;

  /** true while CommandComplete tags (and EmptyQuery, PortalSuspended) must be read */
  wantCompletions = false;
  /** true while DataRows must be read (an advisory lock call's result) */
  wantRows = false;
  /** true while Bind and Execute must be read (a tracked statement may run through the extended protocol) */
  wantBind = false;

  /** called when DEALLOCATE ALL or DISCARD ALL completed: the backend has no prepared statement left */
  onStatementsDropped: (() => void) | null = null;
  /** LISTEN, UNLISTEN (or DISCARD ALL) committed: counted, and the session told (transaction mode listens through a shared connection) */
  listenRuns = 0;
  onListens: (() => void) | null = null;

  private readonly entries: Entry[] = [];
  /** executions sent in the batch being written (client side) and completions received in the batch being answered */
  private clientOrdinal = 0;
  private serverOrdinal = 0;
  private readonly ackBatch: number[] = [];
  private readonly ackOp: Array<Ack | null> = [];
  /** statements (by name, '' = unnamed) whose execution changes tracked state / controls the transaction */
  private readonly stmtActions = new Map<string, Action>();
  private readonly txStmts = new Map<string, Action>();
  /** statements whose Close is not confirmed yet */
  private readonly closing = new Set<string>();
  /** portal → what executing it does */
  private readonly portals = new Map<string, Action | null>();
  /** transaction levels; empty outside a transaction with effects */
  private levels: Level[] = [];
  private block: 'none' | 'implicit' | 'explicit' = 'none';
  private failed = false;
  /** the client sent a statement with a transactional effect: until its transaction ends, every transaction control statement matters */
  private watching = false;
  /** the sent-index of the last Query (tells a COPY started by a simple Query from one started by Execute) */
  private lastQuery = -1;
  /** COPY FROM STDIN in progress: the server ignores Sync until CopyDone/CopyFail */
  private copyIn = false;

  constructor(startupParams: Map<string, string>) {
    this.startupParams = startupParams;
  }

  /** nothing in flight and not in a transaction: a safe point to move the session */
  get idle(): boolean { return this.txStatus === 'I' && this.sent === this.done && !this.copyIn; }

  /** COPY FROM STDIN in progress (its statement has no request counted while the server ignores Sync) */
  get inCopy(): boolean { return this.copyIn; }

  // compatibility views of `carried`
  get settings(): Map<string, string> { return this.carried.settings; }
  get prepared(): Map<string, CarriedStatement> { return this.carried.prepared; }
  get listens(): Set<string> { return this.carried.listens; }

  /** a copy of what a new backend must be given, for a replay */
  snapshotCarried(): Carried { return copyCarried(this.carried); }

  pinnedReasons(): PinReason[] {
    const r: PinReason[] = [];
    if (this.tempObjects) r.push('temporary table');
    if (this.holdCursors.size) r.push('WITH HOLD cursor');
    if (this.advisoryLocks > 0 || this.advisoryUncounted) r.push('session advisory lock');
    if (this.preparedTransactions > 0) r.push('prepared transaction');
    if (this.settingsUntracked) r.push('settings changed in a way pgflip cannot follow');
    return r;
  }

  // ---- client → server -------------------------------------------------

  /** Query ('Q'); body = SQL text + NUL */
  onQuery(buf: Buffer, start: number, end: number): void {
    const batch = this.sent++;
    this.lastQuery = batch;
    this.clientOrdinal = 0;
    // a simple Query drops the unnamed statement, also one still being parsed
    if (this.carried.unnamed) { this.carried.unnamed = null; this.version++; }
    for (const a of this.ackOp) if (a?.op === 'parse' && a.name === '') a.superseded = true;
    this.stmtActions.delete('');
    this.txStmts.delete('');
    this.updateWantBind();
    if (!mayChangeState(buf, start, end, this.watching)) return;
    const actions = analyzeQuery(buf.toString('utf8', start, Math.min(end, start + MAX_INSPECTED_QUERY)));
    for (let i = 0; i < actions.length; i++) {
      const a = actions[i];
      if (a) this.push({ batch, ordinal: i, action: a });
    }
  }

  /** Sync ('S'): one ReadyForQuery — except for a Sync PostgreSQL ignores during COPY FROM STDIN */
  onSync(): void {
    if (this.copyIn) return;
    this.sent++;
    this.clientOrdinal = 0;
  }

  /** FunctionCall ('F'): its own ReadyForQuery */
  onFunctionCall(): void {
    this.sent++;
    this.clientOrdinal = 0;
  }

  /** CopyDone ('c') or CopyFail ('f') from the client: the server reads Sync again */
  onCopyEnd(): void { this.copyIn = false; }

  /** Parse ('P'); body = name NUL query NUL int16 n int32[n] */
  onParse(buf: Buffer, start: number, end: number): void {
    const z = buf.indexOf(0, start);
    if (z < 0 || z >= end) return;
    const q = z + 1;
    const qz = buf.indexOf(0, q);
    const name = z > start ? buf.toString('utf8', start, z) : '';
    // a named statement that exists already (and is not being closed) makes the Parse fail: it keeps its meaning
    if (name === '' || !this.carried.prepared.has(name) || this.closing.has(name)) {
      this.stmtActions.delete(name);
      this.txStmts.delete(name);
      // an unnamed transaction control statement matters only while effects are being followed (it runs in this batch)
      if (qz > 0 && qz < end && mayChangeState(buf, q, qz, name !== '' || this.watching)) {
        const a = analyzeStatement(buf.toString('utf8', q, Math.min(qz, q + MAX_INSPECTED_QUERY)));
        if (a) (a.k === 'tx' ? this.txStmts : this.stmtActions).set(name, a);
      }
      this.updateWantBind();
    }
    // kept as sent (5-byte header included) for a replay
    this.pushAck({ op: 'parse', name, message: Buffer.from(buf.subarray(start - 5, end)) });
  }

  /** Close ('C'); body = 'S'|'P' name NUL */
  onClose(buf: Buffer, start: number, end: number): void {
    if (buf[start] === TargetKind.Statement && end - start >= 2) {
      const name = buf.toString('utf8', start + 1, end - 1);
      this.pushAck({ op: 'closeStatement', name });
      this.closing.add(name);
      this.stmtActions.delete(name);
      this.txStmts.delete(name);
      this.updateWantBind();
    } else this.pushAck(null);
  }

  private pushAck(a: Ack | null): void {
    this.ackBatch.push(this.sent);
    this.ackOp.push(a);
  }

  /** Bind ('B'); body = portal NUL statement NUL formats params …; only called while wantBind */
  onBind(buf: Buffer, start: number, end: number): void {
    const z = buf.indexOf(0, start);
    if (z < 0 || z >= end) return;
    const sz = buf.indexOf(0, z + 1);
    if (sz < 0 || sz >= end) return;
    const portal = z > start ? buf.toString('utf8', start, z) : '';
    const stmt = sz > z + 1 ? buf.toString('utf8', z + 1, sz) : '';
    let a = this.stmtActions.get(stmt) ?? (this.watching ? this.txStmts.get(stmt) : undefined) ?? null;
    if (a?.k === 'setConfig' && a.calls.some((c) => 'param' in c.name || 'param' in c.value || 'param' in c.local)) {
      a = bindSetConfig(a, bindParams(buf, sz + 1, end));
    }
    this.portals.set(portal, a);
  }

  /** Execute ('E'); body = portal NUL int32. Counted always; the portal is read while wantBind. */
  onExecute(buf: Buffer, start: number, end: number): void {
    const ordinal = this.clientOrdinal++;
    if (!this.wantBind || end <= start) return;
    const z = buf.indexOf(0, start);
    if (z < 0 || z >= end) return;
    const a = this.portals.get(z > start ? buf.toString('utf8', start, z) : '');
    if (a) this.push({ batch: this.sent, ordinal, action: a });
  }

  private push(e: Entry): void {
    this.entries.push(e);
    if (hasTxEffect(e.action)) this.watching = true;
    if (needsRows(e.action)) this.wantRows = true;
    this.wantCompletions = true;
    this.updateWantBind();
  }

  private updateWantBind(): void {
    this.wantBind = this.stmtActions.size > 0 || (this.watching && this.txStmts.size > 0);
  }

  // ---- server → client -------------------------------------------------

  onParseComplete(): void { this.ack(); }
  onCloseComplete(): void { this.ack(); }

  private ack(): void {
    if (this.ackBatch.length === 0) return;
    this.ackBatch.shift();
    const a = this.ackOp.shift();
    if (!a) return;
    if (a.op === 'parse') {
      if (a.name === '') { if (!a.superseded) this.carried.unnamed = a.message!; } else this.carried.prepared.set(a.name, { via: 'parse', message: a.message! });
    } else if (a.name === '') this.carried.unnamed = null;
    else { this.carried.prepared.delete(a.name); this.closing.delete(a.name); }
    this.version++;
  }

  /** CopyInResponse ('G'): COPY FROM STDIN has begun; Syncs the client sent after the statement that started it are ignored */
  onCopyIn(): void {
    this.copyIn = true;
    // every request before this statement's batch is answered; a simple Query keeps its own ReadyForQuery
    const ignoredFrom = this.lastQuery === this.done ? this.done + 1 : this.done;
    if (this.sent > ignoredFrom) this.sent = ignoredFrom;
  }

  /**
   * A statement's completion: CommandComplete (`tag` = its body), or
   * EmptyQueryResponse / PortalSuspended (`tag` undefined). Counted always;
   * tags are read while wantCompletions.
   */
  onCompletion(buf: Buffer | undefined, start: number, end: number, suspended = false): void {
    const ordinal = this.serverOrdinal++;
    if (!this.wantCompletions) return;
    const e = this.headFor(ordinal);
    if (!e) return;
    this.entries.shift();
    const tag = buf ? buf.toString('latin1', start, end - 1) : '';
    if (suspended) {
      // the portal ran up to its row limit; an advisory call has been evaluated
      if (e.action.k === 'advisory') this.applyAdvisory(e);
    } else this.complete(e, tag);
    this.updateWants();
  }

  /** DataRow ('D') while wantRows: the result of an advisory lock call */
  onDataRow(buf: Buffer, start: number, end: number): void {
    const e = this.headFor(this.serverOrdinal);
    if (!e || e.action.k !== 'advisory') return;
    const n = buf.readInt16BE(start);
    const values: number[] = [];
    let p = start + 2;
    for (let i = 0; i < n && p + 4 <= end; i++) {
      const len = buf.readInt32BE(p);
      p += 4;
      values.push(len === 1 && (buf[p] === TRUE_BYTE || buf[p] === BINARY_TRUE) ? 1 : 0);
      if (len > 0) p += len;
    }
    e.rows = values;
  }

  /** the tracked entry of the statement now completing, dropping any left from an earlier batch */
  private headFor(ordinal: number): Entry | undefined {
    while (this.entries.length) {
      const e = this.entries[0];
      if (e.batch < this.done || (e.batch === this.done && e.ordinal < ordinal)) { this.entries.shift(); continue; }
      return e.batch === this.done && e.ordinal === ordinal ? e : undefined;
    }
    return undefined;
  }

  /** ErrorResponse: the statement at the current position failed; the rest of the batch is skipped */
  onError(sqlstate = ''): void {
    const e = this.headFor(this.serverOrdinal);
    // a single call that failed took no lock; of several, those before the failing one did (and stay) —
    // unless the statement never ran (25P02: the transaction had failed already)
    if (e?.action.k === 'advisory' && e.action.calls.length > 1 && sqlstate !== '25P02') this.advisoryUncounted = true;
    while (this.entries.length && this.entries[0].batch <= this.done) this.entries.shift();
    if (this.block === 'explicit') this.failed = true;
    else if (this.levels.length) { this.levels = []; this.block = 'none'; }
    this.updateWants();
  }

  /** ReadyForQuery ('Z'); status byte */
  onReadyForQuery(status: number): void {
    const batch = this.done++;
    this.serverOrdinal = 0;
    if (this.done > this.sent) this.sent = this.done; // a request the tracker did not count (never expected): resynchronise
    if (this.txStatus === 'I' && status !== TxStatusByte.Idle) this.txSince = performance.now();
    this.txStatus = status === TxStatusByte.InTransaction ? 'T' : status === TxStatusByte.Failed ? 'E' : 'I';
    // whatever the server skipped after an error is dropped with its batch
    while (this.ackBatch.length && this.ackBatch[0] <= batch) { const a = this.ackOp.shift(); this.ackBatch.shift(); if (a?.op === 'closeStatement') this.closing.delete(a.name); }
    while (this.entries.length && this.entries[0].batch <= batch) this.entries.shift();
    if (this.txStatus === 'I') {
      if (this.levels.length && !this.failed) this.commitLevels();
      this.levels = [];
      this.block = 'none';
      this.failed = false;
      if (this.sent === this.done && this.entries.length === 0) this.watching = false;
    } else {
      this.block = 'explicit';
      if (this.txStatus === 'E') this.failed = true;
    }
    this.updateWants();
    this.updateWantBind();
  }

  private updateWants(): void {
    this.wantCompletions = this.entries.length > 0;
    this.wantRows = this.entries.some((e) => needsRows(e.action));
  }

  // ---- applying a completed statement -------------------------------------

  private complete(e: Entry, tag: string): void {
    const a = e.action;
    if (a.k === 'multi') { for (const x of a.actions) this.completeAction(x, tag, e); return; }
    this.completeAction(a, tag, e);
  }

  private completeAction(a: Action, tag: string, e: Entry): void {
    switch (a.k) {
      case 'tx': return this.onTx(a.tx, tag);
      case 'set': this.touch(a.name); return this.effect({ k: 'set', name: a.name, sql: a.sql });
      case 'setLocal': this.touch(a.name); return;
      case 'reset': this.touch(a.name); return this.effect({ k: 'reset', name: a.name });
      case 'resetAll': return this.effect({ k: 'resetAll' });
      case 'setConfig':
        for (const c of a.calls) {
          if (!('lit' in c.name) || !('lit' in c.value) || !('lit' in c.local)) { this.settingsUntracked = true; continue; }
          const name = c.name.lit.toLowerCase();
          this.touch(name);
          if (!isLocal(c.local.lit)) this.effect({ k: 'set', name, sql: setConfigSql(c.name.lit, c.value.lit) });
        }
        return;
      case 'listen': return this.effect({ k: 'listen', channel: a.channel });
      case 'unlisten': return this.effect({ k: 'unlisten', channel: a.channel });
      case 'unlistenAll': return this.effect({ k: 'unlistenAll' });
      case 'tempObject': return this.effect({ k: 'tempObject' });
      case 'holdCursor': return this.effect({ k: 'holdCursor', name: a.name });
      case 'untracked':
        if (a.what === 'settings') this.settingsUntracked = true; else this.advisoryUncounted = true;
        return;
      case 'advisory': return this.applyAdvisory(e);
      // not transactional
      case 'prepare': this.carried.prepared.set(a.name, { via: 'sql', sql: a.sql }); break;
      case 'deallocate': this.carried.prepared.delete(a.name); this.stmtActions.delete(a.name); this.txStmts.delete(a.name); break;
      case 'deallocateAll': this.carried.prepared.clear(); this.clearNamedStatements(); this.onStatementsDropped?.(); break;
      case 'closeCursor': this.holdCursors.delete(a.name); break;
      case 'closeAllCursors': this.holdCursors.clear(); break;
      case 'discardTemp': this.tempObjects = false; break;
      case 'discardAll': {
        // SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; CLOSE ALL; UNLISTEN *; pg_advisory_unlock_all(); DISCARD TEMP …
        const c = this.carried;
        c.settings.clear(); c.prepared.clear(); c.listens.clear(); c.unnamed = null;
        this.clearNamedStatements();
        this.holdCursors.clear(); this.tempObjects = false;
        this.advisoryLocks = 0; this.advisoryUncounted = false; this.settingsUntracked = false;
        this.onStatementsDropped?.();
        this.listensRan();
        break;
      }
    }
    this.version++;
  }

  private clearNamedStatements(): void {
    for (const m of [this.stmtActions, this.txStmts]) for (const k of [...m.keys()]) if (k !== '') m.delete(k);
    this.updateWantBind();
  }

  private applyAdvisory(e: Entry): void {
    if (e.action.k !== 'advisory') return;
    const calls: AdvisoryCall[] = e.action.calls;
    // lock and unlock_all change the count whatever they return; try and unlock say in their result
    if (!e.rows && calls.some((c) => c === 'try' || c === 'unlock')) { this.advisoryUncounted = true; return; }
    calls.forEach((c, i) => {
      if (c === 'lock') this.advisoryLocks++;
      else if (c === 'try') this.advisoryLocks += e.rows![i] ?? 0;
      else if (c === 'unlock') this.advisoryLocks = Math.max(0, this.advisoryLocks - (e.rows![i] ?? 0));
      else { this.advisoryLocks = 0; this.advisoryUncounted = false; }
    });
    e.rows = undefined;
    this.version++;
  }

  /** a custom GUC named anywhere (even rolled back, even SET LOCAL) exists from then on as a placeholder */
  private touch(name: string): void {
    if (isCustomGuc(name) && !this.carried.placeholders.has(name)) { this.carried.placeholders.add(name); this.version++; }
  }

  private effect(x: TxEffect): void {
    if (this.levels.length === 0) {
      if (this.block === 'none') this.block = 'implicit';
      this.levels.push({ effects: [] });
    }
    this.levels[this.levels.length - 1].effects.push(x);
  }

  private onTx(t: TxOp, tag: string): void {
    const ended = (commit: boolean, chain: boolean) => {
      if (commit && !this.failed) this.commitLevels();
      this.levels = [];
      this.failed = false;
      this.block = chain ? 'explicit' : 'none';
    };
    switch (t.op) {
      case 'begin': this.block = 'explicit'; return;
      // COMMIT of a failed transaction answers ROLLBACK
      case 'commit': return ended(tag.startsWith('COMMIT'), t.chain);
      case 'rollback': return ended(false, t.chain);
      case 'prepareTransaction': ended(true, false); this.preparedTransactions++; this.version++; return;
      case 'finishPrepared': if (this.preparedTransactions > 0) { this.preparedTransactions--; this.version++; } return;
      case 'savepoint':
        if (this.levels.length === 0) this.levels.push({ effects: [] });
        this.levels.push({ savepoint: t.name, effects: [] });
        return;
      case 'release': {
        const i = this.findSavepoint(t.name);
        const merged = this.levels.slice(i < 0 ? 1 : i).flatMap((l) => l.effects);
        this.levels = this.levels.slice(0, i < 0 ? 1 : i);
        if (this.levels.length) this.levels[this.levels.length - 1].effects.push(...merged);
        return;
      }
      case 'rollbackTo': {
        const i = this.findSavepoint(t.name);
        this.failed = false;
        // a savepoint the tracker did not see was made before the first effect it follows: all of them go
        if (i < 0) { this.levels = this.levels.length ? [{ effects: [] }] : []; return; }
        this.levels = this.levels.slice(0, i + 1);
        this.levels[i].effects = [];
        return;
      }
    }
  }

  private findSavepoint(name: string): number {
    for (let i = this.levels.length - 1; i >= 1; i--) if (this.levels[i].savepoint === name) return i;
    return -1;
  }

  private commitLevels(): void {
    const c = this.carried;
    let listened = false;
    for (const l of this.levels) {
      for (const x of l.effects) {
        switch (x.k) {
          case 'set':
            c.settings.delete(x.name);
            c.settings.set(x.name, x.sql);
            if (x.name === 'session_authorization') c.settings.delete('role');
            break;
          case 'reset':
            c.settings.delete(x.name);
            if (x.name === 'session_authorization') c.settings.delete('role');
            break;
          case 'resetAll': for (const n of [...c.settings.keys()]) if (!NO_RESET_ALL.has(n)) c.settings.delete(n); break;
          case 'listen': c.listens.add(x.channel); listened = true; break;
          case 'unlisten': c.listens.delete(x.channel); listened = true; break;
          case 'unlistenAll': c.listens.clear(); listened = true; break;
          case 'tempObject': this.tempObjects = true; break;
          case 'holdCursor': this.holdCursors.add(x.name); break;
        }
      }
    }
    this.levels = [];
    this.version++;
    if (listened) this.listensRan();
  }

  /** a LISTEN of `channel` is part of the transaction in progress (its notifications may come before its commit is seen) */
  listenPending(channel: string): boolean {
    return this.levels.some((l) => l.effects.some((x) => x.k === 'listen' && x.channel === channel));
  }

  private listensRan(): void {
    this.listenRuns++;
    this.onListens?.();
  }

  // ---- views ---------------------------------------------------------------

  /** SQL that recreates settings, SQL-prepared statements and LISTENs on a fresh backend, in order. */
  replaySql(): string[] {
    const out = [...this.carried.settings.values()];
    for (const p of this.carried.prepared.values()) if (p.via === 'sql') out.push(p.sql);
    for (const ch of this.carried.listens) out.push(`LISTEN ${escapeIdentifier(ch)}`);
    return out;
  }

  /** Parse messages (as the client sent them) for protocol-level prepared statements. */
  replayParseMessages(): Buffer[] {
    const out: Buffer[] = [];
    for (const p of this.carried.prepared.values()) if (p.via === 'parse') out.push(p.message);
    return out;
  }

  snapshot(): {
    txStatus: TxStatus; settings: Record<string, string>; prepared: string[]; listens: string[]; pinned: PinReason[];
  } {
    return {
      txStatus: this.txStatus,
      settings: Object.fromEntries(this.carried.settings),
      prepared: [...this.carried.prepared.keys()],
      listens: [...this.carried.listens],
      pinned: this.pinnedReasons(),
    };
  }
}

const isLocal = (v: string): boolean => ['t', 'true', 'on', 'yes', '1', 'y'].includes(v.trim().toLowerCase());

function hasTxEffect(a: Action): boolean {
  switch (a.k) {
    case 'set': case 'reset': case 'resetAll': case 'setConfig': case 'listen': case 'unlisten': case 'unlistenAll':
    case 'tempObject': case 'holdCursor': return true;
    case 'multi': return a.actions.some(hasTxEffect);
    default: return false;
  }
}

const needsRows = (a: Action): boolean => a.k === 'advisory';

/** The parameter values of a Bind (text as sent; null for NULL or a value cut off by the inspect limit). */
function bindParams(buf: Buffer, p: number, end: number): Array<string | null> {
  if (p + 2 > end) return [];
  const nFormats = buf.readInt16BE(p);
  p += 2 + 2 * nFormats;
  if (p + 2 > end) return [];
  const n = buf.readInt16BE(p);
  p += 2;
  const out: Array<string | null> = [];
  for (let i = 0; i < n; i++) {
    if (p + 4 > end) { out.push(null); continue; }
    const len = buf.readInt32BE(p);
    p += 4;
    if (len < 0 || p + len > end) { out.push(null); if (len > 0) p += len; continue; }
    out.push(buf.toString('utf8', p, p + len));
    p += len;
  }
  return out;
}

function bindSetConfig(a: Extract<Action, { k: 'setConfig' }>, params: Array<string | null>): Action {
  const resolve = (x: Arg): Arg => {
    if ('lit' in x) return x;
    const v = params[x.param - 1];
    if (v === null || v === undefined) return x;
    // a binary bool is one byte 0 or 1
    return { lit: v === '\u0001' ? 't' : v === '\u0000' ? 'f' : v };
  };
  return { k: 'setConfig', calls: a.calls.map((c) => ({ name: resolve(c.name), value: resolve(c.value), local: resolve(c.local) })) };
}

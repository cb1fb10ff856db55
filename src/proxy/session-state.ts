/**
 * What a client session carries that a new backend would need to be given
 * again (the live switch replays it), and what pins it to its backend.
 *
 * The relay calls in here only for the messages that matter: Query, Parse,
 * Close, Sync/FunctionCall and (while a tracked statement is pending) Bind on
 * the way in; ReadyForQuery, ParseComplete/CloseComplete, ErrorResponse and
 * (while something is pending) CommandComplete on the way out. Every change is
 * applied only once the server confirmed the statement, and transactional ones
 * (SET, RESET, LISTEN, UNLISTEN) only once their transaction committed.
 */
import { escapeIdentifier } from 'pg';
import { TargetKind, TxStatusByte } from './protocol/codes';
import { Action, analyzeQuery, analyzeStatement, expectedTag, mayChangeState, PinReason, TRANSACTIONAL } from './sql-inspect';

export type TxStatus = 'I' | 'T' | 'E';

/** A named prepared statement: the Parse message as the client sent it, or the SQL PREPARE. */
export type PreparedStatement = { via: 'parse'; message: Buffer } | { via: 'sql'; sql: string };

/** Expected completion of a tracked statement. `batch` = index of the ReadyForQuery that ends it. */
interface Expectation { batch: number; actions: Array<Action | undefined>; next: number; simple: boolean }

/** A pending ParseComplete / CloseComplete that changes state when it arrives. */
interface Ack { op: 'parse' | 'closeStatement'; name: string; message?: Buffer }

/** Inspect at most this much of a query's text (the leading statement is what usually matters). */
export const MAX_INSPECTED_QUERY = 1024 * 1024;

export class SessionState {
  /** startup parameters the client sent (user and database included) */
  readonly startupParams: Map<string, string>;
  /** session-level settings: GUC name → the SET statement that made it */
  readonly settings = new Map<string, string>();
  readonly prepared = new Map<string, PreparedStatement>();
  readonly listens = new Set<string>();
  txStatus: TxStatus = 'I';

  // pinning state
  tempObjects = false;
  advisoryLocks = false;
  preparedTransaction = false;
  readonly holdCursors = new Set<string>();

  /** Query/Sync/FunctionCall messages sent, and ReadyForQuery received: equal when nothing is in flight. */
  sent = 0;
  done = 0;

  /** true while a CommandComplete must be looked at */
  wantCompletions = false;
  /** true while Bind must be looked at (some prepared statement's execution is tracked) */
  wantBind = false;

  private readonly expectations: Expectation[] = [];
  /**
   * Pending ParseComplete / CloseComplete in protocol order, as two parallel
   * queues so an unnamed Parse (every query of extended mode) costs a number
   * and a null, not an object.
   */
  private readonly ackBatch: number[] = [];
  private readonly ackOp: Array<Ack | null> = [];
  /** tracked statements by prepared-statement name ('' = unnamed) */
  private readonly stmtActions = new Map<string, Action>();
  /** confirmed transactional actions waiting for the end of their transaction */
  private staged: Action[] = [];
  private endTag = '';
  private errorInTx = false;

  constructor(startupParams: Map<string, string>) {
    this.startupParams = startupParams;
  }

  /** nothing in flight and not in a transaction: a safe point to move the session */
  get idle(): boolean { return this.txStatus === 'I' && this.sent === this.done; }

  pinnedReasons(): PinReason[] {
    const r: PinReason[] = [];
    if (this.tempObjects) r.push('temporary table');
    if (this.holdCursors.size) r.push('WITH HOLD cursor');
    if (this.advisoryLocks) r.push('session advisory lock');
    if (this.preparedTransaction) r.push('prepared transaction');
    return r;
  }

  // ---- client → server -------------------------------------------------

  /** Query ('Q'); body = SQL text + NUL */
  onQuery(buf: Buffer, start: number, end: number): void {
    const batch = this.sent++;
    if (!mayChangeState(buf, start, end)) return;
    const textEnd = Math.min(end, start + MAX_INSPECTED_QUERY);
    const actions = analyzeQuery(buf.toString('utf8', start, textEnd));
    if (actions.some((a) => a !== undefined)) {
      this.expectations.push({ batch, actions, next: 0, simple: true });
      this.wantCompletions = true;
    }
  }

  /** Sync ('S') or FunctionCall ('F'): each gets one ReadyForQuery */
  onSync(): void { this.sent++; }

  /** Parse ('P'); body = name NUL query NUL int16 n int32[n] */
  onParse(buf: Buffer, start: number, end: number): void {
    const z = buf.indexOf(0, start);
    if (z < 0 || z >= end) return;
    const q = z + 1;
    const qz = buf.indexOf(0, q);
    const named = z > start;
    const name = named ? buf.toString('utf8', start, z) : '';
    if (qz > 0 && qz < end && mayChangeState(buf, q, qz)) {
      const a = analyzeStatement(buf.toString('utf8', q, Math.min(qz, q + MAX_INSPECTED_QUERY)));
      if (a) { this.stmtActions.set(name, a); this.wantBind = true; } else this.forget(name);
    } else if (this.wantBind) this.forget(name);
    if (named) {
      // keep the exact message for replay (5-byte header included)
      const message = Buffer.from(buf.subarray(start - 5, end));
      this.pushAck({ op: 'parse', name, message });
    } else this.pushAck(null);
  }

  /** Close ('C'); body = 'S'|'P' name NUL */
  onClose(buf: Buffer, start: number, end: number): void {
    if (buf[start] === TargetKind.Statement && end - start > 2) {
      const name = buf.toString('utf8', start + 1, end - 1);
      this.pushAck({ op: 'closeStatement', name });
      if (this.wantBind) this.forget(name);
    } else this.pushAck(null);
  }

  private pushAck(a: Ack | null): void {
    this.ackBatch.push(this.sent);
    this.ackOp.push(a);
  }

  /** Bind ('B'); body = portal NUL statement NUL …; only called while wantBind */
  onBind(buf: Buffer, start: number, end: number): void {
    const z = buf.indexOf(0, start);
    if (z < 0 || z >= end) return;
    const sz = buf.indexOf(0, z + 1);
    if (sz < 0 || sz >= end) return;
    const action = this.stmtActions.get(buf.toString('utf8', z + 1, sz));
    if (action) {
      this.expectations.push({ batch: this.sent, actions: [action], next: 0, simple: false });
      this.wantCompletions = true;
    }
  }

  private forget(name: string): void {
    this.stmtActions.delete(name);
    this.wantBind = this.stmtActions.size > 0;
  }

  // ---- server → client -------------------------------------------------

  onParseComplete(): void { this.ack(); }
  onCloseComplete(): void { this.ack(); }

  private ack(): void {
    if (this.ackBatch.length === 0) return;
    this.ackBatch.shift();
    const a = this.ackOp.shift();
    if (!a) return;
    if (a.op === 'parse') this.prepared.set(a.name, { via: 'parse', message: a.message! });
    else if (a.op === 'closeStatement') this.prepared.delete(a.name);
  }

  /** CommandComplete ('C'); body = tag NUL. Only called while wantCompletions. */
  onCommandComplete(buf: Buffer, start: number, end: number): void {
    const tag = buf.toString('latin1', start, end - 1);
    const sp = tag.indexOf(' ');
    const word = sp < 0 ? tag : tag.slice(0, sp);
    if (word === 'COMMIT' || word === 'ROLLBACK') this.endTag = word;
    const e = this.expectations[0];
    if (!e || e.batch !== this.done) return;
    let action: Action | undefined;
    if (e.simple) {
      action = e.actions[e.next++];
      if (e.next >= e.actions.length) this.expectations.shift();
    } else {
      if (!e.actions[0] || expectedTag(e.actions[0]) !== word) return;
      action = e.actions[0];
      this.expectations.shift();
    }
    if (!action) return;
    if (TRANSACTIONAL.has(action.k)) this.staged.push(action);
    else this.apply(action);
    this.updateWant();
  }

  onError(): void {
    if (this.staged.length || this.wantCompletions) this.errorInTx = true;
  }

  /** ReadyForQuery ('Z'); status byte */
  onReadyForQuery(status: number): void {
    const batch = this.done++;
    this.txStatus = status === TxStatusByte.InTransaction ? 'T' : status === TxStatusByte.Failed ? 'E' : 'I';
    // whatever the server skipped after an error is dropped with its batch
    while (this.ackBatch.length && this.ackBatch[0] <= batch) { this.ackBatch.shift(); this.ackOp.shift(); }
    while (this.expectations.length && this.expectations[0].batch <= batch) this.expectations.shift();
    if (this.txStatus === 'I') {
      if (this.staged.length) {
        const committed = this.endTag === 'COMMIT' || (this.endTag === '' && !this.errorInTx);
        if (committed) for (const a of this.staged) this.apply(a);
        this.staged = [];
      }
      this.endTag = '';
      this.errorInTx = false;
    }
    this.updateWant();
  }

  private updateWant(): void {
    this.wantCompletions = this.expectations.length > 0 || this.staged.length > 0;
  }

  private apply(a: Action): void {
    switch (a.k) {
      case 'set': this.settings.delete(a.name); this.settings.set(a.name, a.sql); break;
      case 'reset': this.settings.delete(a.name); break;
      case 'resetAll': this.settings.clear(); break;
      case 'discardAll':
        this.settings.clear(); this.prepared.clear(); this.listens.clear();
        this.tempObjects = false; this.advisoryLocks = false; this.holdCursors.clear();
        break;
      case 'discardTemp': this.tempObjects = false; break;
      case 'prepare': this.prepared.set(a.name, { via: 'sql', sql: a.sql }); break;
      case 'deallocate': this.prepared.delete(a.name); break;
      case 'deallocateAll': this.prepared.clear(); break;
      case 'listen': this.listens.add(a.channel); break;
      case 'unlisten': this.listens.delete(a.channel); break;
      case 'unlistenAll': this.listens.clear(); break;
      case 'pin':
        if (a.reason === 'temporary table') this.tempObjects = true;
        else if (a.reason === 'session advisory lock') this.advisoryLocks = true;
        else if (a.reason === 'prepared transaction') this.preparedTransaction = true;
        else this.holdCursors.add(a.cursor ?? '');
        break;
      case 'closeCursor': this.holdCursors.delete(a.name); break;
      case 'closeAllCursors': this.holdCursors.clear(); break;
      case 'advisoryUnlockAll': this.advisoryLocks = false; break;
    }
  }

  // ---- replay ------------------------------------------------------------

  /** SQL that recreates settings, SQL-prepared statements and LISTENs on a fresh backend, in order. */
  replaySql(): string[] {
    const out = [...this.settings.values()];
    for (const p of this.prepared.values()) if (p.via === 'sql') out.push(p.sql);
    for (const ch of this.listens) out.push(`LISTEN ${escapeIdentifier(ch)}`);
    return out;
  }

  /** Parse messages (as the client sent them) for protocol-level prepared statements. */
  replayParseMessages(): Buffer[] {
    const out: Buffer[] = [];
    for (const p of this.prepared.values()) if (p.via === 'parse') out.push(p.message);
    return out;
  }

  snapshot(): {
    txStatus: TxStatus; settings: Record<string, string>; prepared: string[]; listens: string[]; pinned: PinReason[];
  } {
    return {
      txStatus: this.txStatus,
      settings: Object.fromEntries(this.settings),
      prepared: [...this.prepared.keys()],
      listens: [...this.listens],
      pinned: this.pinnedReasons(),
    };
  }
}

/**
 * The relay of a session in transaction mode: its protocol-level prepared
 * statements live on whichever server connection it leases, under names
 * that cannot collide (docs/proxy.md "Transaction pooling").
 *
 * A named statement is prepared on a connection under pgflip's name for its
 * text and parameter types (`pgflip_<n>`, one per distinct statement in this
 * process), so clients that prepare the same statement share it, and a name
 * one client chose never meets another client's. The client's Parse goes to
 * the server only when the leased connection lacks that statement (else
 * pgflip answers ParseComplete itself); a Bind or Describe of a statement the
 * connection lacks gets the Parse in front of it. Close of a named statement
 * is answered by pgflip (the connection keeps it for the next client); a
 * connection keeps at most proxy.maxPreparedStatements and closes the least
 * recently used. The unnamed statement a client relies on across
 * transactions is parsed again when another client used the connection since.
 *
 * Answers must reach the client in the order of its messages, so every
 * message that the server answers is queued with what answers it; pgflip's
 * own answers wait in that queue for their turn, and the server's answers to
 * pgflip's own messages are dropped. After an ErrorResponse the server skips
 * the rest up to Sync: so does the queue, undoing what those messages were
 * assumed to do.
 */
import { commandComplete, errorResponse, readyForQuery } from '../protocol/serializer';
import { serialize } from 'pg-protocol';
import { closeStatement } from '../carried';
import { MessageCode as M, TargetKind } from '../protocol/codes';
import type { PooledBackend } from './server-pool';
import type { TxStatus } from '../session-state';

const PARSE_COMPLETE = Buffer.from([M.ParseComplete, 0, 0, 0, 4]);
const CLOSE_COMPLETE = Buffer.from([M.CloseComplete, 0, 0, 0, 4]);

/**
 * A statement under pgflip's name: its Parse as sent to servers, and its epoch — raised when a
 * server said its plan must not change result type (0A000 after DDL), so that every
 * connection's copy is closed and parsed again before its next use.
 */
interface Statement { readonly name: string; readonly parse: Buffer; epoch: number }

const interned = new Map<string, Statement>();
/** pgflip's names of statements a server has parsed: a client's Parse of one needs no server to answer */
const parsedOnce = new Set<string>();
let serial = 0;
/** distinct statements remembered; beyond, the map starts over (names keep counting, so none is reused) */
const MAX_INTERNED = 100_000;

/** pgflip's statement for the text and parameter types of a Parse (`bodyAt`: just after the client's name) */
function intern(msg: Buffer, bodyAt: number): Statement {
  const key = msg.toString('latin1', bodyAt);
  let st = interned.get(key);
  if (st) return st;
  if (interned.size >= MAX_INTERNED) { interned.clear(); parsedOnce.clear(); }
  const name = Buffer.from(`pgflip_${++serial}\0`, 'latin1');
  const parse = Buffer.allocUnsafe(1 + 4 + name.length + msg.length - bodyAt);
  parse[0] = M.Parse;
  parse.writeInt32BE(parse.length - 1, 1);
  name.copy(parse, 5);
  msg.copy(parse, 5 + name.length, bodyAt);
  st = { name: name.toString('latin1', 0, name.length - 1), parse, epoch: 0 };
  interned.set(key, st);
  return st;
}

/** `msg` (Bind or Describe) with the statement name between `from` and `to` replaced */
function renamed(msg: Buffer, from: number, to: number, name: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const out = Buffer.allocUnsafe(msg.length - (to - from) + n.length);
  msg.copy(out, 0, 0, from);
  n.copy(out, from);
  msg.copy(out, from + n.length, to);
  out.writeInt32BE(out.length - 1, 1);
  return out;
}

/** What answers a message the server was sent (or pgflip answers). */
interface Expect {
  k: 'parse' | 'bind' | 'close' | 'describe' | 'execute' | 'sync' | 'query';
  /** pgflip's own message: the server's answer is not the client's */
  own?: boolean;
  /** pgflip answers it (the server never saw the message) */
  synth?: Buffer;
  /** the statement (pgflip's name) this Parse prepares or this own Close closes on the connection */
  stmt?: string;
  /** the client's name this Parse binds, or this answered Close drops (with its statement, to restore) */
  client?: string;
  closed?: Statement;
  /** a Parse of a name the client has prepared already: its 42P05 is told in the client's name */
  dup?: string;
  /** an own Close of a statement: the epoch of the connection's copy (restored when the Close is skipped) */
  epoch?: number;
  /** a Bind of a client's statement that opens its batch outside a transaction: the statement, and the batch up to its Sync, to run again once after 0A000 */
  st?: Statement;
  retry?: Buffer[] | null;
  retryReady?: boolean;
  /** it prepares or clears the connection's unnamed statement */
  unnamed?: boolean;
}

/** Collects output as few buffers as possible: contiguous pieces of one chunk stay one piece. */
class Output {
  private parts: Buffer[] = [];
  private buf: Buffer | null = null;
  private start = 0;
  private end = 0;

  add(buf: Buffer, start: number, end: number): void {
    if (buf === this.buf && start === this.end) { this.end = end; return; }
    this.cut();
    this.buf = buf; this.start = start; this.end = end;
  }

  push(b: Buffer): void { this.cut(); this.parts.push(b); }

  take(): Buffer | null {
    this.cut();
    const p = this.parts;
    if (p.length === 0) return null;
    this.parts = [];
    return p.length === 1 ? p[0] : Buffer.concat(p);
  }

  private cut(): void {
    if (this.buf) { if (this.end > this.start) this.parts.push(this.buf.subarray(this.start, this.end)); this.buf = null; }
  }
}

/**
 * Splits a byte stream into messages: a message `whole` says is needed in one
 * piece is assembled (from any number of reads); the rest pass through as
 * they come, decided on by their type alone.
 */
class Splitter {
  private hdr = Buffer.alloc(5);
  private hdrLen = 0;
  private asm: Buffer | null = null;
  private asmFill = 0;
  private passLeft = 0;
  private keep = true;
  bad = -1;

  constructor(
    private readonly whole: (type: number, len: number) => boolean,
    /** a message begins that passes through: keep it? */
    private readonly onStart: (type: number) => boolean,
    private readonly onWhole: (msg: Buffer, chunk: Buffer, start: number) => void,
    private readonly out: Output,
  ) {}

  get atBoundary(): boolean { return this.passLeft === 0 && this.asm === null && this.hdrLen === 0; }

  feed(chunk: Buffer): void {
    let p = 0;
    const n = chunk.length;
    while (p < n) {
      if (this.passLeft > 0) {
        const k = Math.min(this.passLeft, n - p);
        if (this.keep) this.out.add(chunk, p, p + k);
        this.passLeft -= k;
        p += k;
        continue;
      }
      if (this.asm) {
        const k = Math.min(this.asm.length - this.asmFill, n - p);
        chunk.copy(this.asm, this.asmFill, p, p + k);
        this.asmFill += k;
        p += k;
        if (this.asmFill === this.asm.length) { const m = this.asm; this.asm = null; this.onWhole(m, m, 0); }
        continue;
      }
      if (this.hdrLen > 0 || n - p < 5) {
        const k = Math.min(5 - this.hdrLen, n - p);
        chunk.copy(this.hdr, this.hdrLen, p, p + k);
        this.hdrLen += k;
        p += k;
        if (this.hdrLen < 5) break;
        this.hdrLen = 0;
        const type = this.hdr[0];
        const len = this.hdr.readInt32BE(1);
        if (len < 4) { this.bad = len; return; }
        if (this.whole(type, len)) {
          this.asm = Buffer.allocUnsafe(1 + len);
          this.hdr.copy(this.asm, 0);
          this.asmFill = 5;
          if (len === 4) { const m = this.asm; this.asm = null; this.onWhole(m, m, 0); }
        } else {
          this.keep = this.onStart(type);
          if (this.keep) this.out.push(Buffer.from(this.hdr));
          this.passLeft = len - 4;
        }
        continue;
      }
      const type = chunk[p];
      const len = chunk.readInt32BE(p + 1);
      if (len < 4) { this.bad = len; return; }
      const end = p + 1 + len;
      if (this.whole(type, len)) {
        if (end <= n) { this.onWhole(chunk.subarray(p, end), chunk, p); p = end; continue; }
        this.asm = Buffer.allocUnsafe(1 + len);
        chunk.copy(this.asm, 0, p);
        this.asmFill = n - p;
        p = n;
        continue;
      }
      this.keep = this.onStart(type);
      const stop = Math.min(end, n);
      if (this.keep) this.out.add(chunk, p, stop);
      this.passLeft = end - stop;
      p = stop;
    }
  }
}

/** Client messages read whole: the ones that name statements, and short queries (DEALLOCATE of a protocol-level statement). */
const SHORT_QUERY = 256;
const clientWhole = (type: number, len: number): boolean =>
  type === M.Parse || type === M.Bind || type === M.Describe || type === M.Close || type === M.Execute || type === M.Sync || (type === M.Query && len <= SHORT_QUERY);

const sqlstate = (err: Buffer): string => {
  for (let p = 5; p < err.length && err[p] !== 0;) {
    const end = err.indexOf(0, p + 1);
    if (err[p] === 0x43 /* C */) return err.toString('latin1', p + 1, end);
    p = end + 1;
  }
  return '';
};

const DEALLOCATE = /^\s*deallocate\s+(?:prepare\s+)?("(?:[^"]|"")+"|[a-z_\u0080-\uffff][a-z0-9_$\u0080-\uffff]*)\s*;?\s*$/i;

export interface TxRelayHost {
  /** protocol-level statements kept per connection */
  maxPrepared: number;
  /** the client's unnamed statement as the tracker last saw it confirmed (its Parse), if any */
  unnamed(): Buffer | null;
  txStatus(): TxStatus;
  /** a NotificationResponse from the connection: what the client gets in its place (it, after notifications queued before it), or null */
  notification(msg: Buffer): Buffer | null;
  /** the client is about to be told ReadyForQuery `I`: notifications to send it first, as PostgreSQL does */
  beforeIdle(): Buffer | null;
}

export class TxRelay {
  /** the client's named statements */
  private readonly names = new Map<string, Statement>();
  private readonly queue: Expect[] = [];
  private b: PooledBackend | null = null;
  /** the connection's unnamed statement is this client's (or neither has one) */
  private unnamedMine = false;
  /** the Bind whose batch is being kept for a retry after 0A000 */
  private retaining: Expect | null = null;
  private readonly toServer = new Output();
  private readonly toClient = new Output();
  private readonly cs: Splitter;
  private readonly ss: Splitter;

  constructor(private readonly host: TxRelayHost, private readonly owner: object) {
    this.cs = new Splitter(clientWhole, (t) => this.clientStart(t), (m, c, s) => this.clientWhole(m, c, s), this.toServer);
    this.ss = new Splitter((t) => t === M.ErrorResponse || t === M.NotificationResponse || t === M.ReadyForQuery, (t) => this.serverStart(t), (m, c, s) => this.serverWhole(m, c, s), this.toClient);
  }

  /** nothing in flight and both streams at a message boundary: the connection may go back */
  get quiet(): boolean { return this.queue.length === 0 && this.cs.atBoundary && this.ss.atBoundary; }

  /** a malformed length from the client (the session ends), else -1 */
  get badLength(): number { return this.cs.bad; }

  attach(b: PooledBackend): void {
    this.b = b;
    this.unnamedMine = b.lastUser === this.owner;
  }

  detach(): void {
    if (this.b) this.b.lastUser = this.owner;
    this.b = null;
  }

  /** DEALLOCATE ALL or DISCARD ALL ran: no statement is left on the connection, nor any of the client's */
  statementsDropped(): void {
    this.names.clear();
    this.b?.statements.clear();
    this.unnamedMine = true;
  }

  /**
   * Between transactions, a batch of nothing but Parse of statements a server has parsed
   * before, Close of named statements, Flush and a final Sync is answered without a server
   * connection (null when `chunk` is anything else). A client that prepares synchronously while
   * other clients of its own thread hold every connection in their transactions (pgbench
   * -M prepared, many clients per thread) would otherwise wait on itself. The statement is
   * parsed on a connection when it is first bound there; an error it meets then (its table
   * dropped since) is the Bind's.
   */
  answerWithoutServer(chunk: Buffer): Buffer | null {
    if (this.b || this.queue.length || !this.cs.atBoundary || this.host.txStatus() !== 'I') return null;
    const binds: Array<[string, Statement | null]> = [];
    const out: Buffer[] = [];
    let p = 0;
    while (p < chunk.length) {
      if (chunk.length - p < 5) return null;
      const type = chunk[p];
      const end = p + 1 + chunk.readInt32BE(p + 1);
      if (end > chunk.length || end < p + 5) return null;
      const msg = chunk.subarray(p, end);
      p = end;
      if (type === M.Parse) {
        const z = msg.indexOf(0, 5);
        if (z <= 5) return null;
        const name = msg.toString('utf8', 5, z);
        const st = interned.get(msg.toString('latin1', z + 1));
        if (!st || !parsedOnce.has(st.name) || this.names.has(name) || binds.some(([n, s]) => n === name && s)) return null;
        binds.push([name, st]);
        out.push(PARSE_COMPLETE);
      } else if (type === M.Close && msg[5] === TargetKind.Statement && msg.length > 7) {
        binds.push([msg.toString('utf8', 6, msg.length - 1), null]);
        out.push(CLOSE_COMPLETE);
      } else if (type === M.Sync && p === chunk.length) {
        out.push(readyForQuery('I'));
      } else if (type !== M.Flush) return null;
    }
    if (chunk[chunk.length - 5] !== M.Sync) return null;
    for (const [name, st] of binds) if (st) this.names.set(name, st); else this.names.delete(name);
    return Buffer.concat(out);
  }

  /** client bytes → what goes to the server and what pgflip answers the client at once */
  fromClient(chunk: Buffer): { server: Buffer | null; client: Buffer | null } {
    this.cs.feed(chunk);
    if (this.ss.atBoundary) this.settle();
    return { server: this.toServer.take(), client: this.toClient.take() };
  }

  /** server bytes → what the client gets */
  fromServer(chunk: Buffer): Buffer | null {
    this.ss.feed(chunk);
    if (this.ss.atBoundary) this.settle();
    return this.toClient.take();
  }

  /** after fromServer: what pgflip sends the server of its own (a batch run again after 0A000) */
  takeForServer(): Buffer | null { return this.toServer.take(); }

  /** A simple query of pgflip's own, between the client's messages (quiet): its answers are not the client's, its notifications are. */
  ownQuery(sql: string): Buffer {
    this.queue.push({ k: 'query', own: true });
    return serialize.query(sql);
  }

  // ---- client → server -------------------------------------------------

  private clientStart(type: number): boolean {
    this.stopRetaining();
    switch (type) {
      case M.Query: this.unnamedMine = true; this.queue.push({ k: 'query' }); return true;
      case M.FunctionCall: this.queue.push({ k: 'query' }); return true;
      // the connection outlives the client
      case M.Terminate: return false;
      default: return true;
    }
  }

  private clientWhole(msg: Buffer, chunk: Buffer, start: number): void {
    const keep = (): void => this.toServer.add(chunk, start, start + msg.length);
    const type = msg[0];
    if (type !== M.Describe && type !== M.Execute && type !== M.Sync) this.stopRetaining();
    switch (type) {
      case M.Parse: return this.parse(msg, keep);
      case M.Bind: {
        const z = msg.indexOf(0, 5);
        const sz = msg.indexOf(0, z + 1);
        const e: Expect = { k: 'bind' };
        const retry = (sent: Buffer): void => {
          // first in its batch, outside a transaction: after 0A000 nothing of it has reached the client, nor changed anything
          if (this.host.txStatus() !== 'I' || this.queue.some((x) => x.k === 'execute' || x.k === 'sync' || x.k === 'query')) return;
          e.st = this.names.get(msg.toString('utf8', z + 1, sz));
          e.retry = [Buffer.from(sent)];
          this.retaining = e;
        };
        this.useStatement(msg.toString('utf8', z + 1, sz), (st) => { const b = renamed(msg, z + 1, sz, st.name); this.toServer.push(b); retry(b); }, keep);
        this.queue.push(e);
        return;
      }
      case M.Describe:
        if (msg[5] === TargetKind.Statement) this.useStatement(msg.toString('utf8', 6, msg.length - 1), (st) => this.toServer.push(renamed(msg, 6, msg.length - 1, st.name)), keep);
        else keep();
        this.retain(msg);
        this.queue.push({ k: 'describe' });
        return;
      case M.Execute:
        keep();
        this.retain(msg);
        this.queue.push({ k: 'execute' });
        return;
      case M.Sync:
        keep();
        if (this.retaining) { this.retain(msg); this.retaining.retryReady = true; this.retaining = null; }
        this.queue.push({ k: 'sync' });
        return;
      case M.Close: {
        const name = msg.toString('utf8', 6, msg.length - 1);
        const st = msg[5] === TargetKind.Statement && name !== '' ? this.names.get(name) : undefined;
        if (st) {
          // the connection keeps it for whoever prepares it next
          this.names.delete(name);
          this.push({ k: 'close', synth: CLOSE_COMPLETE, client: name, closed: st });
          return;
        }
        keep();
        this.queue.push({ k: 'close', unnamed: msg[5] === TargetKind.Statement && name === '' });
        if (msg[5] === TargetKind.Statement && name === '') this.unnamedMine = true;
        return;
      }
      case M.Query: {
        const m = DEALLOCATE.exec(msg.toString('utf8', 5, msg.length - 1));
        const name = m && (m[1].startsWith('"') ? m[1].slice(1, -1).replace(/""/g, '"') : m[1].toLowerCase());
        if (name && name.toLowerCase() !== 'all' && this.names.has(name) && this.queue.length === 0 && this.host.txStatus() !== 'E') {
          // a protocol-level statement, deallocated as PostgreSQL would (the server knows it under another name)
          this.names.delete(name);
          this.push({ k: 'query', synth: Buffer.concat([commandComplete('DEALLOCATE'), readyForQuery(this.host.txStatus())]) });
          return;
        }
        this.unnamedMine = true;
        keep();
        this.queue.push({ k: 'query' });
        return;
      }
    }
  }

  /** a message of the batch kept for a retry (a Describe of a statement ends the keeping: it would need renaming) */
  private retain(msg: Buffer): void {
    const r = this.retaining?.retry;
    if (!r) return;
    if (msg[0] === M.Describe && msg[5] === TargetKind.Statement) { this.stopRetaining(); return; }
    r.push(Buffer.from(msg));
  }

  private stopRetaining(): void {
    if (!this.retaining) return;
    this.retaining.retry = null;
    this.retaining = null;
  }

  private parse(msg: Buffer, keep: () => void): void {
    const z = msg.indexOf(0, 5);
    if (z === 5) { keep(); this.unnamedMine = true; this.queue.push({ k: 'parse', unnamed: true }); return; }
    const name = msg.toString('utf8', 5, z);
    const had = this.names.get(name);
    if (had) {
      // PostgreSQL refuses a name in use: so does the server, for pgflip's name, and the client hears its own
      this.ensure(had);
      this.toServer.push(had.parse);
      this.queue.push({ k: 'parse', dup: name });
      return;
    }
    const st = intern(msg, z + 1);
    this.names.set(name, st);
    if (this.has(st)) {
      this.push({ k: 'parse', synth: PARSE_COMPLETE, client: name });
      return;
    }
    this.toServer.push(st.parse);
    this.prepared(st);
    this.queue.push({ k: 'parse', stmt: st.name, client: name });
  }

  /** a Bind or Describe of statement `name`: pgflip's statement when the client prepared it, else as sent */
  private useStatement(name: string, rename: (st: Statement) => void, keep: () => void): void {
    if (name === '') { this.ensureUnnamed(); keep(); return; }
    const st = this.names.get(name);
    if (!st) { keep(); return; } // PostgreSQL's own 26000 names the client's statement
    this.ensure(st);
    rename(st);
  }

  /** the connection gets the statement first if it lacks it */
  private ensure(st: Statement): void {
    if (this.has(st)) return;
    this.toServer.push(st.parse);
    this.prepared(st);
    this.queue.push({ k: 'parse', own: true, stmt: st.name });
  }

  /** the connection has the statement as it is now (then it becomes the most recently used); a stale copy is closed */
  private has(st: Statement): boolean {
    const s = this.b!.statements;
    const at = s.get(st.name);
    if (at === undefined) return false;
    s.delete(st.name);
    if (at === st.epoch) { s.set(st.name, at); return true; }
    this.toServer.push(closeStatement(st.name));
    this.queue.push({ k: 'close', own: true, stmt: st.name, epoch: at });
    return false;
  }

  /** the client's unnamed statement (or none) on a connection another client used since */
  private ensureUnnamed(): void {
    if (this.unnamedMine) return;
    this.unnamedMine = true;
    const u = this.host.unnamed();
    if (u) { this.toServer.push(u); this.queue.push({ k: 'parse', own: true, unnamed: true }); } else { this.toServer.push(closeStatement('')); this.queue.push({ k: 'close', own: true, unnamed: true }); }
  }

  /** `st` is (being) prepared on the connection; the least recently used beyond the limit is closed */
  private prepared(st: Statement): void {
    const s = this.b!.statements;
    s.set(st.name, st.epoch);
    while (s.size > this.host.maxPrepared) {
      const [oldest, epoch] = s.entries().next().value as [string, number];
      s.delete(oldest);
      this.toServer.push(closeStatement(oldest));
      this.queue.push({ k: 'close', own: true, stmt: oldest, epoch });
    }
  }

  private push(e: Expect): void {
    this.queue.push(e);
  }

  // ---- server → client -------------------------------------------------

  /** pgflip's answers whose turn it is */
  private settle(): void {
    const q = this.queue;
    while (q.length && q[0].synth) this.toClient.push(q.shift()!.synth!);
  }

  private serverStart(type: number): boolean {
    this.settle();
    const q = this.queue;
    const head = q[0];
    // the answers to pgflip's own query, up to its ReadyForQuery
    if (head?.own && head.k === 'query') return false;
    switch (type) {
      case M.ParseComplete: case M.BindComplete: case M.CloseComplete: {
        if (!head || head.synth) return true;
        q.shift();
        if (type === M.ParseComplete && head.stmt) parsedOnce.add(head.stmt);
        return !head.own;
      }
      case M.NoData: if (head?.k === 'describe') q.shift(); return true;
      case M.RowDescription: if (head?.k === 'describe') q.shift(); return true;
      case M.CommandComplete: case M.EmptyQueryResponse: case M.PortalSuspended: if (head?.k === 'execute') q.shift(); return true;
      default: return true;
    }
  }

  private serverWhole(msg: Buffer, chunk: Buffer, start: number): void {
    this.settle();
    if (msg[0] === M.NotificationResponse) {
      const out = this.host.notification(msg);
      if (out) this.toClient.push(out);
      return;
    }
    const pass = msg[0] === M.ReadyForQuery ? this.readyForQuery(msg) : this.serverError(msg);
    if (pass) this.toClient.add(chunk, start, start + msg.length);
  }

  /** ReadyForQuery ends what it answers (skipped messages undone); false for pgflip's own */
  private readyForQuery(msg: Buffer): boolean {
    const q = this.queue;
    let own = false;
    while (q.length) { const e = q.shift()!; if (e.k === 'sync' || e.k === 'query') { own = e.own === true; break; } this.undo(e); }
    if (own) return false;
    if (msg[5] === 0x49 /* I */) { const first = this.host.beforeIdle(); if (first) this.toClient.push(first); }
    return true;
  }

  /** an ErrorResponse: false when the client is not to see it */
  private serverError(msg: Buffer): boolean {
    const q = this.queue;
    const head = q[0];
    if (head?.own && head.k === 'query') return false;
    if (!head || head.k === 'sync' || head.k === 'query') return true;
    q.shift();
    this.failed(head);
    // the server skips everything up to Sync
    while (q.length && q[0].k !== 'sync' && q[0].k !== 'query') this.undo(q.shift()!);
    if (head.dup) {
      this.toClient.push(errorResponse('ERROR', '42P05', `prepared statement "${head.dup}" already exists`));
      return false;
    }
    if (head.k === 'bind' && head.st && sqlstate(msg) === '0A000') {
      // DDL changed the statement's result type: every connection's copy is stale
      head.st.epoch++;
      if (head.retry && head.retryReady && q.length === 1 && q[0].k === 'sync') { this.runAgain(head.st, head.retry); return false; }
    }
    return true;
  }

  /**
   * After 0A000, once: the statement parsed again and its batch sent again (as PostgreSQL's
   * own plan cache re-plans when it can). The failed batch's ReadyForQuery is pgflip's now.
   */
  private runAgain(st: Statement, batch: Buffer[]): void {
    const q = this.queue;
    q[0].own = true;
    this.b!.statements.delete(st.name);
    this.toServer.push(closeStatement(st.name));
    q.push({ k: 'close', own: true });
    this.toServer.push(st.parse);
    this.prepared(st);
    q.push({ k: 'parse', own: true, stmt: st.name });
    for (const m of batch) {
      this.toServer.push(m);
      q.push({ k: m[0] === M.Bind ? 'bind' : m[0] === M.Describe ? 'describe' : m[0] === M.Execute ? 'execute' : 'sync' });
    }
  }

  /** the message of `e` failed: what it was to prepare does not exist */
  private failed(e: Expect): void {
    if (e.k === 'parse' && e.stmt) this.b?.statements.delete(e.stmt);
    if (e.k === 'parse' && e.client && this.names.get(e.client)?.name === e.stmt) this.names.delete(e.client);
    if (e.unnamed && e.own) this.unnamedMine = false;
  }

  /** the server skipped the message of `e` (an earlier one failed): undo what it was assumed to do */
  private undo(e: Expect): void {
    if (e.k === 'parse') {
      if (e.stmt) this.b?.statements.delete(e.stmt);
      if (e.client) this.names.delete(e.client);
      if (e.unnamed) this.unnamedMine = false;
    } else if (e.k === 'close') {
      if (e.closed && e.client) this.names.set(e.client, e.closed);
      if (e.own && e.stmt && e.epoch !== undefined) this.b?.statements.set(e.stmt, e.epoch);
      if (e.unnamed) this.unnamedMine = false;
    }
  }
}



/**
 * LISTEN for transaction-mode clients (docs/proxy.md "Transaction pooling"): one listening
 * connection per side and database LISTENs the union of its clients' channels, and each
 * NotificationResponse it hears goes to the clients listening on that channel.
 *
 * A client's own LISTEN runs on the connection it leased (PostgreSQL checks it, and it is
 * transactional there); once it commits the client subscribes here. The listening connection's
 * LISTEN commits a moment later than the client's: what is notified in between reaches the
 * leased connection only, so the session also takes those from its lease (session.ts) and drops
 * the copies that arrive here too.
 */
import type { Logger } from 'pino';
import type { Side } from '../../side';
import type { BackendConnection } from '../backend-connect';
import { escapeIdentifier } from 'pg';
import { MessageCode as M } from '../protocol/codes';
import { serialize } from 'pg-protocol';
import { TERMINATE } from '../protocol/serializer';

export interface Subscriber {
  notify(msg: Buffer, channel: string): void;
}

export type OpenListener = (side: Side, database: string) => Promise<BackendConnection>;

/** the channel of a NotificationResponse (int32 pid, channel, payload) */
export function notificationChannel(msg: Buffer): string {
  return msg.toString('utf8', 9, msg.indexOf(0, 9));
}

class Listener {
  private conn: BackendConnection | null = null;
  private opening: Promise<BackendConnection> | null = null;
  /** channel → subscribers */
  readonly channels = new Map<string, Set<Subscriber>>();
  /** channels LISTENed on the connection: resolved once the server has them */
  private readonly listening = new Map<string, Promise<void>>();
  private buf: Buffer = Buffer.alloc(0);
  /** answers awaited, in order: each resolves at its ReadyForQuery */
  private readonly waiting: Array<() => void> = [];
  private closed = false;

  constructor(readonly side: Side, readonly database: string, private readonly open: OpenListener, private readonly log: Logger) {}

  /** LISTEN `channels`: resolves once the server has them all */
  listen(channels: Iterable<string>): Promise<void> {
    const all: Array<Promise<void>> = [];
    for (const c of channels) {
      let ready = this.listening.get(c);
      if (!ready) {
        ready = this.connection().then((conn) => this.send(conn, `LISTEN ${escapeIdentifier(c)}`));
        ready.catch(() => this.listening.delete(c));
        this.listening.set(c, ready);
      }
      all.push(ready);
    }
    return Promise.all(all).then(() => undefined);
  }

  unlisten(channel: string): void {
    if (!this.listening.delete(channel) || !this.conn) return;
    void this.send(this.conn, `UNLISTEN ${escapeIdentifier(channel)}`);
  }

  close(): void {
    this.closed = true;
    const c = this.conn;
    this.conn = null;
    if (c && !c.socket.destroyed) { c.socket.end(TERMINATE); c.socket.resume(); }
    for (const w of this.waiting.splice(0)) w();
  }

  private connection(): Promise<BackendConnection> {
    if (this.conn) return Promise.resolve(this.conn);
    this.opening ??= this.open(this.side, this.database).then((conn) => {
      this.opening = null;
      if (this.closed) { conn.socket.end(TERMINATE); throw new Error('the proxy is shutting down'); }
      this.conn = conn;
      const s = conn.socket;
      s.on('data', (d: Buffer) => this.onData(d));
      s.on('error', () => undefined);
      s.once('close', () => this.lost(conn));
      s.resume();
      return conn;
    }, (err: Error) => { this.opening = null; throw err; });
    return this.opening;
  }

  private send(conn: BackendConnection, sql: string): Promise<void> {
    if (conn !== this.conn) return Promise.resolve();
    conn.socket.write(serialize.query(sql));
    return new Promise<void>((r) => this.waiting.push(r));
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    let p = 0;
    while (this.buf.length - p >= 5) {
      const len = this.buf.readInt32BE(p + 1);
      if (this.buf.length - p < 1 + len) break;
      const msg = this.buf.subarray(p, p + 1 + len);
      p += 1 + len;
      if (msg[0] === M.NotificationResponse) {
        const channel = notificationChannel(msg);
        const subs = this.channels.get(channel);
        if (subs?.size) { const copy = Buffer.from(msg); for (const s of subs) s.notify(copy, channel); }
      } else if (msg[0] === M.ReadyForQuery) this.waiting.shift()?.();
      else if (msg[0] === M.ErrorResponse) this.log.warn({ side: this.side, database: this.database }, 'shared LISTEN connection: the server refused a statement');
    }
    this.buf = p === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(p));
  }

  /** the connection ended (a fence, a restart): open another and LISTEN again while anyone listens */
  private lost(conn: BackendConnection): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.buf = Buffer.alloc(0);
    for (const w of this.waiting.splice(0)) w();
    this.listening.clear();
    if (this.closed || !this.channels.size) return;
    this.log.warn({ side: this.side, database: this.database, channels: this.channels.size }, 'shared LISTEN connection lost: listening again (what was notified meanwhile is not delivered)');
    this.listen(this.channels.keys()).catch((err: Error) => this.log.warn({ side: this.side, err: err.message }, 'shared LISTEN connection could not be opened again'));
  }
}

export class SharedListeners {
  private readonly listeners = new Map<string, Listener>();

  constructor(private readonly open: OpenListener, private readonly log: Logger) {}

  private listener(side: Side, database: string): Listener {
    const key = `${side}\0${database}`;
    let l = this.listeners.get(key);
    if (!l) { l = new Listener(side, database, this.open, this.log); this.listeners.set(key, l); }
    return l;
  }

  /** `who` listens on `channel` on `side`: resolves once the listening connection has it */
  subscribe(who: Subscriber, side: Side, database: string, channel: string): Promise<void> {
    const l = this.listener(side, database);
    let subs = l.channels.get(channel);
    if (!subs) { subs = new Set(); l.channels.set(channel, subs); }
    subs.add(who);
    return l.listen([channel]);
  }

  unsubscribe(who: Subscriber, side: Side, database: string, channel: string): void {
    const l = this.listeners.get(`${side}\0${database}`);
    const subs = l?.channels.get(channel);
    if (!l || !subs?.delete(who) || subs.size) return;
    l.channels.delete(channel);
    l.unlisten(channel);
  }

  /** Before a switch to `side`: its listening connections LISTEN what the other side's do, so nothing notified after the switch is missed. */
  async prewarm(side: Side): Promise<void> {
    const jobs: Array<Promise<void>> = [];
    for (const l of [...this.listeners.values()]) {
      if (l.side === side || !l.channels.size) continue;
      jobs.push(this.listener(side, l.database).listen(l.channels.keys()).catch((err: Error) => {
        this.log.warn({ side, database: l.database, err: err.message }, 'shared LISTEN prewarm failed: the sessions listen again as they move');
      }));
    }
    await Promise.all(jobs);
  }

  /** listening connections and channels per side and database, for /status */
  stats(): Array<{ side: Side; database: string; channels: number }> {
    return [...this.listeners.values()].filter((l) => l.channels.size).map((l) => ({ side: l.side, database: l.database, channels: l.channels.size }));
  }

  closeAll(): void {
    for (const l of this.listeners.values()) l.close();
    this.listeners.clear();
  }
}

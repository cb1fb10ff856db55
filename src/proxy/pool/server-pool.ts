/**
 * Server connections for transaction pooling (docs/proxy.md "Transaction pooling").
 *
 * A pool is one side, one database and one set of startup parameters (what the
 * StartupMessage carries: sessions of the previous schema version, or with
 * another client_encoding, get pools of their own). A session leases a
 * connection at its transaction's first message and gives it back at
 * ReadyForQuery `I`; what the connection carries for its last client (settings,
 * SQL-prepared statements, protocol-level statements under pgflip's names) is
 * recorded here, so the next client is given only the difference.
 *
 * Each pool opens at most `size` connections; a lease beyond waits in line
 * (FIFO) up to proxy.poolTimeoutMs. The most recently returned connection is
 * leased first: its caches are warm, and the idle rest can age out. A
 * connection that closes while idle (a fence terminates backends, a server
 * restarts) leaves its pool at once.
 */
import type { Logger } from 'pino';
import type { Side } from '../../side';
import type { BackendConnection } from '../backend-connect';
import { Carried, NO_SQL_STATE } from '../carried';
import { MessageCode as M } from '../protocol/codes';
import { TERMINATE } from '../protocol/serializer';

export interface PooledBackend {
  readonly conn: BackendConnection;
  readonly pool: Pool;
  /** settings, placeholders and SQL-prepared statements as its last client left them */
  carried: Carried;
  /** protocol-level statements prepared on it under pgflip's names (with the epoch of its copy), least recently used first */
  readonly statements: Map<string, number>;
  /** the session that leased it last: its unnamed statement is that session's */
  lastUser: object | null;
  leased: boolean;
  dead: boolean;
  /** the pool generation it was opened in: one from before a retire is closed on return */
  readonly generation: number;
  /** the session it serves now: its socket's events go there (listeners stay put: none is added or removed per transaction) */
  owner: PoolOwner | null;
  /** the session is giving it its state (replay.ts reads the answers itself) */
  replaying: boolean;
}

export interface PoolOwner {
  data(b: Buffer): void;
  drain(): void;
  /** after the pool let it go */
  closed(): void;
}

export class PoolTimeout extends Error {}

interface Waiter { resolve: (b: PooledBackend) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

export type OpenBackend = (side: Side, params: Map<string, string>, database: string) => Promise<BackendConnection>;

export class Pool {
  readonly idle: PooledBackend[] = [];
  /** connections open or opening */
  count = 0;
  leasedCount = 0;
  generation = 0;
  readonly waiters: Waiter[] = [];

  constructor(readonly key: string, readonly side: Side, readonly database: string, readonly params: Map<string, string>, public size: number) {}
}

export interface PoolStats { side: Side; database: string; idle: number; active: number; waiting: number }

export class ServerPools {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly open: OpenBackend, private readonly log: Logger, private readonly timeoutMs: number) {}

  static key(side: Side, database: string, params: Map<string, string>): string {
    return [side, database, ...[...params].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}`)].join('\0');
  }

  pool(side: Side, database: string, params: Map<string, string>, size: number): Pool {
    const key = ServerPools.key(side, database, params);
    let p = this.pools.get(key);
    if (!p) { p = new Pool(key, side, database, params, size); this.pools.set(key, p); }
    p.size = size;
    return p;
  }

  /** A connection of `pool` for one transaction: an idle one, a new one while under size, else the next one given back. */
  lease(pool: Pool): Promise<PooledBackend> {
    const idle = this.leaseNow(pool);
    if (idle) return Promise.resolve(idle);
    if (pool.count < pool.size) return this.openFor(pool).then((b) => this.take(b));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        resolve, reject,
        timer: setTimeout(() => {
          const i = pool.waiters.indexOf(w);
          if (i >= 0) pool.waiters.splice(i, 1);
          reject(new PoolTimeout(`no server connection of the ${pool.side} pool for database "${pool.database}" became free within ${this.timeoutMs} ms (proxy.poolSize = ${pool.size}, proxy.poolTimeoutMs)`));
        }, this.timeoutMs),
      };
      pool.waiters.push(w);
    });
  }

  /** An idle connection of `pool` now, or null. */
  leaseNow(pool: Pool): PooledBackend | null {
    const idle = pool.idle.pop();
    return idle ? this.take(idle) : null;
  }

  /** The connection is idle again (ReadyForQuery `I`, nothing in flight): the next transaction of any client may have it. */
  giveBack(b: PooledBackend): void {
    if (!b.leased) return;
    b.leased = false;
    b.pool.leasedCount--;
    if (b.dead) { this.serveWaiters(b.pool); return; }
    if (b.generation !== b.pool.generation) { this.close(b); return; }
    const w = b.pool.waiters.shift();
    if (w) { clearTimeout(w.timer); w.resolve(this.take(b)); return; }
    b.pool.idle.push(b);
    b.owner = null;
    // its last session may have paused it (a slow client): idle, it must still hear its end
    if (b.conn.socket.isPaused()) b.conn.socket.resume();
  }

  /** what an idle connection hears: ParameterStatus and notices, or the FATAL of its end */
  private idleData(b: PooledBackend, buf: Buffer): void {
    for (let p = 0; p + 5 <= buf.length; p += 1 + buf.readInt32BE(p + 1)) {
      if (buf[p] === M.ErrorResponse || buf.readInt32BE(p + 1) < 4) { this.drop(b, 'error while idle'); return; }
    }
  }

  /** The connection cannot serve another transaction (its client left mid-transaction, a protocol error): closed. */
  discard(b: PooledBackend): void {
    if (b.leased) { b.leased = false; b.pool.leasedCount--; }
    this.close(b);
    this.serveWaiters(b.pool);
  }

  /**
   * After a switch away from `side`: its idle connections are closed now and the
   * leased ones when given back (the fence ends them meanwhile anyway).
   */
  retireSide(side: Side): void {
    for (const p of this.pools.values()) {
      if (p.side !== side) continue;
      p.generation++;
      for (const b of p.idle.splice(0)) this.close(b);
    }
  }

  /**
   * Before a switch to `side`: as many connections there as each pool of the other side has
   * open, so the first transactions after the switch find them ready. Failures are logged only:
   * a lease opens what is missing.
   */
  async prewarm(side: Side): Promise<void> {
    const jobs: Array<Promise<void>> = [];
    for (const p of [...this.pools.values()]) {
      if (p.side === side || p.count === 0) continue;
      const there = this.pool(side, p.database, p.params, p.size);
      there.generation++;
      for (const b of there.idle.splice(0)) this.close(b);
      const want = Math.min(p.count, there.size) - there.count;
      for (let i = 0; i < want; i++) {
        jobs.push(this.openFor(there).then((b) => { b.leased = true; there.leasedCount++; this.giveBack(b); }, (err: Error) => {
          this.log.warn({ side, database: p.database, err: err.message }, 'pool prewarm: a connection could not be opened');
        }));
      }
    }
    await Promise.all(jobs);
  }

  stats(): PoolStats[] {
    return [...this.pools.values()].map((p) => ({ side: p.side, database: p.database, idle: p.idle.length, active: p.leasedCount, waiting: p.waiters.length }));
  }

  /** every connection closed, every waiter failed (the proxy stops) */
  closeAll(): void {
    for (const p of this.pools.values()) {
      for (const b of p.idle.splice(0)) this.close(b);
      for (const w of p.waiters.splice(0)) { clearTimeout(w.timer); w.reject(new PoolTimeout('the proxy is shutting down')); }
    }
  }

  private take(b: PooledBackend): PooledBackend {
    b.leased = true;
    b.pool.leasedCount++;
    return b;
  }

  private async openFor(pool: Pool): Promise<PooledBackend> {
    pool.count++;
    let conn: BackendConnection;
    try {
      conn = await this.open(pool.side, pool.params, pool.database);
    } catch (e) {
      pool.count--;
      this.serveWaiters(pool);
      throw e;
    }
    const b: PooledBackend = { conn, pool, carried: NO_SQL_STATE, statements: new Map(), lastUser: null, leased: false, dead: false, generation: pool.generation, owner: null, replaying: false };
    const s = conn.socket;
    s.on('data', (d: Buffer) => { if (b.owner) b.owner.data(d); else if (!b.replaying) this.idleData(b, d); });
    s.on('drain', () => b.owner?.drain());
    s.on('error', () => undefined);
    s.once('close', () => { this.drop(b, 'closed'); b.owner?.closed(); });
    return b;
  }

  /** the connection is gone: it leaves its pool (a leased one is also its session's news) */
  private drop(b: PooledBackend, why: string): void {
    if (b.dead) return;
    b.dead = true;
    b.pool.count--;
    const i = b.pool.idle.indexOf(b);
    if (i >= 0) b.pool.idle.splice(i, 1);
    if (!b.conn.socket.destroyed) b.conn.socket.destroy();
    this.log.debug({ side: b.pool.side, database: b.pool.database, backendPid: b.conn.pid, why }, 'pool connection gone');
    if (!b.leased) this.serveWaiters(b.pool);
  }

  private close(b: PooledBackend): void {
    if (b.dead) return;
    const s = b.conn.socket;
    const i = b.pool.idle.indexOf(b);
    if (i >= 0) b.pool.idle.splice(i, 1);
    b.dead = true;
    b.pool.count--;
    if (!s.destroyed && !s.writableEnded) { s.end(TERMINATE); s.resume(); }
  }

  /** room in the pool and clients waiting: open for the first in line */
  private serveWaiters(pool: Pool): void {
    while (pool.waiters.length && pool.count < pool.size) {
      const w = pool.waiters.shift()!;
      clearTimeout(w.timer);
      this.openFor(pool).then((b) => w.resolve(this.take(b)), w.reject);
    }
  }
}

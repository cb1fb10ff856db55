/**
 * Sessions whose side went down, and new clients while the active side is down, wait here for a
 * backend instead of failing (docs/proxy.md "A side that goes down").
 *
 * A session's backend can end alone (pg_terminate_backend, idle timeouts) or with its side (a
 * crash, a shutdown, a lost host). The first is the client's business, as PostgreSQL tells it.
 * The second is what a rollback after a dead new side, or the side's return, repairs: the
 * session is held (nothing read from its client), and as soon as a side can take it — the active
 * side changed, or the side is up again — it gets a fresh backend with its state replayed. What
 * the client had in flight then fails once; a transaction it had open is gone (the new backend
 * starts in a failed transaction block, so the rest of it fails as PostgreSQL would fail it).
 * After `proxy.lostBackendWaitMs` without a backend the client gets 08006, as before.
 */
import type { Logger } from 'pino';
import type { Side } from '../side';
import type { BackendConnection } from './backend-connect';
import type { OidTranslation } from './type-identity';
import type { Session } from './session';

/** A connection on a side carrying a session's state (flip-participant.ts prepares them). */
export interface RevivalConnection {
  conn: BackendConnection;
  translation: OidTranslation | null;
}

export interface LostBackendHost {
  log: Logger;
  waitMs: number;
  /** how often a waiting session tries again without news (the proxy's health-check interval) */
  retryMs: number;
  activeSide(): Side;
  /** a backend on `side` with the session's state replayed */
  prepare(s: Session, side: Side): Promise<RevivalConnection>;
  /** the session relays again */
  attached(s: Session): void;
}

interface Waiting {
  since: number;
  /** the side the backend was lost on */
  side: Side;
  timer: NodeJS.Timeout;
  trying: boolean;
}

export class LostBackends {
  private readonly waiting = new Map<Session, Waiting>();
  /** new clients waiting for news (wake) */
  private readonly listeners = new Set<() => void>();
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(private readonly host: LostBackendHost) {}

  get count(): number { return this.waiting.size; }

  /**
   * The session's backend closed without the client asking. First told apart: a side that still
   * takes connections lost only this backend (the client is told, as PostgreSQL would); a side
   * that does not is down, and the session waits.
   */
  add(s: Session): void {
    const side = s.side;
    const timer = setTimeout(() => this.giveUp(s), this.host.waitMs);
    timer.unref();
    const w: Waiting = { since: Date.now(), side, timer, trying: true };
    this.waiting.set(s, w);
    this.host.prepare(s, side).then((r) => {
      // the side answers: only this backend ended
      this.forget(s);
      r.conn.socket.destroy();
      s.endLost(`the ${side} backend of this session was ended`);
    }, () => {
      w.trying = false;
      s.log.warn({ side }, `${side} is down: the session waits for a flip or its return`);
      if (this.host.activeSide() !== side) void this.revive(s);
      this.scheduleRetry();
    });
  }

  /** the session ended meanwhile */
  remove(s: Session): void { this.forget(s); }

  /** Something changed (the active side, a side's health): every waiting session and client tries again. */
  wake(): void {
    for (const s of this.waiting.keys()) void this.revive(s);
    for (const l of [...this.listeners]) l();
  }

  /**
   * For a new client: resolves at the next wake, or after `ms`. The caller tries to connect
   * again, until its own deadline.
   */
  nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => { clearTimeout(t); this.listeners.delete(done); resolve(); };
      const t = setTimeout(done, Math.min(ms, this.host.retryMs));
      t.unref();
      this.listeners.add(done);
    });
  }

  private async revive(s: Session): Promise<void> {
    const w = this.waiting.get(s);
    if (!w || w.trying || s.isClosed) return;
    w.trying = true;
    const side = this.host.activeSide();
    try {
      const r = await this.host.prepare(s, side);
      if (this.waiting.get(s) !== w || s.isClosed) { r.conn.socket.destroy(); return; }
      this.forget(s);
      await s.revive(r.conn, r.translation, w.side);
      // a flip in progress takes it along
      this.host.attached(s);
      this.host.log.info({ session: s.id, lost: w.side, side, waitedMs: Date.now() - w.since }, 'session continues on a new backend');
    } catch (err) {
      w.trying = false;
      this.host.log.debug({ session: s.id, side, err: (err as Error).message }, 'no backend yet for a session that lost its own');
    }
  }

  private giveUp(s: Session): void {
    const w = this.waiting.get(s);
    if (!w) return;
    this.forget(s);
    s.endLost(`the ${w.side} side went down and no side could take the session within ${Math.round(this.host.waitMs / 1000)} s (proxy.lostBackendWaitMs)`);
  }

  private forget(s: Session): void {
    const w = this.waiting.get(s);
    if (!w) return;
    clearTimeout(w.timer);
    this.waiting.delete(s);
  }

  /** without news, waiting sessions try again every retryMs (a side back up is found by the next try) */
  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.waiting.size) return;
      this.wake();
      this.scheduleRetry();
    }, this.host.retryMs);
    this.retryTimer.unref();
  }

  /** proxy shutdown */
  stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const s of [...this.waiting.keys()]) this.forget(s);
  }
}

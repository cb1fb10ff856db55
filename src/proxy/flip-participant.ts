/**
 * The proxy's side of a flip (docs/proxy.md), driven by a FleetMember (docs/fleet.md).
 *
 * pause: new connections wait at admission; every session is held at its next
 * switch point (ReadyForQuery `I`, nothing in flight, not inside an
 * extended-protocol batch) — a session in a transaction keeps running until
 * it gets there. Meanwhile each session gets an authenticated connection to
 * the target, and once it holds, its state (SETs, prepared statements, LISTEN)
 * is replayed there, so that the switch itself only swaps sockets.
 *
 * switchTo swaps; resume releases what the clients sent meanwhile. abort
 * releases everything on the side it was on: the clients notice a short wait,
 * never an error.
 *
 * Pinned sessions (temporary tables, WITH HOLD cursors, session advisory
 * locks, prepared transactions) cannot move. They keep running until the
 * deadline (they may drop what pins them); then proxy.pinnedPolicy decides:
 * `terminate` holds them and, once the fleet commits, ends them with FATAL
 * 57P01 saying why; `abort` reports them as blocking and the flip aborts.
 */
import type { Logger } from 'pino';
import { PgflipConfig } from '../config';
import { otherSide, Side } from '../side';
import type { ProxyMetrics } from '../observability/metrics';
import type { FlipParticipant, PauseResult, SwitchResult } from '../switch/participant';
import type { BackendConnection } from './backend-connect';
import { replayState } from './replay';
import type { Session } from './session';

/** What the participant needs from the proxy it belongs to. */
export interface FlipHost {
  cfg: PgflipConfig;
  log: Logger;
  metrics: ProxyMetrics;
  sessions(): Iterable<Session>;
  activeSide(): Side;
  setActiveSide(side: Side): void;
}

/** How long after the deadline a session that reached its switch point may still finish its replay. */
const READY_GRACE_MS = 150;

interface Entry {
  s: Session;
  held: boolean;
  /** pinned at the deadline under policy `terminate`: the reasons, for its FATAL */
  terminate?: string[];
  /** pre-warmed connection to the target (opened at pause start) */
  conn?: Promise<BackendConnection>;
  /** the connection with the session's state replayed, once held */
  ready?: Promise<BackendConnection>;
  settled: boolean;
  error?: string;
}

interface PauseRun {
  from: Side;
  target: Side;
  deadline: number;
  startedAt: number;
  entries: Map<Session, Entry>;
  /** resolves pause() */
  finish: (r: PauseResult) => void;
  result: Promise<PauseResult>;
  /** warming: target connections opening, clients still run; pausing: holding at boundaries */
  phase: 'warming' | 'pausing' | 'paused' | 'switched' | 'over';
  /** when holding began (performance.now() and Date.now()): the pause clients see */
  holdStartedAt: number;
  holdStartedAtEpochMs: number;
  deadlineTimer?: NodeJS.Timeout;
  graceTimer?: NodeJS.Timeout;
  deadlinePassed: boolean;
  /** when the last session was held (for the log: waiting for boundaries vs preparing backends) */
  lastHeldAt: number;
}

export class ProxyFlipParticipant implements FlipParticipant {
  private epoch = -1;
  private run: PauseRun | null = null;
  private gate: { promise: Promise<void>; open: () => void } | null = null;
  /** sessions being moved one by one (adopt), with the connection prepared for each */
  private readonly moving = new Map<Session, Promise<BackendConnection>>();
  private readonly log: Logger;

  constructor(readonly id: string, private readonly host: FlipHost) {
    this.log = host.log.child({ component: 'flip' });
  }

  // ---- admission of new connections ---------------------------------------

  /** Until the first adopt (joining the fleet) and during a pause, new sessions wait. */
  closeGate(): void {
    if (this.gate) return;
    let open!: () => void;
    const promise = new Promise<void>((r) => { open = r; });
    this.gate = { promise, open };
  }

  openGate(): void {
    const g = this.gate;
    this.gate = null;
    g?.open();
  }

  admission(): Promise<void> | undefined {
    return this.gate?.promise;
  }

  /** a session got its backend: a pause in progress holds it right away */
  sessionAttached(s: Session): void {
    const run = this.run;
    if (!run) return;
    if (run.phase === 'warming' && !run.entries.has(s)) this.addEntry(run, s);
    if (run.phase === 'pausing') this.arm(run, run.entries.get(s) ?? this.addEntry(run, s));
  }

  sessionEnded(s: Session): void {
    const run = this.run;
    const e = run?.entries.get(s);
    if (run && e) {
      run.entries.delete(s);
      closeWhenOpen(e.conn);
      this.updateHeldGauge();
      if (run.phase === 'pausing' || run.phase === 'warming') this.check(run);
    }
    const m = this.moving.get(s);
    if (m) { this.moving.delete(s); closeWhenOpen(m); }
  }

  // ---- FlipParticipant -----------------------------------------------------

  currentEpoch(): number {
    return this.epoch;
  }

  pause(deadline: number): Promise<PauseResult> {
    if (this.run && this.run.phase !== 'over') this.endRun(this.run, 'a new pause replaced it');
    this.cancelMoves();
    const from = this.host.activeSide();
    let finish!: (r: PauseResult) => void;
    const result = new Promise<PauseResult>((r) => { finish = r; });
    const run: PauseRun = {
      from, target: otherSide(from), deadline, startedAt: performance.now(), entries: new Map(),
      finish, result, phase: 'warming', deadlinePassed: false, lastHeldAt: 0, holdStartedAt: 0, holdStartedAtEpochMs: 0,
    };
    this.run = run;
    this.log.info({ from, target: run.target, deadlineInMs: deadline - Date.now() }, 'flip: opening connections to the target');
    for (const s of this.host.sessions()) if (s.phase !== 'startup' && !s.isClosed) this.addEntry(run, s);
    run.deadlineTimer = setTimeout(() => this.atDeadline(run), Math.max(0, deadline - Date.now()));
    void this.startHolding(run);
    return result;
  }

  /** a session takes part in the flip: its connection to the target opens now */
  private addEntry(run: PauseRun, s: Session): Entry {
    const e: Entry = { s, held: false, settled: false };
    run.entries.set(s, e);
    e.conn = s.openBackend(run.target);
    e.conn.catch((err: Error) => { e.error = err.message; e.settled = true; this.check(run); });
    return e;
  }

  /**
   * Clients keep running while the target connections open (forking and
   * authenticating dozens of backends takes a while on a busy machine); only
   * then are sessions held at their boundaries, so the pause they see is the
   * wait for the slowest transaction plus a replay round trip.
   */
  private async startHolding(run: PauseRun): Promise<void> {
    const waited = new Set<Promise<BackendConnection>>();
    for (;;) {
      const pending = [...run.entries.values()].map((e) => e.conn!).filter((c) => !waited.has(c));
      if (!pending.length || run.phase !== 'warming') break;
      for (const c of pending) waited.add(c);
      await Promise.allSettled(pending);
    }
    if (run.phase !== 'warming') return;
    run.phase = 'pausing';
    run.holdStartedAt = performance.now();
    run.holdStartedAtEpochMs = Date.now();
    this.closeGate();
    // sessions that passed admission while the connections opened
    for (const s of this.host.sessions()) if (s.phase !== 'startup' && !s.isClosed && !run.entries.has(s)) this.addEntry(run, s);
    this.log.info({ sessions: run.entries.size, warmMs: Math.round(run.holdStartedAt - run.startedAt) }, 'holding sessions at transaction boundaries');
    for (const e of run.entries.values()) if (e.s.phase === 'attached') this.arm(run, e);
    this.check(run);
  }

  async switchTo(target: Side, epoch: number): Promise<SwitchResult> {
    const run = this.run;
    if (!run || run.phase === 'over') {
      // no pause of ours to complete (e.g. joined meanwhile): move sessions as they reach a switch point
      await this.adopt(target, epoch);
      return { carried: 0, terminated: 0 };
    }
    await run.result;
    run.phase = 'switched';
    let carried = 0;
    let terminated = 0;
    await Promise.all([...run.entries.values()].map(async (e) => {
      const s = e.s;
      if (s.isClosed) return;
      if (e.terminate) {
        closeWhenOpen(e.conn);
        s.terminate(`terminating connection because pgflip switched to the ${target} side and this session holds state that cannot move (${e.terminate.join(', ')})`,
          'The session was ended after the switch deadline (proxy.pinnedPolicy = terminate). Reconnect to continue on the new side.');
        terminated++;
        return;
      }
      if (!e.held || !e.ready || target !== run.target) {
        // not held (cannot happen after a successful pause) or a different target: move at the next switch point
        closeWhenOpen(e.conn);
        this.moveAtNextSwitchPoint(s, target);
        return;
      }
      try {
        let conn = await e.ready;
        conn = await this.unfencedConnection(s, conn);
        await s.swapBackend(conn);
        carried++;
      } catch (err) {
        this.log.error({ session: s.id, err: (err as Error).message }, 'session could not be carried to the new side');
        s.fatal('08006', `pgflip: the session could not be moved to the ${target} side: ${(err as Error).message}`);
      }
    }));
    this.host.setActiveSide(target);
    this.epoch = epoch;
    this.log.info({ target, epoch, carried, terminated }, 'switched');
    return { carried, terminated, heldSince: run.holdStartedAtEpochMs };
  }

  resume(): void {
    const run = this.run;
    if (run && run.phase !== 'over') this.endRun(run, 'resumed');
    this.openGate();
  }

  abort(): void {
    const run = this.run;
    if (!run || run.phase === 'over') return;
    this.log.warn({ from: run.from, target: run.target }, 'flip aborted: sessions continue on the side they were on');
    run.finish({ paused: false });
    this.dropPrepared(run);
    this.endRun(run, 'aborted');
    this.openGate();
  }

  async adopt(active: Side, epoch: number): Promise<void> {
    this.epoch = epoch;
    if (this.host.activeSide() !== active) {
      this.log.info({ active, epoch }, 'adopting the fleet\'s active side');
      this.host.setActiveSide(active);
    }
    for (const s of this.host.sessions()) {
      if (s.phase === 'attached' && !s.isClosed && s.side !== active) this.moveAtNextSwitchPoint(s, active);
    }
    // the first adopt opens admission (the proxy accepted nothing before it joined the fleet)
    if (!this.run || this.run.phase === 'over') this.openGate();
  }

  // ---- the pause -----------------------------------------------------------

  private arm(run: PauseRun, e: Entry): void {
    e.s.armSwitchPoint(() => {
      if (run.phase !== 'pausing' || e.held) return;
      const pinned = e.s.state!.pinnedReasons();
      if (pinned.length) {
        // it may still drop what pins it before the deadline; let it run
        if (!run.deadlinePassed) return;
        if (this.host.cfg.proxy.pinnedPolicy !== 'terminate') return;
        e.terminate = pinned;
      }
      e.s.onSwitchPoint = null;
      e.s.hold();
      e.held = true;
      run.lastHeldAt = performance.now();
      this.updateHeldGauge();
      if (e.terminate) {
        closeWhenOpen(e.conn);
        e.settled = true;
      } else {
        e.ready = this.prepare(run, e);
        e.ready.then(() => { e.settled = true; }, (err: Error) => { e.settled = true; e.error = err.message; }).finally(() => this.check(run));
      }
      this.check(run);
    });
  }

  /** the pre-warmed connection with the held session's state replayed */
  private async prepare(run: PauseRun, e: Entry): Promise<BackendConnection> {
    const conn = await e.conn!;
    if (run.phase === 'over' || e.s.isClosed) { conn.socket.destroy(); throw new Error('pause ended'); }
    try {
      await replayState(conn, e.s.state!);
    } catch (err) {
      conn.socket.destroy();
      throw err;
    }
    return conn;
  }

  private check(run: PauseRun): void {
    if (run.phase !== 'pausing' && run.phase !== 'warming') return;
    const entries = [...run.entries.values()];
    const failed = entries.filter((e) => e.error);
    if (failed.length) {
      return this.fail(run, failed.map((e) => `${label(e.s)}: cannot prepare its ${run.target} backend: ${e.error}`));
    }
    if (run.phase !== 'pausing') return;
    if (entries.every((e) => e.held && e.settled)) {
      run.phase = 'paused';
      clearTimeout(run.deadlineTimer);
      clearTimeout(run.graceTimer);
      this.log.info({ sessions: entries.length, ms: Math.round(performance.now() - run.startedAt), heldMs: Math.round(performance.now() - run.holdStartedAt), allHeldMs: Math.round(Math.max(0, run.lastHeldAt - run.holdStartedAt)) },
        'paused: every session holds at a transaction boundary, its target backend ready');
      run.finish({ paused: true });
    }
  }

  private atDeadline(run: PauseRun): void {
    if (run.phase === 'warming') {
      return this.fail(run, [...run.entries.values()].filter((e) => !e.settled && !e.error).map((e) => `${label(e.s)}: its ${run.target} backend did not open before the deadline`));
    }
    if (run.phase !== 'pausing') return;
    run.deadlinePassed = true;
    // idle pinned sessions get their last chance: the switch point hook decides by policy now
    for (const e of run.entries.values()) if (!e.held) e.s.checkSwitchPoint();
    const blocked = [...run.entries.values()].filter((e) => !e.held).map((e) => `${label(e.s)}: ${why(e.s)}`);
    if (blocked.length) return this.fail(run, blocked);
    this.check(run);
    if (run.phase !== 'pausing') return;
    // everyone holds; the last replays may still be in flight
    run.graceTimer = setTimeout(() => {
      if (run.phase !== 'pausing') return;
      this.fail(run, [...run.entries.values()].filter((e) => !e.settled).map((e) => `${label(e.s)}: its ${run.target} backend was not ready in time`));
    }, READY_GRACE_MS);
  }

  /** paused: false. The flip cannot commit without this proxy's `paused`, so the sessions go back to work at once. */
  private fail(run: PauseRun, blocked: string[]): void {
    this.log.warn({ blocked }, 'pause failed: sessions did not reach a transaction boundary in time');
    run.finish({ paused: false, blocked });
    this.dropPrepared(run);
    this.endRun(run, 'failed');
    this.openGate();
  }

  /** the flip is off: the target connections prepared for it are closed */
  private dropPrepared(run: PauseRun): void {
    for (const e of run.entries.values()) {
      closeWhenOpen(e.conn);
      if (e.ready) e.ready.then((c) => c.socket.destroy(), () => undefined);
    }
  }

  /**
   * Releases every held session: on the new side after a switch, else on the
   * side it was on — one whose backend was ended meanwhile (the old side's
   * fencing terminates backends) first gets a fresh one there.
   */
  private endRun(run: PauseRun, how: string): void {
    if (run.phase === 'over') return;
    run.phase = 'over';
    clearTimeout(run.deadlineTimer);
    clearTimeout(run.graceTimer);
    run.finish({ paused: false });
    for (const e of run.entries.values()) {
      e.s.onSwitchPoint = null;
      if (e.held && !e.s.isClosed) {
        if (e.s.backendGone) void this.reconnect(e.s, e.s.side).finally(() => e.s.release());
        else e.s.release();
      }
      e.held = false;
    }
    // the pause clients saw: from the first hold to the release
    const seconds = run.holdStartedAt ? (performance.now() - run.holdStartedAt) / 1000 : 0;
    this.host.metrics.flipPause.observe(seconds);
    this.updateHeldGauge();
    this.log.info({ how, pauseMs: Math.round(seconds * 1000) }, 'pause over');
    if (this.run === run) this.run = null;
  }

  private updateHeldGauge(): void {
    let n = 0;
    for (const s of this.host.sessions()) if (s.isHeld) n++;
    this.host.metrics.heldSessions.set(n);
  }

  // ---- moving sessions outside a pause (adopt) -----------------------------

  private cancelMoves(): void {
    for (const [s, conn] of this.moving) {
      s.onSwitchPoint = null;
      closeWhenOpen(conn);
    }
    this.moving.clear();
  }

  /** open a backend on `side`, then at the session's next switch point hold it briefly, replay, swap, release */
  private moveAtNextSwitchPoint(s: Session, side: Side): void {
    if (this.moving.has(s)) return;
    const conn = s.openBackend(side);
    this.moving.set(s, conn);
    conn.then((c) => {
      if (this.moving.get(s) !== conn || s.isClosed) { c.socket.destroy(); return; }
      s.armSwitchPoint(() => {
        s.onSwitchPoint = null;
        this.moving.delete(s);
        s.hold();
        void (async () => {
          try {
            await replayState(c, s.state!);
            await s.swapBackend(await this.unfencedConnection(s, c));
          } catch (err) {
            c.socket.destroy();
            s.fatal('08006', `pgflip: the session could not be moved to the ${side} side: ${(err as Error).message}`);
          } finally {
            s.release();
          }
        })();
      });
    }, (err: Error) => {
      if (this.moving.get(s) !== conn) return;
      this.moving.delete(s);
      this.log.error({ session: s.id, side, err: err.message }, 'cannot open a backend to move the session; it stays where it is');
    });
  }

  /** a fresh backend on `side` with the session's state, swapped in; the client learns only if that fails */
  private async reconnect(s: Session, side: Side): Promise<void> {
    try {
      const c = await s.openBackend(side);
      await replayState(c, s.state!);
      await s.swapBackend(c);
    } catch (err) {
      s.fatal('08006', `pgflip: the connection to the ${side} backend was lost and could not be reopened: ${(err as Error).message}`);
    }
  }

  /**
   * A connection pre-warmed while the target was still fenced started with
   * default_transaction_read_only = on (PostgreSQL applies role settings at
   * session start, and RESET or DISCARD ALL would return to that). The switch
   * happens after the controller lifted the fence, so such a connection is
   * replaced by one opened now — unless the session's old backend started
   * read-only as well (then that is the role's real setting).
   */
  private async unfencedConnection(s: Session, conn: BackendConnection): Promise<BackendConnection> {
    if (reportedParameter(conn, 'default_transaction_read_only') !== 'on') return conn;
    if (s.backendConn && reportedParameter(s.backendConn, 'default_transaction_read_only') === 'on') return conn;
    const fresh = await s.openBackend(conn.target.side);
    conn.socket.destroy();
    if (reportedParameter(fresh, 'default_transaction_read_only') === 'on') this.log.warn({ session: s.id, side: fresh.target.side }, 'the new side still starts sessions read-only (is it fenced?)');
    try {
      await replayState(fresh, s.state!);
    } catch (err) {
      fresh.socket.destroy();
      throw err;
    }
    return fresh;
  }
}

/** a ParameterStatus value the server reported at connection start */
export function reportedParameter(conn: BackendConnection, name: string): string | undefined {
  for (const m of conn.parameterStatus) {
    const z = m.indexOf(0, 5);
    if (z > 0 && m.toString('utf8', 5, z) === name) return m.toString('utf8', z + 1, m.length - 1);
  }
  return undefined;
}

function closeWhenOpen(conn: Promise<BackendConnection> | undefined): void {
  conn?.then((c) => {
    const sock = c.socket;
    if (sock.writableEnded || sock.destroyed) return;
    sock.on('error', () => undefined);
    sock.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate: the server does not log an unexpected EOF
    sock.resume();
  }, () => undefined);
}

function label(s: Session): string {
  const app = s.state?.startupParams.get('application_name');
  return `${s.id}${app ? ` (${app})` : ''}`;
}

function why(s: Session): string {
  if (s.phase !== 'attached') return 'still connecting';
  const st = s.state!;
  const pinned = st.pinnedReasons();
  if (st.txStatus === 'T') return 'in a transaction';
  if (st.txStatus === 'E') return 'in a failed transaction';
  if (st.sent !== st.done) return 'a statement still running';
  if (pinned.length) return `pinned (${pinned.join(', ')})`;
  return 'inside an extended-protocol batch (no Sync yet)';
}

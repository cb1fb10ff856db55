/**
 * The proxy's side of a flip (docs/proxy.md "The live switch"; driven by a FleetMember).
 *
 * pause: first, while clients keep running, every session gets a connection to
 * the target with its state replayed (a bounded number at a time, so the
 * target is not stormed). Only then are sessions held, each at its next switch
 * point (ReadyForQuery `I`, nothing in flight, not inside an extended-protocol
 * batch); a session whose state changed since its replay gets the difference.
 * So the hold costs no round trip for a session that did nothing meanwhile,
 * and the pause does not grow with the number of sessions.
 *
 * A hold lasts at most proxy.holdGraceMs while sessions finish their
 * transaction or statement: then everyone is let go and the proxy tries again
 * once the stragglers reach a switch point, until the deadline, when the pause
 * fails naming them and why. Pinned sessions (state that cannot move) are
 * decided as soon as holding starts: policy `terminate` holds them with the
 * others and ends them with FATAL 57P01 once the fleet committed; policy
 * `abort` fails the pause at once.
 *
 * switchTo swaps sockets; resume releases what the clients sent meanwhile.
 * abort releases everything on the side it was on: the clients notice a short
 * wait, never an error.
 */
import type { Logger } from 'pino';
import { PgflipConfig } from '../config';
import { otherSide, Side } from '../side';
import type { ProxyMetrics } from '../observability/metrics';
import type { FlipParticipant, PauseResult, SwitchResult } from '../switch/participant';
import type { BackendConnection } from './backend-connect';
import { Carried, emptyCarried, replayPlan } from './carried';
import { TERMINATE } from './protocol/serializer';
import { runReplay } from './replay';
import { compatFixupSql, isOld } from './schema-version';
import type { CompatServing } from '../compat/serving';
import { OidCatalog, oidTranslation, OidTranslation, readOidCatalog } from './type-identity';
import type { Session } from './session';
import type { ServerPools } from './pool/server-pool';
import type { SharedListeners } from './pool/listeners';

/** What the participant needs from the proxy it belongs to. */
export interface FlipHost {
  cfg: PgflipConfig;
  log: Logger;
  metrics: ProxyMetrics;
  sessions(): Iterable<Session>;
  activeSide(): Side;
  setActiveSide(side: Side): void;
  /** resolves once the schema version record read at the latest pause is in (schema-version.ts) */
  versionsReady?(): Promise<void>;
  /** read the schema version record again: at every pause */
  refreshVersions?(): void;
  /** the previous schema version served, if any */
  compat?(): CompatServing | null;
  /** transaction-mode pools: prewarmed on the target before a hold, retired on the side left */
  pools?: ServerPools;
  /** transaction mode's shared LISTEN connections: the target's LISTENs what the side left's do before a hold */
  listeners?: SharedListeners;
}

/** A target connection carrying (a version of) a session's state. */
interface Prepared {
  conn: BackendConnection;
  carried: Carried;
  /** the session's state version `carried` was taken at */
  version: number;
  /** OIDs to translate on that side (the session started on the other one, whose OIDs differ) */
  translation: OidTranslation | null;
}

/** catalogs (user-defined OIDs) per side and database, read once per flip */
type Catalogs = Map<string, Promise<OidCatalog | null>>;

interface Entry {
  s: Session;
  prepared?: Prepared;
  /** the connection being opened and replayed */
  preparing?: Promise<void>;
  held: boolean;
  /** held, and its target connection carries the state it has now */
  ready: boolean;
  /** a transaction-mode session: nothing to prepare but its OID translation on the target */
  pooled?: { translation: OidTranslation | null };
  /** pinned under policy `terminate`: the reasons, for its FATAL after the switch */
  terminate?: string[];
  error?: string;
}

export interface LastPause {
  /** how long client bytes were held, ms */
  ms: number;
  /** when the hold began */
  at: string;
  from: Side;
  target: Side;
  /** resumed (switched or not), aborted, failed… */
  how: string;
  attempts: number;
}

interface PauseRun {
  from: Side;
  target: Side;
  /** a hold: nothing is prepared on the target and nothing will move (pins do not matter) */
  hold: boolean;
  deadline: number;
  startedAt: number;
  entries: Map<Session, Entry>;
  /** resolves pause() */
  finish: (r: PauseResult) => void;
  result: Promise<PauseResult>;
  /** preparing: target connections opening, clients run; holding: an attempt holds sessions; waiting: between attempts */
  phase: 'preparing' | 'holding' | 'waiting' | 'paused' | 'switched' | 'over';
  /** when the current (last) hold began: the pause clients see */
  holdStartedAt: number;
  holdStartedAtEpochMs: number;
  attempts: number;
  deadlineTimer?: NodeJS.Timeout;
  graceTimer?: NodeJS.Timeout;
  lastHeldAt: number;
  /** prepare jobs not started yet */
  queue: Entry[];
  running: number;
  /** between attempts: the sessions that did not reach a switch point in the last one, until they do */
  waitingFor: Set<Session>;
  catalogs: Catalogs;
  checkScheduled: boolean;
  /** the target's pools have as many connections as the ones left (or there are none) */
  prewarmed: boolean;
}

export class ProxyFlipParticipant implements FlipParticipant {
  private epoch = -1;
  private run: PauseRun | null = null;
  private gate: { promise: Promise<void>; open: () => void } | null = null;
  /** sessions being moved one by one outside a pause (adopt), with the connection prepared for each */
  private readonly moving = new Map<Session, { side: Side; prepared: Promise<Prepared> }>();
  private readonly log: Logger;
  private last: LastPause | null = null;

  constructor(readonly id: string, private readonly host: FlipHost) {
    this.log = host.log.child({ component: 'flip' });
  }

  // ---- admission of new connections ---------------------------------------

  /** Until the first adopt (joining the fleet) and while sessions are held, new sessions wait. */
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

  /**
   * a session got its backend: a pause in progress includes it (one that
   * passed admission just before the gate closed is held too, once paused, and
   * moved after the switch at its next switch point)
   */
  sessionAttached(s: Session): void {
    const run = this.run;
    if (!run || run.phase === 'switched' || run.phase === 'over') return;
    const e = run.entries.get(s) ?? this.addEntry(run, s);
    if (run.phase === 'holding' || run.phase === 'paused') this.arm(run, e);
  }

  sessionEnded(s: Session): void {
    const run = this.run;
    const e = run?.entries.get(s);
    if (run && e) {
      run.entries.delete(s);
      closePrepared(e.prepared);
      this.updateHeldGauge();
      this.scheduleCheck(run);
    }
    const m = this.moving.get(s);
    if (m) { this.moving.delete(s); m.prepared.then((p) => closePrepared(p), () => undefined); }
    if (run?.waitingFor.delete(s) && run.waitingFor.size === 0 && run.phase === 'waiting') this.startAttempt(run);
  }

  // ---- FlipParticipant -----------------------------------------------------

  currentEpoch(): number {
    return this.epoch;
  }

  currentSide(): Side {
    return this.host.activeSide();
  }

  /** The last pause that held sessions: how long, when, from and to which side, how it ended. */
  lastPause(): LastPause | null {
    return this.last;
  }

  pause(deadline: number, opts: { hold?: boolean } = {}): Promise<PauseResult> {
    if (this.run && this.run.phase !== 'over') this.endRun(this.run, 'a new pause replaced it');
    this.cancelMoves();
    this.host.refreshVersions?.();
    const from = this.host.activeSide();
    let finish!: (r: PauseResult) => void;
    const result = new Promise<PauseResult>((r) => { finish = r; });
    const run: PauseRun = {
      from, target: otherSide(from), hold: opts.hold === true, deadline, startedAt: performance.now(), entries: new Map(), finish, result,
      phase: 'preparing', holdStartedAt: 0, holdStartedAtEpochMs: 0, attempts: 0, lastHeldAt: 0, queue: [], running: 0, waitingFor: new Set(), catalogs: new Map(), checkScheduled: false, prewarmed: opts.hold === true || !this.host.pools,
    };
    this.run = run;
    if (!run.prewarmed) {
      void Promise.all([this.host.pools!.prewarm(run.target), this.host.listeners?.prewarm(run.target)])
        .finally(() => { run.prewarmed = true; this.scheduleCheck(run); });
    }
    // a session that lost its backend with its side waits for one of its own (lost-backend.ts): it holds up nothing
    for (const s of this.host.sessions()) if (s.phase === 'attached' && !s.isClosed && !s.orphaned) this.addEntry(run, s);
    this.log.info({ from, target: run.target, sessions: run.entries.size, deadlineInMs: deadline - Date.now() }, 'flip: preparing target connections');
    run.deadlineTimer = setTimeout(() => this.atDeadline(run), Math.max(0, deadline - Date.now()));
    // under policy abort a pinned session makes the flip fail: say so now, not at the deadline
    if (this.host.cfg.proxy.pinnedPolicy === 'abort' && !run.hold) {
      const pinned = [...run.entries.values()].filter((e) => e.s.state!.pinnedReasons().length);
      if (pinned.length) { this.fail(run, pinned.map((e) => `${label(e.s)}: pinned (${e.s.state!.pinnedReasons().join(', ')})`)); return result; }
    }
    this.scheduleCheck(run);
    return result;
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
    const compat = this.host.compat?.() ?? null;
    for (const e of run.entries.values()) {
      const s = e.s;
      if (s.isClosed) continue;
      // a session of a migration's new schema version, and the flip goes back on that migration
      if (compat && compat.side !== target && compat.side === run.from && !isOld(s.schemaVersion, compat)) {
        closePrepared(e.prepared);
        s.terminate(`pgflip: traffic went back to ${target}, which does not have the schema of migration ${compat.migration} that this session uses (a rollback, or a switch)`,
          'Reconnect to continue with the schema as it was before the migration.');
        terminated++;
        continue;
      }
      if (e.terminate) {
        closePrepared(e.prepared);
        s.terminate(`terminating connection because pgflip switched to the ${target} side and this session holds state that cannot move (${e.terminate.join(', ')})`,
          'The session was ended by the switch (proxy.pinnedPolicy = terminate). Reconnect to continue on the new side.');
        terminated++;
        continue;
      }
      if (e.pooled && e.ready && target === run.target && !s.isPooledLeased) {
        s.moveToSide(target, e.pooled.translation);
        carried++;
        continue;
      }
      if (!e.ready || !e.prepared || target !== run.target) {
        // not ready (cannot happen after a successful pause) or another target: move at the next switch point
        closePrepared(e.prepared);
        this.moveAtNextSwitchPoint(s, target);
        continue;
      }
      try {
        s.swapBackend(e.prepared.conn, e.prepared.translation);
        e.prepared = undefined;
        carried++;
      } catch (err) {
        this.log.error({ session: s.id, err: (err as Error).message }, 'session could not be carried to the new side');
        s.fatal('08006', `pgflip: the session could not be moved to the ${target} side: ${(err as Error).message}`);
      }
    }
    this.host.setActiveSide(target);
    this.host.pools?.retireSide(run.from);
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
    this.endRun(run, 'aborted');
    this.openGate();
  }

  async adopt(active: Side, epoch: number): Promise<void> {
    this.epoch = epoch;
    if (this.host.activeSide() !== active) {
      this.log.info({ active, epoch }, 'adopting the fleet\'s active side');
      this.host.setActiveSide(active);
    }
    const catalogs: Catalogs = new Map();
    for (const s of this.host.sessions()) {
      if (s.phase === 'attached' && !s.isClosed && !s.orphaned && s.side !== active) this.moveAtNextSwitchPoint(s, active, catalogs);
    }
    // the first adopt opens admission (the proxy accepted nothing before it joined the fleet)
    if (!this.run || this.run.phase === 'over') this.openGate();
  }

  // ---- preparing -------------------------------------------------------------

  /** a session takes part in the flip: its target connection is prepared in turn */
  private addEntry(run: PauseRun, s: Session): Entry {
    const e: Entry = { s, held: false, ready: false };
    run.entries.set(s, e);
    run.queue.push(e);
    this.pump(run);
    return e;
  }

  /** start prepare jobs up to proxy.prepareConcurrency */
  private pump(run: PauseRun): void {
    if (run.hold) return;
    while (run.running < this.host.cfg.proxy.prepareConcurrency && run.queue.length && (run.phase === 'preparing' || run.phase === 'holding' || run.phase === 'waiting')) {
      const e = run.queue.shift()!;
      if (e.s.isClosed || e.prepared || e.preparing || !run.entries.has(e.s)) continue;
      // a pinned session is not prepared: it may not move at all (and its replay could need what pins it)
      if (e.s.state!.pinnedReasons().length && !e.held) continue;
      run.running++;
      if (e.s.isPooled) {
        // a transaction-mode session holds no backend between transactions: it only needs to know the target's OIDs
        e.preparing = this.translationFor(e.s, run.target, run.catalogs).then((translation) => { e.pooled = { translation }; }, (err: Error) => { e.error = err.message; })
          .finally(() => {
            e.preparing = undefined;
            run.running--;
            this.pump(run);
            if (e.held && !e.ready && !e.error) this.makeReady(run, e);
            this.scheduleCheck(run);
          });
        continue;
      }
      e.preparing = this.prepare(e.s, run.target, run.catalogs).then((p) => {
        if (run.phase === 'over' || !run.entries.has(e.s)) { closePrepared(p); return; }
        e.prepared = p;
      }, (err: Error) => { e.error = err.message; }).finally(() => {
        e.preparing = undefined;
        run.running--;
        this.pump(run);
        if (e.held && !e.ready && !e.error) this.makeReady(run, e);
        this.scheduleCheck(run);
      });
    }
  }

  /** a connection on `side` carrying the session's state, for a session that lost its backend */
  prepareFor(s: Session, side: Side): Promise<Prepared> {
    return this.prepare(s, side);
  }

  /** an authenticated connection on `side` with the session's state as it is now */
  private async prepare(s: Session, side: Side, catalogs: Catalogs = new Map()): Promise<Prepared> {
    const translation = await this.translationFor(s, side, catalogs);
    // a flip prepares with the schema version record read at its pause
    await this.host.versionsReady?.();
    const conn = await s.openBackend(side);
    try {
      const version = s.state!.version;
      const carried = s.state!.snapshotCarried();
      const plan = replayPlan(emptyCarried(), carried);
      const compat = s.compatSchemaOn(side);
      // the session's own search_path replaced the startup one: the compatibility schema goes in front of it
      if (compat && carried.settings.has('search_path')) plan.sql.push(compatFixupSql(compat));
      const r = await runReplay(conn, plan);
      if (r.skipped.length) this.log.warn({ session: s.id, side, skipped: r.skipped }, 'prepared statements the new side refused are not carried');
      return { conn, carried, version, translation };
    } catch (err) {
      conn.socket.destroy();
      throw err;
    }
  }

  /** the OID translation for a session on `side`: none on the side it started on, or where the OIDs agree */
  private async translationFor(s: Session, side: Side, catalogs: Catalogs): Promise<OidTranslation | null> {
    if (side === s.oidHome) return null;
    const [home, there] = await Promise.all([this.catalog(s, s.oidHome, catalogs), this.catalog(s, side, catalogs)]);
    return home && there ? oidTranslation(home, there) : null;
  }

  private catalog(s: Session, side: Side, catalogs: Catalogs): Promise<OidCatalog | null> {
    const key = `${side}/${s.database}`;
    let c = catalogs.get(key);
    if (!c) {
      c = (async () => {
        const conn = await s.openBackend(side);
        try {
          return await readOidCatalog(conn.socket);
        } finally {
          conn.socket.on('error', () => undefined);
          conn.socket.end(TERMINATE);
          conn.socket.resume(); // read the server's close, or the socket would stay half-open
        }
      })().catch((err: Error) => {
        this.log.warn({ side, database: s.database, err: err.message }, 'cannot read the OIDs of user-defined types; sessions moved there keep the server\'s');
        return null;
      });
      catalogs.set(key, c);
    }
    return c;
  }

  // ---- holding -----------------------------------------------------------------

  /** every session prepared: hold them all at their switch points, for at most holdGraceMs */
  private startAttempt(run: PauseRun): void {
    const pinned = [...run.entries.values()].filter((e) => e.s.state!.pinnedReasons().length);
    if (pinned.length && this.host.cfg.proxy.pinnedPolicy === 'abort' && !run.hold) {
      return this.fail(run, pinned.map((e) => `${label(e.s)}: pinned (${e.s.state!.pinnedReasons().join(', ')})`));
    }
    run.phase = 'holding';
    run.attempts++;
    run.holdStartedAt = performance.now();
    run.holdStartedAtEpochMs = Date.now();
    run.lastHeldAt = 0;
    this.closeGate();
    this.log.info({ sessions: run.entries.size, attempt: run.attempts, prepareMs: Math.round(run.holdStartedAt - run.startedAt) }, 'holding sessions at transaction boundaries');
    for (const e of run.entries.values()) this.arm(run, e);
    run.graceTimer = setTimeout(() => this.graceOver(run), this.host.cfg.proxy.holdGraceMs);
    this.scheduleCheck(run);
  }

  private arm(run: PauseRun, e: Entry): void {
    if (e.held || e.s.phase !== 'attached') return;
    e.s.armSwitchPoint(() => {
      if ((run.phase !== 'holding' && run.phase !== 'paused') || e.held) return;
      e.s.onSwitchPoint = null;
      e.s.hold();
      e.held = true;
      run.lastHeldAt = performance.now();
      const pinned = run.hold ? [] : e.s.state!.pinnedReasons();
      if (run.hold) e.ready = true; // nothing moves: nothing to bring up to date
      else if (pinned.length) {
        // policy terminate (abort failed the attempt before it started): ended once the fleet committed
        e.terminate = pinned;
        closePrepared(e.prepared);
        e.prepared = undefined;
        e.ready = true;
      } else this.makeReady(run, e);
      this.scheduleCheck(run);
    });
  }

  /** a held session's target connection brought up to its state now (nothing to do when it did nothing since its replay) */
  private makeReady(run: PauseRun, e: Entry): void {
    if (e.s.isPooled) {
      if (e.pooled) e.ready = true;
      else if (!e.preparing) { run.queue.unshift(e); this.pump(run); }
      return;
    }
    const p = e.prepared;
    if (!p) {
      // not prepared yet (joined late, or unpinned since): prepare now
      if (!e.preparing) { run.queue.unshift(e); this.pump(run); }
      return;
    }
    const st = e.s.state!;
    if (p.version === st.version) { e.ready = true; return; }
    const version = st.version;
    const to = st.snapshotCarried();
    void runReplay(p.conn, replayPlan(p.carried, to)).then(() => {
      p.carried = to;
      p.version = version;
      e.ready = true;
    }, (err: Error) => { e.error = err.message; }).finally(() => this.scheduleCheck(run));
  }

  /** one check per turn of the event loop: holding a thousand sessions at once must not scan them a thousand times */
  private scheduleCheck(run: PauseRun): void {
    if (run.checkScheduled) return;
    run.checkScheduled = true;
    queueMicrotask(() => { run.checkScheduled = false; this.check(run); });
  }

  private check(run: PauseRun): void {
    if (run.phase === 'paused' || run.phase === 'switched' || run.phase === 'over') return;
    const entries = [...run.entries.values()];
    const failed = entries.filter((e) => e.error);
    if (failed.length) return this.fail(run, failed.map((e) => `${label(e.s)}: cannot prepare its ${run.target} backend: ${e.error}`));
    if (run.phase === 'preparing') {
      if (run.hold || run.prewarmed && run.running === 0 && entries.every((e) => e.prepared || e.pooled || e.s.state!.pinnedReasons().length || e.s.isClosed)) this.startAttempt(run);
      return;
    }
    if (run.phase !== 'holding') return;
    if (entries.every((e) => e.held && e.ready)) {
      run.phase = 'paused';
      this.updateHeldGauge();
      clearTimeout(run.deadlineTimer);
      clearTimeout(run.graceTimer);
      const now = performance.now();
      this.log.info({ sessions: entries.length, attempts: run.attempts, ms: Math.round(now - run.startedAt), heldMs: Math.round(now - run.holdStartedAt), allHeldMs: Math.round(Math.max(0, run.lastHeldAt - run.holdStartedAt)) },
        'paused: every session holds at a transaction boundary, its target backend ready');
      run.finish({ paused: true });
    }
  }

  /**
   * The hold lasted holdGraceMs and some sessions are still in a transaction
   * or a statement: let everyone go, and try again once those reach a switch
   * point (until the deadline).
   */
  private graceOver(run: PauseRun): void {
    if (run.phase !== 'holding') return;
    const stragglers = [...run.entries.values()].filter((e) => !e.held);
    if (!stragglers.length) return; // everyone holds; the last replays are in flight
    this.log.info({ waitingFor: stragglers.map((e) => `${label(e.s)}: ${why(e.s)}`).slice(0, 20), attempt: run.attempts }, 'not every session reached a switch point within the hold grace; releasing and trying again');
    this.releaseHeld(run);
    this.observePause(run);
    run.phase = 'waiting';
    this.openGate();
    // the next attempt starts when every straggler has been at a switch point once
    run.waitingFor = new Set(stragglers.map((e) => e.s));
    for (const e of stragglers) {
      e.s.armSwitchPoint(() => {
        e.s.onSwitchPoint = null;
        if (run.waitingFor.delete(e.s) && run.waitingFor.size === 0 && run.phase === 'waiting') this.startAttempt(run);
      });
    }
  }

  private atDeadline(run: PauseRun): void {
    if (run.phase === 'preparing') {
      const slow = [...run.entries.values()].filter((e) => !e.prepared && !e.pooled && !e.s.state!.pinnedReasons().length);
      return this.fail(run, slow.map((e) => `${label(e.s)}: its ${run.target} backend was not ready before the deadline`));
    }
    if (run.phase !== 'holding' && run.phase !== 'waiting') return;
    const blocked = run.phase === 'waiting' ? [...run.waitingFor].map((s) => `${label(s)}: ${why(s)}`)
      : [...run.entries.values()].filter((e) => !e.held || !e.ready).map((e) => `${label(e.s)}: ${e.held ? `its ${run.target} backend was not ready in time` : why(e.s)}`);
    this.fail(run, blocked.length ? blocked : ['the deadline passed']);
  }

  /** paused: false. The flip cannot commit without this proxy's `paused`, so the sessions go back to work at once. */
  private fail(run: PauseRun, blocked: string[]): void {
    this.log.warn({ blocked: blocked.slice(0, 50), count: blocked.length }, 'pause failed');
    run.finish({ paused: false, blocked });
    this.endRun(run, 'failed');
    this.openGate();
  }

  private releaseHeld(run: PauseRun): void {
    clearTimeout(run.graceTimer);
    for (const e of run.entries.values()) {
      e.s.onSwitchPoint = null;
      if (e.held && !e.s.isClosed) {
        if (e.s.backendGone) void this.reconnect(e.s, e.s.side).finally(() => e.s.release());
        else e.s.release();
      }
      e.held = false;
      e.ready = false;
      e.terminate = undefined;
    }
    this.updateHeldGauge();
  }

  /** the pause clients saw: from the first hold to the release */
  private observePause(run: PauseRun): number {
    if (!run.holdStartedAt) return 0;
    const seconds = (performance.now() - run.holdStartedAt) / 1000;
    this.host.metrics.flipPause.observe(seconds);
    return seconds;
  }

  /**
   * Releases every held session: on the new side after a switch, else on the
   * side it was on — one whose backend was ended meanwhile (the old side's
   * fencing terminates backends) first gets a fresh one there. Prepared
   * connections not used are closed.
   */
  private endRun(run: PauseRun, how: string): void {
    if (run.phase === 'over') return;
    const wasHolding = run.phase === 'holding' || run.phase === 'paused' || run.phase === 'switched';
    run.phase = 'over';
    clearTimeout(run.deadlineTimer);
    clearTimeout(run.graceTimer);
    run.finish({ paused: false });
    run.queue = [];
    for (const e of run.entries.values()) {
      closePrepared(e.prepared);
      e.prepared = undefined;
    }
    this.releaseHeld(run);
    const seconds = wasHolding ? this.observePause(run) : 0;
    if (wasHolding) {
      this.last = { ms: Math.round(seconds * 10000) / 10, at: new Date(run.holdStartedAtEpochMs).toISOString(), from: run.from, target: run.target, how, attempts: run.attempts };
    }
    this.log.info({ how, pauseMs: Math.round(seconds * 1000), attempts: run.attempts }, 'pause over');
    if (this.run === run) this.run = null;
  }

  private updateHeldGauge(): void {
    let n = 0;
    for (const s of this.host.sessions()) if (s.isHeld) n++;
    this.host.metrics.heldSessions.set(n);
  }

  // ---- moving sessions outside a pause (adopt) -----------------------------

  private cancelMoves(): void {
    for (const [s, m] of this.moving) {
      s.onSwitchPoint = null;
      m.prepared.then((p) => closePrepared(p), () => undefined);
    }
    this.moving.clear();
  }

  /**
   * Prepare a connection on `side`, then at the session's next switch point
   * hold it briefly, bring the connection up to its state, swap, release. A
   * pinned session is not moved while it is pinned: it stays where it is and
   * moves at the first switch point where nothing pins it.
   */
  private moveAtNextSwitchPoint(s: Session, side: Side, catalogs: Catalogs = new Map()): void {
    if (this.moving.get(s)?.side === side) return;
    if (s.isPooled && !s.state!.pinnedReasons().length) {
      void this.translationFor(s, side, catalogs).then((translation) => {
        if (s.isClosed) return;
        s.armSwitchPoint(() => {
          if (s.isPooledLeased) return;
          s.onSwitchPoint = null;
          s.moveToSide(side, translation);
        });
      });
      return;
    }
    const prepared = this.prepare(s, side, catalogs);
    const m = { side, prepared };
    this.moving.set(s, m);
    let warned = false;
    prepared.then((p) => {
      if (this.moving.get(s) !== m || s.isClosed) { closePrepared(p); return; }
      s.armSwitchPoint(() => {
        const pinned = s.state!.pinnedReasons();
        if (pinned.length) {
          if (!warned) this.log.warn({ session: s.id, side, pinned }, 'a pinned session stays on its side until nothing pins it');
          warned = true;
          return;
        }
        s.onSwitchPoint = null;
        this.moving.delete(s);
        s.hold();
        void (async () => {
          try {
            const st = s.state!;
            if (p.version !== st.version) await runReplay(p.conn, replayPlan(p.carried, st.snapshotCarried()));
            s.swapBackend(p.conn, p.translation);
          } catch (err) {
            p.conn.socket.destroy();
            s.fatal('08006', `pgflip: the session could not be moved to the ${side} side: ${(err as Error).message}`);
          } finally {
            s.release();
          }
        })();
      });
    }, (err: Error) => {
      if (this.moving.get(s) !== m) return;
      this.moving.delete(s);
      this.log.error({ session: s.id, side, err: err.message }, 'cannot open a backend to move the session; it stays where it is');
    });
  }

  /**
   * A fresh backend on `side` with the session's state, swapped in; the client
   * learns only if that fails. What pins a session died with its backend.
   */
  private async reconnect(s: Session, side: Side): Promise<void> {
    const pinned = s.state!.pinnedReasons();
    if (pinned.length) {
      s.terminate(`terminating connection because its ${side} backend was ended and this session held state that cannot be restored (${pinned.join(', ')})`, 'Reconnect to continue.');
      return;
    }
    try {
      const p = await this.prepare(s, side);
      s.swapBackend(p.conn, p.translation);
    } catch (err) {
      s.fatal('08006', `pgflip: the connection to the ${side} backend was lost and could not be reopened: ${(err as Error).message}`);
    }
  }
}

function closePrepared(p: Prepared | undefined): void {
  const sock = p?.conn.socket;
  if (!sock || sock.writableEnded || sock.destroyed) return;
  sock.on('error', () => undefined);
  sock.end(TERMINATE);
  sock.resume();
}

function label(s: Session): string {
  const app = s.state?.startupParams.get('application_name');
  return `${s.id}${app ? ` (${app})` : ''}`;
}

/** why a session is not at a switch point, with how long it has been so */
function why(s: Session): string {
  if (s.phase !== 'attached') return 'still connecting';
  const st = s.state!;
  const since = s.busySince ? ` for ${((performance.now() - s.busySince) / 1000).toFixed(1)} s` : '';
  if (st.sent !== st.done || st.inCopy) return `a statement still running${since}`;
  if (st.txStatus === 'T') return `in a transaction${since}`;
  if (st.txStatus === 'E') return `in a failed transaction${since}`;
  return 'inside an extended-protocol batch (no Sync yet)';
}

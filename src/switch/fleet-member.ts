/**
 * The proxy's side of the fleet flip (docs/fleet.md): registers the proxy with a
 * heartbeat, listens for pause/switch/abort, drives the local FlipParticipant
 * and answers on the acknowledgement channel.
 *
 * Safety rests on the flip record in the store, not on messages arriving:
 * pub/sub is fire-and-forget, so a paused member that hears no decision by
 * its deadline plus the commit window asks the store, which atomically either
 * confirms the commit or records the abort — the controller and a member can
 * never decide differently. Epochs order everything else: a member that finds
 * a newer epoch than its own (late start, lost connection, missed message)
 * adopts it before serving on.
 *
 * The store coordinates flips; it does not admit clients. While it is unreachable the member
 * keeps serving its last committed side and epoch (flips are refused by the coordinator), and
 * a store that comes back empty or behind (a Redis restarted without persistence) is written
 * back from what the members serve (seedActive: the highest epoch wins), never from a default.
 */
import os from 'node:os';
import { logger } from '../observability/logger';
import { CHANNELS } from '../state/keys';
import type { Side } from '../side';
import { sleep } from '../util/sleep';
import type { ActiveState, ProxyMeta, ProxyRegistration, StateStore, Unsubscribe } from '../state/store';
import { AbortCommand, FlipAck, FlipCommand, parseFlipCommand, PauseCommand, SwitchCommand } from './messages';
import type { FlipParticipant, PauseResult } from './participant';

export interface FleetMemberOptions {
  /** how often the registration is refreshed and the epoch compared (default 1000 ms) */
  heartbeatMs?: number;
  /** a member not heard from for this long counts as dead (default 3 × heartbeat) */
  ttlMs?: number;
  /** side to record when the store holds none yet (first start of a fleet) */
  defaultActive?: Side;
  /** published in the registration (admin URL, listen address) */
  meta?: ProxyMeta;
  /**
   * At start with no active side in the store, how long to wait for a running member to write
   * back the one it serves before recording defaultActive (default: 1.5 × heartbeat on Redis,
   * 0 in memory, where nothing else could).
   */
  seedWaitMs?: number;
}

interface LocalFlip {
  cmd: PauseCommand;
  receivedAt: number;
  phase: 'pausing' | 'paused' | 'switching' | 'done';
  pausing: Promise<PauseResult>;
  resolveTimer?: NodeJS.Timeout;
}

export class FleetMember {
  private readonly heartbeatMs: number;
  private readonly ttlMs: number;
  private readonly log;
  private flip: LocalFlip | null = null;
  private unsubscribe: Unsubscribe | null = null;
  private offReconnect: (() => void) | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** adopt, pause start and switch run one at a time, in arrival order; abort does not wait */
  private chain: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** since when the store has been unreachable (logged once, and its end) */
  private storeDownSince: number | null = null;
  private readonly seedWaitMs: number;

  constructor(private readonly store: StateStore, private readonly participant: FlipParticipant, private readonly opts: FleetMemberOptions = {}) {
    this.heartbeatMs = opts.heartbeatMs ?? 1000;
    this.ttlMs = opts.ttlMs ?? this.heartbeatMs * 3;
    if (this.ttlMs <= this.heartbeatMs) throw new Error(`fleet member ${participant.id}: ttlMs (${this.ttlMs}) must exceed heartbeatMs (${this.heartbeatMs})`);
    this.log = logger().child({ component: 'fleet-member', proxyId: participant.id });
    this.seedWaitMs = opts.seedWaitMs ?? (store.kind === 'redis' ? Math.round(this.heartbeatMs * 1.5) : 0);
  }

  get id(): string {
    return this.participant.id;
  }

  /**
   * Joins the fleet. Resolves once the participant serves the current active
   * side and epoch — only then may the proxy accept clients. A flip in progress
   * is waited out first, so a late joiner never serves the side being left.
   */
  async start(): Promise<ActiveState> {
    this.unsubscribe = await this.store.subscribe(CHANNELS.flip, (m) => this.onMessage(m));
    this.offReconnect = this.store.onReconnect(() => { void this.tick(); });
    const current = await this.serial(async () => {
      await this.waitOutFlipInProgress();
      let active = await this.store.getActive();
      if (!active && this.seedWaitMs > 0) {
        // a fleet whose store came back empty: a running member writes back its side within a heartbeat
        this.log.info({ waitMs: this.seedWaitMs }, 'no active side in the state store: waiting for a running proxy to write back the one it serves');
        await sleep(this.seedWaitMs);
        active = await this.store.getActive();
      }
      active ??= await this.store.initActive(this.opts.defaultActive ?? 'blue');
      await this.participant.adopt(active.active, active.epoch);
      return active;
    });
    await this.store.registerProxy(this.registration(), this.ttlMs);
    this.heartbeatTimer = setInterval(() => { void this.tick(); }, this.heartbeatMs);
    this.heartbeatTimer.unref();
    this.log.info({ active: current.active, epoch: current.epoch }, 'joined the fleet');
    return current;
  }

  /** leaves the fleet: deregisters so a flip does not wait for this proxy */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.flip?.resolveTimer) clearTimeout(this.flip.resolveTimer);
    this.offReconnect?.();
    await this.unsubscribe?.();
    await this.store.deregisterProxy(this.participant.id).catch(() => undefined);
  }

  private registration(): ProxyRegistration {
    return { id: this.participant.id, host: os.hostname(), pid: process.pid, startedAt: Date.now(), meta: this.opts.meta };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Waits until the flip in progress is decided. If it outlives its hold time
   * (its controller died and no paused proxy was left to decide), this member
   * decides it through the store like a paused one would.
   */
  private async waitOutFlipInProgress(): Promise<void> {
    let firstSeen: { id: string; at: number } | undefined;
    for (;;) {
      const f = await this.store.currentFlip();
      if (!f || f.state !== 'pausing' || this.stopped) return;
      if (firstSeen?.id !== f.id) firstSeen = { id: f.id, at: Date.now() };
      if (Date.now() - firstSeen.at > f.holdMs) {
        await this.store.abortFlip(f.id, `undecided after its hold time; aborted by starting proxy ${this.id}`);
        return;
      }
      await sleep(Math.min(100, this.heartbeatMs));
    }
  }

  private onMessage(raw: unknown): void {
    const cmd = parseFlipCommand(raw);
    if (!cmd || this.stopped) return;
    const handle = (c: FlipCommand): Promise<void> => {
      switch (c.type) {
        case 'pause': return this.onPause(c);
        case 'switch': return this.serial(() => this.onSwitch(c));
        case 'abort': return this.onAbort(c);
      }
    };
    handle(cmd).catch((err: Error) => this.log.error({ flipId: cmd.flipId, type: cmd.type, err: err.message }, 'flip step failed'));
  }

  private async onPause(cmd: PauseCommand): Promise<void> {
    const receivedAt = Date.now();
    // only starting the pause is serialised; switch and abort must not wait behind its deadline
    const flip = await this.serial(async () => {
      if (this.flip && this.flip.phase !== 'done') await this.resolveFromStore(this.flip);
      // a pause queued behind start-up may belong to a flip that is already decided
      const rec = await this.store.currentFlip();
      if (rec?.id !== cmd.flipId || rec.state !== 'pausing') return null;
      const mine = this.participant.currentEpoch();
      if (cmd.fromEpoch < mine) {
        this.log.warn({ flipId: cmd.flipId, fromEpoch: cmd.fromEpoch, epoch: mine }, 'ignored a pause for an older epoch');
        return null;
      }
      if (cmd.fromEpoch > mine) await this.participant.adopt(cmd.from, cmd.fromEpoch);
      const deadline = receivedAt + cmd.timeoutMs;
      const f: LocalFlip = { cmd, receivedAt, phase: 'pausing', pausing: this.participant.pause(deadline, { hold: cmd.hold === true }) };
      f.resolveTimer = setTimeout(() => { void this.resolveFromStore(f); }, cmd.timeoutMs + cmd.commitWindowMs);
      this.flip = f;
      return f;
    });
    if (!flip) return;
    const res = await flip.pausing.catch((err: Error): PauseResult => ({ paused: false, blocked: [`pause failed: ${err.message}`] }));
    if (flip.phase !== 'pausing') return; // aborted or resolved meanwhile
    flip.phase = 'paused';
    await this.ack({ type: 'paused', flipId: cmd.flipId, proxyId: this.id, paused: res.paused, ...(res.blocked?.length ? { blocked: res.blocked } : {}) });
  }

  private async onSwitch(cmd: SwitchCommand): Promise<void> {
    const f = this.flip;
    if (f && f.cmd.flipId === cmd.flipId && (f.phase === 'pausing' || f.phase === 'paused')) {
      await this.switchFlip(f, cmd.target, cmd.epoch);
    } else if (cmd.epoch > this.participant.currentEpoch()) {
      // a flip this member was not paused for (joined meanwhile, or missed the pause)
      this.log.info({ flipId: cmd.flipId, epoch: cmd.epoch, target: cmd.target }, 'adopting a flip it was not part of');
      await this.participant.adopt(cmd.target, cmd.epoch);
    }
  }

  private async switchFlip(f: LocalFlip, target: Side, epoch: number): Promise<void> {
    f.phase = 'switching';
    clearTimeout(f.resolveTimer);
    await f.pausing.catch(() => undefined);
    let ack: FlipAck;
    try {
      const { heldSince, ...r } = await this.participant.switchTo(target, epoch);
      this.participant.resume();
      ack = { type: 'switched', flipId: f.cmd.flipId, proxyId: this.id, epoch, ...r, pauseMs: Date.now() - Math.max(f.receivedAt, heldSince ?? 0) };
    } catch (err) {
      // the fleet has committed: this proxy must serve the target too, whatever it costs its sessions
      this.log.error({ flipId: f.cmd.flipId, err: (err as Error).message }, 'switch failed; re-synchronising');
      await this.participant.adopt(target, epoch).catch((e: Error) => this.log.error({ err: e.message }, 'adopt failed'));
      this.participant.resume();
      ack = { type: 'switched', flipId: f.cmd.flipId, proxyId: this.id, epoch, carried: 0, terminated: 0, pauseMs: Date.now() - f.receivedAt, error: (err as Error).message };
    }
    f.phase = 'done';
    await this.ack(ack);
  }

  private async onAbort(cmd: AbortCommand): Promise<void> {
    const f = this.flip;
    if (!f || f.cmd.flipId !== cmd.flipId || (f.phase !== 'pausing' && f.phase !== 'paused')) return;
    this.abortLocal(f, cmd.reason);
    await this.ack({ type: 'aborted', flipId: cmd.flipId, proxyId: this.id, pauseMs: Date.now() - f.receivedAt });
  }

  private abortLocal(f: LocalFlip, reason: string): void {
    f.phase = 'done';
    clearTimeout(f.resolveTimer);
    this.participant.abort();
    this.log.warn({ flipId: f.cmd.flipId, reason }, 'flip aborted; serving the old side');
  }

  /**
   * No decision reached this member in time: the store decides, atomically.
   * When the store cannot be reached the member keeps holding and asks again —
   * resuming on a guess could put writes on a side the fleet has left.
   */
  private async resolveFromStore(f: LocalFlip): Promise<void> {
    if (f.phase !== 'pausing' && f.phase !== 'paused') return;
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const rec = await this.store.abortFlip(f.cmd.flipId, `proxy ${this.id} heard no decision within its deadline and commit window`);
        if (f.phase !== 'pausing' && f.phase !== 'paused') return; // a message beat us to it
        if (rec?.state === 'committed') {
          await this.switchFlip(f, rec.target, rec.fromEpoch + 1);
        } else {
          this.abortLocal(f, rec?.reason ?? 'flip record gone');
          await this.ack({ type: 'aborted', flipId: f.cmd.flipId, proxyId: this.id, pauseMs: Date.now() - f.receivedAt });
        }
        return;
      } catch (err) {
        this.log.error({ flipId: f.cmd.flipId, err: (err as Error).message }, 'cannot reach the state store to resolve the flip; still holding');
        await sleep(Math.min(100 * 2 ** attempt, this.heartbeatMs));
      }
    }
  }

  /**
   * Heartbeat, re-registration after expiry, re-synchronisation to a newer epoch, and writing
   * back the side this member serves into a store that lost it.
   */
  private async tick(): Promise<void> {
    if (this.stopped) return;
    // commands to a store that is down would only queue behind its reconnects
    if (!this.store.reachable()) { this.storeDown('connection down'); return; }
    try {
      if (!(await this.store.heartbeat(this.id, this.ttlMs))) {
        this.log.warn('registration had expired; registering again');
        await this.store.registerProxy(this.registration(), this.ttlMs);
      }
      await this.serial(async () => {
        if (this.stopped || (this.flip && this.flip.phase !== 'done')) return;
        let active = await this.store.getActive();
        const own = { active: this.participant.currentSide(), epoch: this.participant.currentEpoch() };
        if (!active || active.epoch < own.epoch) {
          const stored = active;
          active = await this.store.seedActive(own);
          this.log.warn({ stored, serving: own, now: active }, 'the state store had lost the active side: wrote back the one this proxy serves');
        }
        if (active.epoch > this.participant.currentEpoch()) {
          this.log.warn({ active: active.active, epoch: active.epoch, own: this.participant.currentEpoch() }, 'found a newer epoch; re-synchronising');
          await this.participant.adopt(active.active, active.epoch);
        }
      });
      if (this.storeDownSince !== null) {
        this.log.info({ downMs: Date.now() - this.storeDownSince }, 'state store reachable again');
        this.storeDownSince = null;
      }
    } catch (err) {
      this.storeDown((err as Error).message);
    }
  }

  private storeDown(why: string): void {
    if (this.storeDownSince !== null) return;
    this.storeDownSince = Date.now();
    this.log.error({ err: why, active: this.participant.currentSide(), epoch: this.participant.currentEpoch() },
      'state store unreachable: serving on the last committed side; flips are refused until it is back');
  }

  private async ack(a: FlipAck): Promise<void> {
    try {
      await this.store.publish(CHANNELS.flipAcks, a);
    } catch (err) {
      this.log.error({ flipId: a.flipId, type: a.type, err: (err as Error).message }, 'could not send acknowledgement');
    }
  }
}

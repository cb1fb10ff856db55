/**
 * The controller's side of the fleet flip (docs/fleet.md), two phases:
 *
 *   1. record the flip (`pausing`) and publish pause; every live proxy answers
 *      `paused` once its sessions hold at transaction boundaries;
 *   2. run beforeCommit (final catch-up, fencing), commit active=target and
 *      epoch+1 atomically with the flip record, publish switch, collect acks.
 *
 * Any failure before the commit — a proxy that does not answer by the deadline,
 * answers "blocked", disappears, beforeCommit throwing, the commit losing to a
 * member that gave up — marks the record aborted and publishes abort: every
 * proxy resumes on the old side; active side and epoch are untouched.
 */
import { randomUUID } from 'node:crypto';
import { logger } from '../observability/logger';
import { CHANNELS } from '../state/keys';
import type { Side } from '../side';
import { sleep } from '../util/sleep';
import { FlipRecord, StateStore, StateStoreUnreachable, Unsubscribe } from '../state/store';
import { FlipAck, parseFlipAck, PauseCommand } from './messages';

export interface FlipOptions {
  target: Side;
  /** how long proxies have to bring every session to a transaction boundary */
  deadlineMs: number;
  /** runs while every proxy holds its clients; throwing aborts the flip */
  beforeCommit?: () => Promise<void>;
  /** runs after an abort decided after beforeCommit started (e.g. to lift fencing), before any proxy is told to resume */
  onAbort?: (reason: string) => Promise<void>;
  /** the controller's leader token: a stale leader's flip is refused by the store */
  fencingToken?: number;
  /** a hold: proxies hold clients without preparing the target (beforeCommit must decline the commit) */
  hold?: boolean;
}

export interface BlockedProxy {
  proxyId: string;
  /** blocked: sessions stayed in a transaction; no-answer: silent until the deadline; lost: registration expired */
  why: 'blocked' | 'no-answer' | 'lost';
  sessions?: string[];
}

export interface FleetFlipOutcome {
  ok: boolean;
  flipId: string;
  from: Side;
  target: Side;
  /** side and epoch serving after the flip (unchanged on failure) */
  active: Side;
  epoch: number;
  /** the proxies that were asked to pause */
  proxies: string[];
  /** per proxy, how long it held its clients (switched acks) */
  pauseMs: Record<string, number>;
  sessionsCarried: number;
  sessionsTerminated: number;
  /** failure: the proxies that prevented the pause, and their sessions as "proxyId/session" */
  blockedProxies?: BlockedProxy[];
  blockedSessions?: string[];
  /** committed, but these proxies did not confirm in time (they re-synchronise on their own) */
  unacknowledged?: string[];
  /** committed, but switchTo failed there and the proxy fell back to adopt() */
  switchErrors?: Record<string, string>;
  /** target was already active: nothing done */
  noop?: boolean;
  reason?: string;
  durationMs: number;
}

export interface CoordinatorOptions {
  /** after the deadline, how long members wait for a decision before asking the store (default 5000) */
  commitWindowMs?: number;
  /** how long to wait for `switched` acks after the commit (default 5000) */
  switchAckTimeoutMs?: number;
  /** how long past the deadline an answer may take to arrive (a proxy reporting blocked sessions at its deadline; default 200) */
  answerGraceMs?: number;
  /** how often member liveness is checked while waiting (default 200) */
  livenessPollMs?: number;
  /** a `pausing` record older than this belongs to a controller that died mid-flip (default 60000) */
  staleFlipMs?: number;
}

type Base = Omit<FleetFlipOutcome, 'ok' | 'proxies' | 'durationMs'>;

export class FlipCoordinator {
  private readonly commitWindowMs: number;
  private readonly switchAckTimeoutMs: number;
  private readonly pollMs: number;
  private readonly answerGraceMs: number;
  private readonly staleFlipMs: number;
  private readonly log = logger().child({ component: 'flip-coordinator' });
  private unsubscribe: Unsubscribe | null = null;
  private readonly ackListeners = new Set<(a: FlipAck) => void>();
  private running = false;

  constructor(private readonly store: StateStore, opts: CoordinatorOptions = {}) {
    this.commitWindowMs = opts.commitWindowMs ?? 5000;
    this.switchAckTimeoutMs = opts.switchAckTimeoutMs ?? 5000;
    this.pollMs = opts.livenessPollMs ?? 200;
    this.answerGraceMs = opts.answerGraceMs ?? 200;
    this.staleFlipMs = opts.staleFlipMs ?? 60_000;
  }

  async close(): Promise<void> {
    await this.unsubscribe?.();
    this.unsubscribe = null;
  }

  async flip(opts: FlipOptions): Promise<FleetFlipOutcome> {
    if (opts.target !== 'blue' && opts.target !== 'green') throw new Error(`flip target must be blue or green, not ${JSON.stringify(opts.target)}`);
    if (!(opts.deadlineMs > 0)) throw new Error(`flip deadlineMs must be a positive number of milliseconds, not ${opts.deadlineMs}`);
    if (this.running) throw new Error('a flip is already running in this controller');
    // without the store no flip can be decided safely: refuse before anyone pauses
    if (!this.store.reachable()) throw new StateStoreUnreachable(`flip to ${opts.target}`);
    this.running = true;
    try {
      return await this.run(opts);
    } finally {
      this.running = false;
    }
  }

  private async run(opts: FlipOptions): Promise<FleetFlipOutcome> {
    const t0 = Date.now();
    this.unsubscribe ??= await this.store.subscribe(CHANNELS.flipAcks, (m) => {
      const a = parseFlipAck(m);
      if (a) for (const l of this.ackListeners) l(a);
    });
    const cur = await this.store.getActive();
    // guessing the serving side would be worse than refusing: whoever starts the fleet records it (initActive)
    if (!cur) throw new Error('no active side recorded in the state store yet (initActive first)');
    const flipId = randomUUID();
    const base: Base = { flipId, from: cur.active, target: opts.target, active: cur.active, epoch: cur.epoch, pauseMs: {}, sessionsCarried: 0, sessionsTerminated: 0 };
    if (cur.active === opts.target) {
      return { ...base, ok: true, noop: true, proxies: [], durationMs: Date.now() - t0 };
    }

    try {
      await this.begin({ id: flipId, fromEpoch: cur.epoch, from: cur.active, target: opts.target, startedAt: Date.now(), holdMs: opts.deadlineMs + this.commitWindowMs }, opts.fencingToken);
    } catch (err) {
      // nothing was paused yet
      return { ...base, ok: false, proxies: [], reason: (err as Error).message, durationMs: Date.now() - t0 };
    }
    const acks: FlipAck[] = [];
    const listener = (a: FlipAck) => { if (a.flipId === flipId) acks.push(a); };
    this.ackListeners.add(listener);
    let beforeCommitRan = false;
    const proxies: string[] = [];
    const fail = async (why: string, blocked?: BlockedProxy[]): Promise<FleetFlipOutcome> => {
      const rec = await this.store.abortFlip(flipId, why);
      // a member that gave up waiting may have aborted it first: its reason is what happened
      const reason = rec?.state === 'aborted' && rec.reason ? rec.reason : why;
      if (rec?.state === 'committed') {
        // the commit went through although its reply was lost
        await this.store.publish(CHANNELS.flip, { type: 'switch', flipId, epoch: cur.epoch + 1, target: opts.target });
        return this.afterCommit(opts, cur.epoch + 1, proxies, acks, t0, base);
      }
      // undo what beforeCommit did (the fence of the side left) while the proxies still hold:
      // a session resumed there first would find it read-only
      if (beforeCommitRan && opts.onAbort) await opts.onAbort(reason).catch((e: Error) => this.log.error({ err: e.message }, 'onAbort failed'));
      await this.store.publish(CHANNELS.flip, { type: 'abort', flipId, reason });
      this.log.warn({ flipId, reason, blocked }, 'flip aborted');
      // the proxies that paused answer promptly: wait briefly for how long they held their clients
      const responsive = proxies.filter((p) => acks.some((a) => a.type === 'paused' && a.proxyId === p && a.paused));
      await this.waitForAcks(responsive, 'aborted', acks, Math.min(1000, this.switchAckTimeoutMs));
      for (const a of acks) if (a.type === 'aborted') base.pauseMs[a.proxyId] = a.pauseMs;
      const blockedSessions = blocked?.flatMap((b) => (b.sessions ?? []).map((s) => `${b.proxyId}/${s}`));
      return {
        ...base, ok: false, proxies, reason, durationMs: Date.now() - t0,
        ...(blocked?.length ? { blockedProxies: blocked } : {}),
        ...(blockedSessions?.length ? { blockedSessions } : {}),
      };
    };

    try {
      proxies.push(...(await this.store.liveProxies()).map((p) => p.id).sort());
      const pause: PauseCommand = {
        type: 'pause', flipId, fromEpoch: cur.epoch, from: cur.active, epoch: cur.epoch + 1, target: opts.target,
        timeoutMs: opts.deadlineMs, commitWindowMs: this.commitWindowMs, ...(opts.hold ? { hold: true } : {}),
      };
      this.log.info({ flipId, from: cur.active, target: opts.target, epoch: cur.epoch + 1, proxies }, 'pausing the fleet');
      const pausedAt = Date.now();
      await this.store.publish(CHANNELS.flip, pause);
      const paused = await this.collectPaused(flipId, proxies, acks, pausedAt + opts.deadlineMs);
      if (paused.length) return await fail(describe(paused), paused);

      beforeCommitRan = true;
      if (opts.beforeCommit) {
        try {
          await opts.beforeCommit();
        } catch (err) {
          return await fail(`beforeCommit failed: ${(err as Error).message}`);
        }
      }
      // a proxy that died while paused: never commit what not every proxy confirmed it would follow
      const lost = (await this.lostOf(proxies)).map((proxyId): BlockedProxy => ({ proxyId, why: 'lost' }));
      if (lost.length) return await fail(describe(lost), lost);

      const c = await this.store.commitFlip(flipId, { fencingToken: opts.fencingToken });
      if (!c.committed) {
        const why = c.record?.state === 'aborted' ? `a proxy gave up waiting (${c.record.reason ?? 'no reason'})`
          : opts.fencingToken !== undefined ? 'the store refused the commit: leadership lost or epoch moved'
            : 'the store refused the commit: epoch moved';
        return await fail(why);
      }
      this.log.info({ flipId, active: opts.target, epoch: cur.epoch + 1 }, 'flip committed');
      await this.store.publish(CHANNELS.flip, { type: 'switch', flipId, epoch: cur.epoch + 1, target: opts.target });
      return await this.afterCommit(opts, cur.epoch + 1, proxies, acks, t0, base);
    } catch (err) {
      return await fail(`flip failed: ${(err as Error).message}`);
    } finally {
      this.ackListeners.delete(listener);
    }
  }

  private async begin(rec: Omit<FlipRecord, 'state'>, fencingToken?: number): Promise<void> {
    if (await this.store.beginFlip(rec, { fencingToken })) return;
    const other = await this.store.currentFlip();
    if (other?.state === 'pausing' && Date.now() - other.startedAt > this.staleFlipMs) {
      this.log.warn({ flipId: other.id }, 'clearing a flip its controller never finished');
      await this.store.abortFlip(other.id, 'stale: its controller never finished it');
      if (await this.store.beginFlip(rec, { fencingToken })) return;
    }
    throw new Error(other?.state === 'pausing' ? `another flip (${other.id}) is in progress` : 'the store refused the flip: leadership lost');
  }

  /** [] when every proxy paused; else who prevented it */
  private collectPaused(flipId: string, proxies: string[], acks: FlipAck[], deadline: number): Promise<BlockedProxy[]> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (r: BlockedProxy[]) => {
        if (done) return;
        done = true;
        clearInterval(poll);
        clearTimeout(timer);
        this.ackListeners.delete(check);
        resolve(r);
      };
      const answers = () => new Map(acks.filter((a) => a.type === 'paused' && proxies.includes(a.proxyId)).map((a) => [a.proxyId, a]));
      const check = () => {
        const got = answers();
        const refused = [...got.values()].filter((a) => a.type === 'paused' && !a.paused);
        if (refused.length) {
          return finish(refused.map((a) => ({ proxyId: a.proxyId, why: 'blocked' as const, ...(a.type === 'paused' && a.blocked ? { sessions: a.blocked } : {}) })));
        }
        if (proxies.every((p) => got.has(p))) finish([]);
      };
      this.ackListeners.add(check);
      const poll = setInterval(() => {
        this.lostOf(proxies).then((lost) => { if (lost.length) finish(lost.map((proxyId) => ({ proxyId, why: 'lost' as const }))); }, () => undefined);
      }, this.pollMs);
      const timer = setTimeout(() => {
        const got = answers();
        finish(proxies.filter((p) => !got.has(p)).map((proxyId) => ({ proxyId, why: 'no-answer' as const })));
      }, Math.max(0, deadline + this.answerGraceMs - Date.now()));
      check();
    });
  }

  /** until every proxy sent an ack of this type, left the fleet, or the timeout passed */
  private waitForAcks(proxies: string[], type: FlipAck['type'], acks: FlipAck[], timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      // a proxy that died is not waited for: it adopts the current epoch when it comes back
      let gone: string[] = [];
      const check = () => {
        if (proxies.every((p) => gone.includes(p) || acks.some((a) => a.type === type && a.proxyId === p))) finish();
      };
      const finish = () => { clearInterval(poll); clearTimeout(timer); this.ackListeners.delete(check); resolve(); };
      this.ackListeners.add(check);
      const poll = setInterval(() => {
        this.lostOf(proxies).then((lost) => { gone = lost; check(); }, () => undefined);
      }, this.pollMs);
      const timer = setTimeout(finish, timeoutMs);
      check();
    });
  }

  private async lostOf(proxies: string[]): Promise<string[]> {
    if (proxies.length === 0) return [];
    const live = new Set((await this.store.liveProxies()).map((p) => p.id));
    return proxies.filter((p) => !live.has(p));
  }

  private async afterCommit(opts: FlipOptions, epoch: number, proxies: string[], acks: FlipAck[], t0: number,
    base: Base): Promise<FleetFlipOutcome> {
    const switched = () => new Map(acks.filter((a) => a.type === 'switched').map((a) => [a.proxyId, a]));
    await this.waitForAcks(proxies, 'switched', acks, this.switchAckTimeoutMs);
    const got = switched();
    const pauseMs: Record<string, number> = {};
    const switchErrors: Record<string, string> = {};
    let carried = 0;
    let terminated = 0;
    for (const a of got.values()) {
      if (a.type !== 'switched') continue;
      pauseMs[a.proxyId] = a.pauseMs;
      carried += a.carried;
      terminated += a.terminated;
      if (a.error) switchErrors[a.proxyId] = a.error;
    }
    const unacknowledged = proxies.filter((p) => !got.has(p));
    return {
      ...base, ok: true, active: opts.target, epoch, proxies, pauseMs, sessionsCarried: carried, sessionsTerminated: terminated,
      ...(unacknowledged.length ? { unacknowledged } : {}),
      ...(Object.keys(switchErrors).length ? { switchErrors } : {}),
      durationMs: Date.now() - t0,
    };
  }
}

function describe(blocked: BlockedProxy[]): string {
  return blocked.map((b) => (b.why === 'blocked' ? `proxy ${b.proxyId}: ${b.sessions?.length ?? 0} session(s) could not be paused (${(b.sessions ?? []).slice(0, 3).join('; ')}${(b.sessions?.length ?? 0) > 3 ? '; …' : ''})`
    : b.why === 'lost' ? `proxy ${b.proxyId}: gone (registration expired) during the pause`
      : `proxy ${b.proxyId}: no answer before the deadline`)).join('; ');
}

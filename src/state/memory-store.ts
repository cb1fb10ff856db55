/**
 * State store for a single process (no REDIS_URL). Same semantics as the Redis
 * store: expiries, atomic compare-and-set, fencing tokens, and pub/sub whose
 * messages are delivered asynchronously as copies, like messages off a wire.
 */
import { EventEmitter } from 'node:events';
import type { Side } from '../side';
import { CHANNELS } from './keys';
import {
  ActiveState, CancelKey, FlipRecord, HealthReport, LeaderLease, MessageHandler, ProxyRegistration,
  SetOptions, SetResult, StateStore, Unsubscribe, Versioned, cancelKeyId,
  onCancel, routeCancel,
} from './store';

interface Expiring<T> { value: T; expiresAt: number }

export class MemoryStateStore implements StateStore {
  readonly kind = 'memory' as const;
  private active: ActiveState | null = null;
  private flip: FlipRecord | null = null;
  private readonly proxies = new Map<string, Expiring<ProxyRegistration>>();
  private readonly health = new Map<string, Expiring<HealthReport>>();
  private readonly cancelKeys = new Map<string, Expiring<string>>();
  private leader: Expiring<LeaderLease> | null = null;
  private leaderToken = 0;
  private readonly kv = new Map<string, Versioned<string>>();
  private readonly lists = new Map<string, string[]>();
  private readonly bus = new EventEmitter();
  private closed = false;

  constructor() {
    this.bus.setMaxListeners(0);
  }

  private live<T>(m: Map<string, Expiring<T>>, id: string): T | undefined {
    const e = m.get(id);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) { m.delete(id); return undefined; }
    return e.value;
  }

  private fenced(token: number | undefined): boolean {
    if (token === undefined) return false;
    const l = this.currentLease();
    return !l || l.token !== token;
  }

  private currentLease(): LeaderLease | null {
    if (this.leader && this.leader.expiresAt <= Date.now()) this.leader = null;
    return this.leader?.value ?? null;
  }

  async getActive(): Promise<ActiveState | null> {
    return this.active && { ...this.active };
  }

  async initActive(side: Side): Promise<ActiveState> {
    this.active ??= { active: side, epoch: 0 };
    return { ...this.active };
  }

  async seedActive(state: ActiveState): Promise<ActiveState> {
    if (!this.active || this.active.epoch < state.epoch) this.active = { active: state.active, epoch: state.epoch };
    return { ...this.active };
  }

  reachable(): boolean { return true; }

  async compareAndSetActive(expectEpoch: number, next: ActiveState, opts: { fencingToken?: number } = {}): Promise<boolean> {
    if (this.fenced(opts.fencingToken)) return false;
    const cur = this.active?.epoch ?? 0;
    if (cur !== expectEpoch || next.epoch <= cur) return false;
    this.active = { active: next.active, epoch: next.epoch };
    return true;
  }

  async beginFlip(record: Omit<FlipRecord, 'state'>, opts: { fencingToken?: number } = {}): Promise<boolean> {
    if (this.fenced(opts.fencingToken)) return false;
    if (this.flip?.state === 'pausing') return false;
    this.flip = { ...record, state: 'pausing' };
    return true;
  }

  async commitFlip(id: string, opts: { fencingToken?: number } = {}): Promise<{ committed: boolean; record: FlipRecord | null; active: ActiveState | null }> {
    const f = this.flip;
    const ok = !!f && f.id === id && f.state === 'pausing' && !this.fenced(opts.fencingToken)
      && (this.active?.epoch ?? 0) === f.fromEpoch;
    if (ok) {
      this.active = { active: f.target, epoch: f.fromEpoch + 1 };
      f.state = 'committed';
    }
    return { committed: ok, record: f && f.id === id ? { ...f } : null, active: await this.getActive() };
  }

  async abortFlip(id: string, reason: string): Promise<FlipRecord | null> {
    const f = this.flip;
    if (!f || f.id !== id) return null;
    if (f.state === 'pausing') { f.state = 'aborted'; f.reason = reason; }
    return { ...f };
  }

  async currentFlip(): Promise<FlipRecord | null> {
    return this.flip && { ...this.flip };
  }

  async registerProxy(reg: ProxyRegistration, ttlMs: number): Promise<void> {
    this.proxies.set(reg.id, { value: structuredClone(reg), expiresAt: Date.now() + ttlMs });
  }

  async heartbeat(proxyId: string, ttlMs: number): Promise<boolean> {
    if (!this.live(this.proxies, proxyId)) return false;
    this.proxies.get(proxyId)!.expiresAt = Date.now() + ttlMs;
    return true;
  }

  async deregisterProxy(proxyId: string): Promise<void> {
    this.proxies.delete(proxyId);
    this.health.delete(proxyId);
  }

  async liveProxies(): Promise<ProxyRegistration[]> {
    return [...this.proxies.keys()].map((id) => this.live(this.proxies, id)).filter((r): r is ProxyRegistration => !!r)
      .map((r) => structuredClone(r));
  }

  async reportHealth(report: HealthReport, ttlMs: number): Promise<void> {
    this.health.set(report.proxyId, { value: structuredClone(report), expiresAt: Date.now() + ttlMs });
  }

  async healthReports(): Promise<HealthReport[]> {
    return [...this.health.keys()].map((id) => this.live(this.health, id)).filter((r): r is HealthReport => !!r)
      .map((r) => structuredClone(r));
  }

  async claimCancelKey(key: CancelKey, proxyId: string, ttlMs: number): Promise<boolean> {
    const id = cancelKeyId(key);
    if (this.live(this.cancelKeys, id) !== undefined) return false;
    this.cancelKeys.set(id, { value: proxyId, expiresAt: Date.now() + ttlMs });
    return true;
  }

  async releaseCancelKey(key: CancelKey, proxyId: string): Promise<void> {
    const id = cancelKeyId(key);
    if (this.live(this.cancelKeys, id) === proxyId) this.cancelKeys.delete(id);
  }

  async cancelKeyOwner(key: CancelKey): Promise<string | null> {
    return this.live(this.cancelKeys, cancelKeyId(key)) ?? null;
  }

  routeCancel(key: CancelKey): Promise<'sent' | 'unknown' | 'unreachable'> {
    return routeCancel(this, key);
  }

  onCancel(proxyId: string, handler: (key: CancelKey) => void): Promise<Unsubscribe> {
    return onCancel(this, proxyId, handler);
  }

  async acquireLeadership(holder: string, ttlMs: number): Promise<LeaderLease | null> {
    if (this.currentLease()) return null;
    const lease = { holder, token: ++this.leaderToken };
    this.leader = { value: lease, expiresAt: Date.now() + ttlMs };
    return { ...lease };
  }

  async renewLeadership(lease: LeaderLease, ttlMs: number): Promise<boolean> {
    const cur = this.currentLease();
    if (!cur || cur.token !== lease.token) return false;
    this.leader!.expiresAt = Date.now() + ttlMs;
    return true;
  }

  async releaseLeadership(lease: LeaderLease): Promise<void> {
    if (this.currentLease()?.token === lease.token) this.leader = null;
  }

  async currentLeader(): Promise<LeaderLease | null> {
    const l = this.currentLease();
    return l && { ...l };
  }

  async getJson<T = unknown>(key: string): Promise<Versioned<T> | null> {
    const e = this.kv.get(key);
    return e ? { value: JSON.parse(e.value) as T, version: e.version } : null;
  }

  async setJson(key: string, value: unknown, opts: SetOptions = {}): Promise<SetResult> {
    if (this.fenced(opts.fencingToken)) return { ok: false, reason: 'fenced' };
    const cur = this.kv.get(key)?.version ?? 0;
    if (opts.expectVersion !== undefined && opts.expectVersion !== cur) return { ok: false, reason: 'conflict', version: cur };
    this.kv.set(key, { value: JSON.stringify(value), version: cur + 1 });
    return { ok: true, version: cur + 1 };
  }

  async deleteJson(key: string, opts: { fencingToken?: number } = {}): Promise<boolean> {
    if (this.fenced(opts.fencingToken)) return false;
    return this.kv.delete(key);
  }

  async appendCapped(list: string, value: unknown, max: number): Promise<void> {
    const l = this.lists.get(list) ?? [];
    l.unshift(JSON.stringify(value));
    l.length = Math.min(l.length, Math.max(1, max));
    this.lists.set(list, l);
  }

  async listRange<T = unknown>(list: string, limit = Infinity): Promise<T[]> {
    return (this.lists.get(list) ?? []).slice(0, limit).map((s) => JSON.parse(s) as T);
  }

  async publish(channel: string, message: unknown): Promise<number> {
    if (this.closed) return 0;
    const listeners = this.bus.listeners(channel) as MessageHandler[];
    const wire = JSON.stringify(message);
    // delivered later and as a copy, as a Redis subscriber would see it
    setImmediate(() => { for (const l of listeners) l(JSON.parse(wire)); });
    return listeners.length;
  }

  async subscribe(channel: string, handler: MessageHandler): Promise<Unsubscribe> {
    this.bus.on(channel, handler);
    return async () => { this.bus.off(channel, handler); };
  }

  onReconnect(): () => void {
    return () => undefined; // never disconnected
  }

  async close(): Promise<void> {
    this.closed = true;
    this.bus.removeAllListeners();
  }
}

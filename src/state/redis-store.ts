/**
 * State store for a fleet: Redis through ioredis. One connection for commands
 * and one for subscriptions (a subscribed Redis connection accepts nothing
 * else). Every key and channel lives under a configurable prefix so several
 * pgflip installations (or test files) can share one Redis.
 *
 * Read-modify-write operations are Lua scripts, atomic in Redis: the epoch
 * compare-and-set, the flip commit/abort, the leader lock and versioned values.
 * Expiry uses Redis's own clock, so proxies on machines with skewed clocks
 * still agree on who is live.
 */
import { createHash } from 'node:crypto';
import Redis from 'ioredis';
import { logger, redactUrl } from '../observability/logger';
import type { Side } from '../side';
import { CHANNELS, DEFAULT_PREFIX, KEYS } from './keys';
import {
  ActiveState, CancelKey, FlipRecord, FlipState, HealthReport, LeaderLease, MessageHandler, ProxyRegistration,
  SetOptions, SetResult, StateStore, StateStoreError, Unsubscribe, Versioned,
  cancelKeyId, onCancel, routeCancel,
} from './store';

/** Lua: true when a fencing token is given and the leader lock does not carry it. */
const FENCED = `
local function fenced(leaderKey, tok)
  if tok == '' then return false end
  local v = redis.call('GET', leaderKey)
  if not v then return true end
  return string.match(v, '^(%d+)|') ~= tok
end
`;

const LUA = {
  initActive: `
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], 'side', ARGV[1], 'epoch', '0') end
return redis.call('HMGET', KEYS[1], 'side', 'epoch')`,
  seedActive: `
local cur = redis.call('HGET', KEYS[1], 'epoch')
if not cur or tonumber(cur) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'side', ARGV[1], 'epoch', ARGV[2]) end
return redis.call('HMGET', KEYS[1], 'side', 'epoch')`,
  casActive: `${FENCED}
if fenced(KEYS[1], ARGV[1]) then return 0 end
local cur = tonumber(redis.call('HGET', KEYS[2], 'epoch') or '0')
local nxt = tonumber(ARGV[4])
if cur ~= tonumber(ARGV[2]) or nxt <= cur then return 0 end
redis.call('HSET', KEYS[2], 'side', ARGV[3], 'epoch', ARGV[4])
return 1`,
  beginFlip: `${FENCED}
if fenced(KEYS[1], ARGV[1]) then return 0 end
if redis.call('HGET', KEYS[2], 'state') == 'pausing' then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'id', ARGV[2], 'fromEpoch', ARGV[3], 'from', ARGV[4], 'target', ARGV[5], 'startedAt', ARGV[6], 'holdMs', ARGV[7], 'state', 'pausing')
return 1`,
  commitFlip: `${FENCED}
local f = redis.call('HMGET', KEYS[2], 'id', 'state', 'fromEpoch', 'target')
if f[1] ~= ARGV[2] or f[2] ~= 'pausing' or fenced(KEYS[1], ARGV[1]) then return 0 end
local cur = tonumber(redis.call('HGET', KEYS[3], 'epoch') or '0')
if cur ~= tonumber(f[3]) then return 0 end
redis.call('HSET', KEYS[3], 'side', f[4], 'epoch', tostring(cur + 1))
redis.call('HSET', KEYS[2], 'state', 'committed')
return 1`,
  abortFlip: `
local f = redis.call('HMGET', KEYS[1], 'id', 'state')
if f[1] ~= ARGV[1] then return 0 end
if f[2] == 'pausing' then redis.call('HSET', KEYS[1], 'state', 'aborted', 'reason', ARGV[2]) end
return 1`,
  compareDel: `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
  acquireLeader: `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local t = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], t .. '|' .. ARGV[1], 'PX', ARGV[2])
return t`,
  renewLeader: `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`,
  setJson: `${FENCED}
if fenced(KEYS[1], ARGV[1]) then return {-1, 0} end
local cur = tonumber(redis.call('HGET', KEYS[2], 'v') or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= cur then return {0, cur} end
redis.call('HSET', KEYS[2], 'v', tostring(cur + 1), 'd', ARGV[3])
return {1, cur + 1}`,
  deleteJson: `${FENCED}
if fenced(KEYS[1], ARGV[1]) then return 0 end
return redis.call('DEL', KEYS[2])`,
} as const;

type ScriptName = keyof typeof LUA;
const SHA = Object.fromEntries(Object.entries(LUA).map(([k, v]) => [k, createHash('sha1').update(v).digest('hex')])) as Record<ScriptName, string>;

export interface RedisStoreOptions {
  /** every key and channel starts with it (default `pgflip:`) */
  prefix?: string;
  /** shows up in CLIENT LIST, e.g. the proxy id */
  connectionName?: string;
}

export class RedisStateStore implements StateStore {
  readonly kind = 'redis' as const;
  readonly prefix: string;
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly handlers = new Map<string, Set<MessageHandler>>();
  private readonly reconnectHandlers = new Set<() => void>();
  private readonly log = logger().child({ component: 'state-store' });

  /** connects both connections; rejects with a clear error when Redis is unreachable */
  static async connect(url: string, opts: RedisStoreOptions = {}): Promise<RedisStateStore> {
    const store = new RedisStateStore(url, opts);
    const results = await Promise.allSettled([store.cmd.connect(), store.sub.connect()]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      store.cmd.disconnect();
      store.sub.disconnect();
      throw new StateStoreError(`cannot connect to Redis at ${redactUrl(url)}: ${(failed.reason as Error).message}`);
    }
    return store;
  }

  private constructor(url: string, opts: RedisStoreOptions) {
    this.prefix = opts.prefix ?? DEFAULT_PREFIX;
    let everReady = false;
    const base = {
      lazyConnect: true,
      connectionName: opts.connectionName,
      // the first connect fails fast (a config error); later outages retry with back-off
      retryStrategy: (n: number) => (everReady ? Math.min(50 * 2 ** n, 2000) : null),
    };
    this.cmd = new Redis(url, { ...base, maxRetriesPerRequest: 2 });
    this.sub = new Redis(url, { ...base, maxRetriesPerRequest: null });
    for (const [name, conn] of [['commands', this.cmd], ['subscriptions', this.sub]] as const) {
      let readyBefore = false;
      // one line per outage, not one per reconnect attempt
      let failing = false;
      conn.on('error', (err: Error) => {
        if (failing) return;
        failing = true;
        this.log.warn({ connection: name, err: err.message }, 'redis connection error; reconnecting');
      });
      conn.on('ready', () => {
        failing = false;
        if (readyBefore) {
          this.log.info({ connection: name }, 'redis reconnected');
          for (const h of this.reconnectHandlers) h();
        }
        readyBefore = true;
        everReady = true;
      });
    }
    this.sub.on('message', (channel: string, raw: string) => {
      const set = this.handlers.get(channel);
      if (!set) return;
      let msg: unknown;
      try { msg = JSON.parse(raw); } catch { this.log.warn({ channel }, 'ignored a message that is not JSON'); return; }
      for (const h of set) {
        try { h(msg); } catch (err) { this.log.error({ channel, err: (err as Error).message }, 'message handler failed'); }
      }
    });
  }

  private k(key: string): string {
    return this.prefix + key;
  }

  private async run(name: ScriptName, keys: string[], args: (string | number)[]): Promise<unknown> {
    const full = keys.map((x) => this.k(x));
    try {
      return await this.cmd.evalsha(SHA[name], full.length, ...full, ...args);
    } catch (err) {
      if (!String((err as Error).message).includes('NOSCRIPT')) throw err;
      return this.cmd.eval(LUA[name], full.length, ...full, ...args);
    }
  }

  // ---- active side and epoch ----

  async getActive(): Promise<ActiveState | null> {
    const [side, epoch] = await this.cmd.hmget(this.k(KEYS.active), 'side', 'epoch');
    return side ? { active: side as Side, epoch: Number(epoch) } : null;
  }

  async initActive(side: Side): Promise<ActiveState> {
    const [s, e] = (await this.run('initActive', [KEYS.active], [side])) as [string, string];
    return { active: s as Side, epoch: Number(e) };
  }

  async seedActive(state: ActiveState): Promise<ActiveState> {
    const [side, epoch] = (await this.run('seedActive', [KEYS.active], [state.active, state.epoch])) as [string, string];
    return { active: side as Side, epoch: Number(epoch) };
  }

  reachable(): boolean { return this.cmd.status === 'ready'; }

  async compareAndSetActive(expectEpoch: number, next: ActiveState, opts: { fencingToken?: number } = {}): Promise<boolean> {
    return (await this.run('casActive', [KEYS.leader, KEYS.active], [tok(opts.fencingToken), expectEpoch, next.active, next.epoch])) === 1;
  }

  // ---- flip record ----

  async beginFlip(r: Omit<FlipRecord, 'state'>, opts: { fencingToken?: number } = {}): Promise<boolean> {
    return (await this.run('beginFlip', [KEYS.leader, KEYS.flip], [tok(opts.fencingToken), r.id, r.fromEpoch, r.from, r.target, r.startedAt, r.holdMs])) === 1;
  }

  async commitFlip(id: string, opts: { fencingToken?: number } = {}): Promise<{ committed: boolean; record: FlipRecord | null; active: ActiveState | null }> {
    const committed = (await this.run('commitFlip', [KEYS.leader, KEYS.flip, KEYS.active], [tok(opts.fencingToken), id])) === 1;
    const [record, active] = await Promise.all([this.currentFlip(), this.getActive()]);
    return { committed, record: record?.id === id ? record : null, active };
  }

  async abortFlip(id: string, reason: string): Promise<FlipRecord | null> {
    const found = (await this.run('abortFlip', [KEYS.flip], [id, reason])) === 1;
    if (!found) return null;
    const r = await this.currentFlip();
    return r?.id === id ? r : null;
  }

  async currentFlip(): Promise<FlipRecord | null> {
    const h = await this.cmd.hgetall(this.k(KEYS.flip));
    if (!h.id) return null;
    return {
      id: h.id, fromEpoch: Number(h.fromEpoch), from: h.from as Side, target: h.target as Side,
      state: h.state as FlipState, startedAt: Number(h.startedAt), holdMs: Number(h.holdMs), ...(h.reason ? { reason: h.reason } : {}),
    };
  }

  // ---- proxies and health ----

  async registerProxy(reg: ProxyRegistration, ttlMs: number): Promise<void> {
    await this.cmd.multi().sadd(this.k(KEYS.proxies), reg.id).set(this.k(KEYS.proxy(reg.id)), JSON.stringify(reg), 'PX', ttlMs).exec();
  }

  async heartbeat(proxyId: string, ttlMs: number): Promise<boolean> {
    // SADD too: a concurrent liveProxies() may have pruned the id between expiry and re-registration
    const res = await this.cmd.multi().pexpire(this.k(KEYS.proxy(proxyId)), ttlMs).sadd(this.k(KEYS.proxies), proxyId).exec();
    return res?.[0]?.[1] === 1;
  }

  async deregisterProxy(proxyId: string): Promise<void> {
    await this.cmd.multi().srem(this.k(KEYS.proxies), proxyId).del(this.k(KEYS.proxy(proxyId)), this.k(KEYS.health(proxyId))).exec();
  }

  async liveProxies(): Promise<ProxyRegistration[]> {
    const ids = await this.cmd.smembers(this.k(KEYS.proxies));
    if (ids.length === 0) return [];
    const vals = await this.cmd.mget(...ids.map((id) => this.k(KEYS.proxy(id))));
    const gone = ids.filter((_, i) => vals[i] === null);
    if (gone.length) await this.cmd.srem(this.k(KEYS.proxies), ...gone);
    return vals.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as ProxyRegistration);
  }

  async reportHealth(report: HealthReport, ttlMs: number): Promise<void> {
    await this.cmd.set(this.k(KEYS.health(report.proxyId)), JSON.stringify(report), 'PX', ttlMs);
  }

  async healthReports(): Promise<HealthReport[]> {
    const ids = await this.cmd.smembers(this.k(KEYS.proxies));
    if (ids.length === 0) return [];
    const vals = await this.cmd.mget(...ids.map((id) => this.k(KEYS.health(id))));
    return vals.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as HealthReport);
  }

  // ---- cancel keys ----

  async claimCancelKey(key: CancelKey, proxyId: string, ttlMs: number): Promise<boolean> {
    return (await this.cmd.set(this.k(KEYS.cancel(cancelKeyId(key))), proxyId, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async releaseCancelKey(key: CancelKey, proxyId: string): Promise<void> {
    await this.run('compareDel', [KEYS.cancel(cancelKeyId(key))], [proxyId]);
  }

  async cancelKeyOwner(key: CancelKey): Promise<string | null> {
    return this.cmd.get(this.k(KEYS.cancel(cancelKeyId(key))));
  }

  routeCancel(key: CancelKey): Promise<'sent' | 'unknown' | 'unreachable'> {
    return routeCancel(this, key);
  }

  onCancel(proxyId: string, handler: (key: CancelKey) => void): Promise<Unsubscribe> {
    return onCancel(this, proxyId, handler);
  }

  // ---- leader lock ----

  async acquireLeadership(holder: string, ttlMs: number): Promise<LeaderLease | null> {
    if (holder.includes('|')) throw new StateStoreError(`leader holder name must not contain '|': ${holder}`);
    const t = await this.run('acquireLeader', [KEYS.leader, KEYS.leaderToken], [holder, ttlMs]);
    return t === null ? null : { holder, token: Number(t) };
  }

  async renewLeadership(lease: LeaderLease, ttlMs: number): Promise<boolean> {
    return (await this.run('renewLeader', [KEYS.leader], [`${lease.token}|${lease.holder}`, ttlMs])) === 1;
  }

  async releaseLeadership(lease: LeaderLease): Promise<void> {
    await this.run('compareDel', [KEYS.leader], [`${lease.token}|${lease.holder}`]);
  }

  async currentLeader(): Promise<LeaderLease | null> {
    const v = await this.cmd.get(this.k(KEYS.leader));
    if (!v) return null;
    const i = v.indexOf('|');
    return { token: Number(v.slice(0, i)), holder: v.slice(i + 1) };
  }

  // ---- persisted values and lists ----

  async getJson<T = unknown>(key: string): Promise<Versioned<T> | null> {
    const [v, d] = await this.cmd.hmget(this.k(KEYS.kv(key)), 'v', 'd');
    return d === null ? null : { value: JSON.parse(d) as T, version: Number(v) };
  }

  async setJson(key: string, value: unknown, opts: SetOptions = {}): Promise<SetResult> {
    const [code, version] = (await this.run('setJson', [KEYS.leader, KEYS.kv(key)],
      [tok(opts.fencingToken), opts.expectVersion ?? '', JSON.stringify(value)])) as [number, number];
    if (code === -1) return { ok: false, reason: 'fenced' };
    if (code === 0) return { ok: false, reason: 'conflict', version };
    return { ok: true, version };
  }

  async deleteJson(key: string, opts: { fencingToken?: number } = {}): Promise<boolean> {
    return (await this.run('deleteJson', [KEYS.leader, KEYS.kv(key)], [tok(opts.fencingToken)])) === 1;
  }

  async appendCapped(list: string, value: unknown, max: number): Promise<void> {
    const k = this.k(KEYS.list(list));
    await this.cmd.multi().lpush(k, JSON.stringify(value)).ltrim(k, 0, Math.max(1, max) - 1).exec();
  }

  async listRange<T = unknown>(list: string, limit?: number): Promise<T[]> {
    const raw = await this.cmd.lrange(this.k(KEYS.list(list)), 0, limit === undefined ? -1 : limit - 1);
    return raw.map((s) => JSON.parse(s) as T);
  }

  // ---- pub/sub ----

  async publish(channel: string, message: unknown): Promise<number> {
    return this.cmd.publish(this.k(channel), JSON.stringify(message));
  }

  async subscribe(channel: string, handler: MessageHandler): Promise<Unsubscribe> {
    const full = this.k(channel);
    let set = this.handlers.get(full);
    if (!set) {
      set = new Set();
      this.handlers.set(full, set);
      await this.sub.subscribe(full);
    }
    set.add(handler);
    return async () => {
      const s = this.handlers.get(full);
      if (!s?.delete(handler) || s.size > 0) return;
      this.handlers.delete(full);
      if (this.sub.status === 'ready') await this.sub.unsubscribe(full);
    };
  }

  onReconnect(handler: () => void): () => void {
    this.reconnectHandlers.add(handler);
    return () => this.reconnectHandlers.delete(handler);
  }

  async close(): Promise<void> {
    this.reconnectHandlers.clear();
    this.handlers.clear();
    await Promise.all([this.cmd, this.sub].map(async (c) => {
      try { await c.quit(); } catch { c.disconnect(); }
    }));
  }
}

const tok = (t: number | undefined): string => (t === undefined ? '' : String(t));

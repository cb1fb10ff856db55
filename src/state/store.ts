/**
 * The state store: what a fleet of proxies and one controller share (docs/fleet.md).
 *
 * Two implementations with the same semantics: MemoryStateStore for one process
 * and RedisStateStore for N processes on N machines. Every operation that must
 * not race (epoch, flip record, leader lock, versioned values) is atomic in the
 * store itself; callers never read-modify-write.
 */
import type { Side } from '../side';
import { CHANNELS } from './keys';


/** The side serving traffic and the epoch that names this choice; epochs only grow. */
export interface ActiveState {
  active: Side;
  epoch: number;
}

export interface ProxyRegistration {
  id: string;
  host?: string;
  pid?: number;
  /** ms since 1970 on the proxy's clock, informational */
  startedAt: number;
  /** what the proxy publishes about itself (ProxyMeta): the one place its key names are defined */
  meta?: ProxyMeta;
}

/**
 * What a proxy registers about itself in the fleet. Written by the proxy
 * (src/proxy/index.ts), read by the controller (its status page, and the
 * watch window, which scrapes `adminUrl` for each live proxy's traffic).
 */
export interface ProxyMeta {
  /** host:port clients connect to */
  listen?: string;
  /** base URL of the proxy's admin HTTP server (`/metrics`, `/healthz`, `/status`) */
  adminUrl?: string;
}

export interface SideHealthReport {
  up: boolean;
  latencyMs?: number;
  error?: string;
}

export interface HealthReport {
  proxyId: string;
  /** ms since 1970 on the reporter's clock */
  at: number;
  epoch?: number;
  sides: Partial<Record<Side, SideHealthReport>>;
  clientConnections?: number;
  /** sessions by schema version while a migration serves its previous one (compat/serving.ts) */
  schemaVersions?: { migrationId: string; old: number; new: number };
}

/** The BackendKeyData a proxy gave its client (its own, not the backend's). */
export interface CancelKey {
  processId: number;
  secretKey: number;
}

/** A held leader lock. The token grows with every acquisition and fences stale leaders. */
export interface LeaderLease {
  holder: string;
  token: number;
}

export type FlipState = 'pausing' | 'committed' | 'aborted';

/**
 * The one flip in progress (or the last one), kept in the store so that its
 * outcome is decided atomically: the controller's commit and a member's
 * give-up cannot both win.
 */
export interface FlipRecord {
  id: string;
  /** epoch before the flip; the commit sets `epoch + 1` */
  fromEpoch: number;
  from: Side;
  target: Side;
  state: FlipState;
  /** ms since 1970 on the controller's clock when the pause was published */
  startedAt: number;
  /** the pause deadline plus the commit window: how long proxies hold before deciding through the store */
  holdMs: number;
  reason?: string;
}

export type SetResult =
  | { ok: true; version: number }
  | { ok: false; reason: 'conflict'; version: number }
  | { ok: false; reason: 'fenced' };

export interface SetOptions {
  /** write only if the stored version is this one (0: only if absent) */
  expectVersion?: number;
  /** write only while the leader lock carries this token */
  fencingToken?: number;
}

export interface Versioned<T> {
  value: T;
  version: number;
}

export type Unsubscribe = () => Promise<void>;
export type MessageHandler = (message: unknown) => void;

export interface StateStore {
  readonly kind: 'memory' | 'redis';

  // ---- active side and epoch ----
  /** current active side and epoch, or null before anyone initialised them */
  getActive(): Promise<ActiveState | null>;
  /** sets active=side, epoch=0 unless already set; returns what is stored */
  initActive(side: Side): Promise<ActiveState>;
  /**
   * Atomically replaces the active state if the stored epoch is `expectEpoch`
   * and `next.epoch` is greater. False on a lost race or a stale fencing token.
   */
  compareAndSetActive(expectEpoch: number, next: ActiveState, opts?: { fencingToken?: number }): Promise<boolean>;
  /**
   * Writes `state` when the store holds no active side or an older epoch (a Redis that came
   * back empty or behind), so the fleet's last committed choice is what the store says again;
   * returns what is stored afterwards.
   */
  seedActive(state: ActiveState): Promise<ActiveState>;
  /**
   * False while the store is known to be unreachable (its connection is down). Proxies keep
   * serving on their last committed side and epoch; flips are refused (StateStoreUnreachable).
   */
  reachable(): boolean;

  // ---- flip record (see src/switch) ----
  /** stores a new record in state `pausing`; false while another flip is `pausing` */
  beginFlip(record: Omit<FlipRecord, 'state'>, opts?: { fencingToken?: number }): Promise<boolean>;
  /**
   * Commits flip `id`: only if it is still `pausing` and the epoch is still its
   * fromEpoch; sets active=target, epoch=fromEpoch+1 and the record `committed`
   * in one step. Returns the record as it stands afterwards.
   */
  commitFlip(id: string, opts?: { fencingToken?: number }): Promise<{ committed: boolean; record: FlipRecord | null; active: ActiveState | null }>;
  /** aborts flip `id` if still `pausing`; returns its final state (a commit may have won) */
  abortFlip(id: string, reason: string): Promise<FlipRecord | null>;
  currentFlip(): Promise<FlipRecord | null>;

  // ---- proxy registrations and health ----
  /** registers or refreshes a proxy; it counts as live for ttlMs */
  registerProxy(reg: ProxyRegistration, ttlMs: number): Promise<void>;
  /** refreshes the ttl; false when the registration had already expired */
  heartbeat(proxyId: string, ttlMs: number): Promise<boolean>;
  deregisterProxy(proxyId: string): Promise<void>;
  liveProxies(): Promise<ProxyRegistration[]>;
  reportHealth(report: HealthReport, ttlMs: number): Promise<void>;
  /** the latest report of each proxy whose report has not expired */
  healthReports(): Promise<HealthReport[]>;

  // ---- cancel keys ----
  /** claims a key for a proxy fleet-wide; false if another session holds it */
  claimCancelKey(key: CancelKey, proxyId: string, ttlMs: number): Promise<boolean>;
  releaseCancelKey(key: CancelKey, proxyId: string): Promise<void>;
  cancelKeyOwner(key: CancelKey): Promise<string | null>;
  /**
   * Sends a CancelRequest to the proxy owning the key: 'sent' when it is
   * listening, 'unknown' when no proxy owns the key, 'unreachable' when the owner
   * is not listening (dead).
   */
  routeCancel(key: CancelKey): Promise<'sent' | 'unknown' | 'unreachable'>;
  /** a proxy receives the cancels routed to it */
  onCancel(proxyId: string, handler: (key: CancelKey) => void): Promise<Unsubscribe>;

  // ---- leader lock ----
  /** the lock if free (a new, greater token), else null */
  acquireLeadership(holder: string, ttlMs: number): Promise<LeaderLease | null>;
  /** extends a held lease; false when it was lost (expired and maybe taken) */
  renewLeadership(lease: LeaderLease, ttlMs: number): Promise<boolean>;
  releaseLeadership(lease: LeaderLease): Promise<void>;
  currentLeader(): Promise<LeaderLease | null>;

  // ---- persisted values and capped lists (controller state, history) ----
  getJson<T = unknown>(key: string): Promise<Versioned<T> | null>;
  setJson(key: string, value: unknown, opts?: SetOptions): Promise<SetResult>;
  deleteJson(key: string, opts?: { fencingToken?: number }): Promise<boolean>;
  /** prepends; keeps the newest `max` entries */
  appendCapped(list: string, value: unknown, max: number): Promise<void>;
  /** newest first */
  listRange<T = unknown>(list: string, limit?: number): Promise<T[]>;

  // ---- pub/sub ----
  /** returns how many subscribers received it (Redis counts connections): 0 means nobody listens */
  publish(channel: string, message: unknown): Promise<number>;
  subscribe(channel: string, handler: MessageHandler): Promise<Unsubscribe>;
  /** called after the store lost and regained its connection (messages may have been missed) */
  onReconnect(handler: () => void): () => void;

  close(): Promise<void>;
}

export const cancelKeyId = (k: CancelKey): string => `${k.processId >>> 0}:${k.secretKey >>> 0}`;

export class StateStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateStoreError';
  }
}

/** The store cannot be reached: coordination (flips, leadership) is refused until it is back. */
export class StateStoreUnreachable extends StateStoreError {
  constructor(what: string) {
    super(`the state store is unreachable: ${what} refused until it is back (proxies keep serving their side)`);
    this.name = 'StateStoreUnreachable';
  }
}

/**
 * Cancel routing, the same over every store: the owner of a cancel key gets the
 * key on its own channel (a CancelRequest may arrive at any proxy of the fleet).
 */
export async function routeCancel(store: StateStore, key: CancelKey): Promise<'sent' | 'unknown' | 'unreachable'> {
  const owner = await store.cancelKeyOwner(key);
  if (!owner) return 'unknown';
  const n = await store.publish(CHANNELS.cancel(owner), { processId: key.processId, secretKey: key.secretKey });
  return n > 0 ? 'sent' : 'unreachable';
}

export function onCancel(store: StateStore, proxyId: string, handler: (key: CancelKey) => void): Promise<Unsubscribe> {
  return store.subscribe(CHANNELS.cancel(proxyId), (m) => handler(m as CancelKey));
}

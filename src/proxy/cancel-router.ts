/**
 * Cancel requests across a fleet. Each client's BackendKeyData is made here,
 * claimed in the state store (unique fleet-wide, owned by this proxy) and
 * mapped locally to the session's current backend. A CancelRequest that
 * reaches this proxy for a session of another one is routed through the store
 * to its owner, which sends it to the backend the session is on now — also
 * after a flip moved it.
 *
 * The store coordinates; it never admits clients. While it is unreachable (or slow) a new
 * session gets its key at once, unclaimed, and the claim is made when the store answers again;
 * cancels for this proxy's own sessions never need the store.
 */
import type { Logger } from 'pino';
import type { StateStore, Unsubscribe } from '../state/store';
import { within } from '../util/sleep';
import { CancelKeyStore, CancelTarget, MemoryCancelKeyStore, newCancelKey, sendCancel } from './cancel';
import type { CancelRouter } from './context';

/** How long a claim lives in the store without renewal: bounds what a crashed proxy leaves behind. */
const CLAIM_TTL_MS = 6 * 3600_000;
/** Claims of live sessions are renewed this often. */
const CLAIM_RENEW_MS = 3600_000;
/** How long a new session waits for its claim (or a cancel for its route) before going on without the store. */
export const STORE_WAIT_MS = 500;

export class FleetCancelRouter implements CancelRouter {
  /** this proxy's keys: pid → secret */
  private readonly mine = new Map<number, number>();
  private unsubscribe: Unsubscribe | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private offReconnect: (() => void) | null = null;
  /** keys issued while the store could not be asked: claimed when it answers again */
  private readonly unclaimed = new Set<number>();
  private claiming = false;

  constructor(
    private readonly local: CancelKeyStore,
    private readonly store: StateStore | null,
    private readonly proxyId: string,
    private readonly log: Logger,
  ) {}

  /** Receive the cancels other proxies route here; renew claims periodically. */
  async start(): Promise<void> {
    if (!this.store) return;
    const store = this.store;
    this.unsubscribe = await store.onCancel(this.proxyId, (k) => {
      if (typeof k?.processId !== 'number' || typeof k.secretKey !== 'number') return;
      void (async () => {
        const t = await this.local.get(k.processId, k.secretKey);
        if (!t?.pid) return;
        this.log.debug({ pid: k.processId, backendPid: t.pid }, 'cancel request routed from another proxy forwarded');
        await sendCancel(t);
      })().catch((e: Error) => this.log.warn({ err: e.message }, 'routed cancel failed'));
    });
    this.offReconnect = store.onReconnect(() => { void this.claimDeferred(); });
    this.renewTimer = setInterval(() => {
      // a claim still held is left as is (SET NX fails); an expired one is taken again
      for (const [pid, secret] of this.mine) {
        store.claimCancelKey({ processId: pid, secretKey: secret }, this.proxyId, CLAIM_TTL_MS).catch(() => undefined);
      }
    }, CLAIM_RENEW_MS);
    this.renewTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.offReconnect?.();
    await this.unsubscribe?.().catch(() => undefined);
    this.unsubscribe = null;
  }

  private inUse = (pid: number): boolean => this.mine.has(pid) || (this.local instanceof MemoryCancelKeyStore && this.local.has(pid));

  async issue(target: CancelTarget): Promise<{ pid: number; secret: number }> {
    for (;;) {
      const k = newCancelKey(this.inUse);
      const claim = await this.claim(k.pid, k.secret);
      // another proxy of the fleet holds the same key: draw again
      if (claim === 'taken') continue;
      this.mine.set(k.pid, k.secret);
      if (claim === 'deferred') this.unclaimed.add(k.pid);
      else if (this.unclaimed.size) void this.claimDeferred();
      await this.local.set(k.pid, k.secret, target);
      return k;
    }
  }

  private async claim(pid: number, secret: number): Promise<'claimed' | 'taken' | 'deferred'> {
    const store = this.store;
    if (!store) return 'claimed';
    if (!store.reachable()) return 'deferred';
    const asked = store.claimCancelKey({ processId: pid, secretKey: secret }, this.proxyId, CLAIM_TTL_MS)
      .then((ok): 'claimed' | 'taken' => (ok ? 'claimed' : 'taken'));
    return within<'claimed' | 'taken' | 'deferred'>(asked, STORE_WAIT_MS, 'deferred');
  }

  /** Claims the keys issued during an outage; a key another proxy took meanwhile is only logged. */
  private async claimDeferred(): Promise<void> {
    const store = this.store;
    if (!store || this.claiming || !store.reachable()) return;
    this.claiming = true;
    try {
      for (const pid of [...this.unclaimed]) {
        const secret = this.mine.get(pid);
        if (secret === undefined) { this.unclaimed.delete(pid); continue; }
        const key = { processId: pid, secretKey: secret };
        const ok = await store.claimCancelKey(key, this.proxyId, CLAIM_TTL_MS);
        const owner = ok ? this.proxyId : await store.cancelKeyOwner(key);
        if (owner !== this.proxyId) this.log.warn({ pid, owner }, 'a cancel key issued while the state store was unreachable is held by another proxy: cancels reaching other proxies for this session may not arrive');
        this.unclaimed.delete(pid);
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'deferred cancel-key claims wait for the state store');
    } finally {
      this.claiming = false;
    }
  }

  repoint(pid: number, secret: number, target: CancelTarget): void {
    if (this.mine.get(pid) !== secret) return;
    // called twice per transaction in transaction mode: no promise when the local store answers at once
    const done = this.local.set(pid, secret, target);
    if (done) done.catch((e: Error) => this.log.warn({ err: e.message }, 'cancel key not repointed'));
  }

  release(pid: number, secret: number): void {
    if (this.mine.get(pid) !== secret) return;
    this.mine.delete(pid);
    this.unclaimed.delete(pid);
    Promise.resolve(this.local.delete(pid)).catch(() => undefined);
    this.store?.releaseCancelKey({ processId: pid, secretKey: secret }, this.proxyId).catch(() => undefined);
  }

  async forward(pid: number, secret: number): Promise<'local' | 'routed' | 'unknown'> {
    const t = await this.local.get(pid, secret);
    // pid 0: a pooled session between transactions runs nothing to cancel
    if (t) { if (t.pid) await sendCancel(t); return 'local'; }
    if (!this.store || this.mine.has(pid) || !this.store.reachable()) return 'unknown';
    const r = await within(this.store.routeCancel({ processId: pid, secretKey: secret }), STORE_WAIT_MS, 'unknown' as const);
    return r === 'sent' ? 'routed' : 'unknown';
  }
}

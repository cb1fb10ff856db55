/**
 * Cancel requests across a fleet. Each client's BackendKeyData is made here,
 * claimed in the state store (unique fleet-wide, owned by this proxy) and
 * mapped locally to the session's current backend. A CancelRequest that
 * reaches this proxy for a session of another one is routed through the store
 * to its owner, which sends it to the backend the session is on now — also
 * after a flip moved it.
 */
import type { Logger } from 'pino';
import type { StateStore, Unsubscribe } from '../state/store';
import { CancelKeyStore, CancelTarget, MemoryCancelKeyStore, newCancelKey, sendCancel } from './cancel';
import type { CancelRouter } from './context';

/** How long a claim lives in the store without renewal: bounds what a crashed proxy leaves behind. */
const CLAIM_TTL_MS = 6 * 3600_000;
/** Claims of live sessions are renewed this often. */
const CLAIM_RENEW_MS = 3600_000;

export class FleetCancelRouter implements CancelRouter {
  /** this proxy's keys: pid → secret */
  private readonly mine = new Map<number, number>();
  private unsubscribe: Unsubscribe | null = null;
  private renewTimer: NodeJS.Timeout | null = null;

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
        if (!t) return;
        this.log.debug({ pid: k.processId, backendPid: t.pid }, 'cancel request routed from another proxy forwarded');
        await sendCancel(t);
      })().catch((e: Error) => this.log.warn({ err: e.message }, 'routed cancel failed'));
    });
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
    await this.unsubscribe?.().catch(() => undefined);
    this.unsubscribe = null;
  }

  private inUse = (pid: number): boolean => this.mine.has(pid) || (this.local instanceof MemoryCancelKeyStore && this.local.has(pid));

  async issue(target: CancelTarget): Promise<{ pid: number; secret: number }> {
    for (;;) {
      const k = newCancelKey(this.inUse);
      // another proxy of the fleet may hold the same key: draw again
      if (this.store && !(await this.store.claimCancelKey({ processId: k.pid, secretKey: k.secret }, this.proxyId, CLAIM_TTL_MS))) continue;
      this.mine.set(k.pid, k.secret);
      await this.local.set(k.pid, k.secret, target);
      return k;
    }
  }

  repoint(pid: number, secret: number, target: CancelTarget): void {
    if (this.mine.get(pid) !== secret) return;
    Promise.resolve(this.local.set(pid, secret, target)).catch((e: Error) => this.log.warn({ err: e.message }, 'cancel key not repointed'));
  }

  release(pid: number, secret: number): void {
    if (this.mine.get(pid) !== secret) return;
    this.mine.delete(pid);
    Promise.resolve(this.local.delete(pid)).catch(() => undefined);
    this.store?.releaseCancelKey({ processId: pid, secretKey: secret }, this.proxyId).catch(() => undefined);
  }

  async forward(pid: number, secret: number): Promise<'local' | 'routed' | 'unknown'> {
    const t = await this.local.get(pid, secret);
    if (t) { await sendCancel(t); return 'local'; }
    if (!this.store || this.mine.has(pid)) return 'unknown';
    const r = await this.store.routeCancel({ processId: pid, secretKey: secret }).catch(() => 'unknown' as const);
    return r === 'sent' ? 'routed' : 'unknown';
  }
}

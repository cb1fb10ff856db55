/**
 * The leader lock: only the controller holding it runs migrations, and its
 * writes carry the lock's fencing token, so a controller that lost the lock
 * (paused, partitioned) cannot overwrite its successor's records.
 */
import { logger } from '../observability/logger';
import type { LeaderLease, StateStore } from '../state/store';
import { sleep } from '../util/sleep';
import { errMsg } from './steps';

const TTL_MS = 5000;

export class Leadership {
  private lease: LeaderLease | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private offReconnect: (() => void) | undefined;

  constructor(private readonly store: StateStore, readonly holder: string) {}

  get isLeader(): boolean { return this.lease !== undefined; }
  get token(): number | undefined { return this.lease?.token; }

  /** Takes the lock, waiting up to waitMs for a stale one to expire, and keeps renewing it. */
  async acquire(waitMs: number): Promise<void> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const lease = await this.store.acquireLeadership(this.holder, TTL_MS);
      if (lease) { this.lease = lease; break; }
      if (Date.now() > deadline) {
        const other = await this.store.currentLeader();
        throw new Error(`another controller leads (${other?.holder ?? 'unknown'}); only one controller may run migrations`);
      }
      await sleep(250);
    }
    this.renewTimer = setInterval(() => { void this.keep(); }, TTL_MS / 3);
    // a store that came back may have lost the lock: find out now, not at the next renewal
    this.offReconnect = this.store.onReconnect(() => { void this.keep(); });
    this.renewTimer.unref();
  }

  /**
   * Renews the lease; a lease lost (it expired while the store was unreachable, or the store
   * came back empty) is taken again when the lock is free, with a new fencing token, so a
   * Redis outage does not leave the fleet without a controller until someone restarts it.
   */
  private async keep(): Promise<void> {
    if (!this.store.reachable()) return;
    try {
      if (this.lease) {
        if (await this.store.renewLeadership(this.lease, TTL_MS)) return;
        logger().error('controller lost the leader lock');
        this.lease = undefined;
      }
      const lease = await this.store.acquireLeadership(this.holder, TTL_MS);
      if (lease && this.renewTimer) {
        this.lease = lease;
        logger().warn({ token: lease.token }, 'controller took the leader lock again');
      } else if (lease) {
        await this.store.releaseLeadership(lease); // stopped meanwhile
      }
    } catch (err) {
      logger().warn({ err: errMsg(err) }, 'leader renew failed');
    }
  }

  /** The lock then lapses with its ttl unless released. */
  stopRenewing(): void {
    this.offReconnect?.();
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = undefined;
  }

  async release(): Promise<void> {
    this.stopRenewing();
    if (this.lease) await this.store.releaseLeadership(this.lease).catch(() => undefined);
    this.lease = undefined;
  }
}

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
    this.renewTimer = setInterval(() => {
      if (!this.lease) return;
      this.store.renewLeadership(this.lease, TTL_MS).then((ok) => {
        if (!ok) { logger().error('controller lost the leader lock'); this.lease = undefined; }
      }).catch((err) => logger().warn({ err: errMsg(err) }, 'leader renew failed'));
    }, TTL_MS / 3);
    this.renewTimer.unref();
  }

  /** The lock then lapses with its ttl unless released. */
  stopRenewing(): void {
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = undefined;
  }

  async release(): Promise<void> {
    this.stopRenewing();
    if (this.lease) await this.store.releaseLeadership(this.lease).catch(() => undefined);
    this.lease = undefined;
  }
}

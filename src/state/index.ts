import { MemoryStateStore } from './memory-store';
import { RedisStateStore } from './redis-store';
import type { StateStore } from './store';

export * from './store';
export { CHANNELS, KEYS, DEFAULT_PREFIX } from './keys';
export { MemoryStateStore } from './memory-store';
export { RedisStateStore } from './redis-store';

/** Redis when a URL is configured (a fleet), else the in-process store (one process). */
export async function openStateStore(opts: { redisUrl?: string; prefix?: string; connectionName?: string }): Promise<StateStore> {
  if (!opts.redisUrl) return new MemoryStateStore();
  return RedisStateStore.connect(opts.redisUrl, { prefix: opts.prefix, connectionName: opts.connectionName });
}

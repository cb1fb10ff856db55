import { existsSync } from 'node:fs';
import Redis from 'ioredis';
import { startPair, startRedis } from './clusters';

describe('test harness', () => {
  it('starts blue and green with wal_level=logical on distinct ports, and removes them on stop', async () => {
    const pair = await startPair();
    try {
      expect(pair.blue.port).not.toBe(pair.green.port);
      for (const side of [pair.blue, pair.green]) {
        const [row] = await side.query<{ wal_level: string }>('SHOW wal_level');
        expect(row.wal_level).toBe('logical');
      }
    } finally {
      await pair.stop();
    }
    expect(existsSync(pair.blue.cluster.dataDir)).toBe(false);
    expect(existsSync(pair.green.cluster.dataDir)).toBe(false);
  });

  it('provides a real Redis', async () => {
    const redis = await startRedis();
    const client = new Redis(redis.url, { lazyConnect: true });
    try {
      await client.connect();
      await client.set(`${redis.prefix}k`, 'v');
      expect(await client.get(`${redis.prefix}k`)).toBe('v');
    } finally {
      client.disconnect();
      await redis.stop();
    }
  });
});

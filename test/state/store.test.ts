import Redis from 'ioredis';
import { startRedis, TestRedis } from '../harness/clusters';
import { MemoryStateStore } from '../../src/state/memory-store';
import { RedisStateStore } from '../../src/state/redis-store';
import { CancelKey, StateStore } from '../../src/state/store';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nextMessage = (store: StateStore, channel: string) => new Promise<unknown>((resolve) => {
  void store.subscribe(channel, resolve);
});

let redis: TestRedis;
let n = 0;
const open: StateStore[] = [];

beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => {
  await Promise.all(open.map((s) => s.close()));
  await redis.stop();
});

type Factory = () => Promise<{ a: StateStore; b: StateStore }>;
/** two handles on the same state: for Redis, two processes' worth of connections */
const factories: [string, Factory][] = [
  ['memory', async () => { const s = new MemoryStateStore(); open.push(s); return { a: s, b: s }; }],
  ['redis', async () => {
    const prefix = `${redis.prefix}${++n}:`;
    const a = await RedisStateStore.connect(redis.url, { prefix });
    const b = await RedisStateStore.connect(redis.url, { prefix });
    open.push(a, b);
    return { a, b };
  }],
];

describe.each(factories)('%s state store', (_name, make) => {
  let a: StateStore;
  let b: StateStore;
  beforeEach(async () => { ({ a, b } = await make()); });

  it('keeps the active side and an epoch that only a matching compare-and-set can raise', async () => {
    expect(await a.getActive()).toBeNull();
    expect(await a.initActive('blue')).toEqual({ active: 'blue', epoch: 0 });
    expect(await b.initActive('green')).toEqual({ active: 'blue', epoch: 0 });
    expect(await b.compareAndSetActive(1, { active: 'green', epoch: 2 })).toBe(false);
    expect(await b.compareAndSetActive(0, { active: 'green', epoch: 0 })).toBe(false);
    const race = await Promise.all([a.compareAndSetActive(0, { active: 'green', epoch: 1 }), b.compareAndSetActive(0, { active: 'green', epoch: 1 })]);
    expect(race.filter(Boolean)).toHaveLength(1);
    expect(await b.getActive()).toEqual({ active: 'green', epoch: 1 });
  });

  it('seeds the active side only into a store that holds none or an older epoch', async () => {
    expect(a.reachable()).toBe(true);
    expect(await a.seedActive({ active: 'green', epoch: 4 })).toEqual({ active: 'green', epoch: 4 });
    expect(await b.getActive()).toEqual({ active: 'green', epoch: 4 });
    // behind or equal: what is stored wins
    expect(await b.seedActive({ active: 'blue', epoch: 3 })).toEqual({ active: 'green', epoch: 4 });
    expect(await b.seedActive({ active: 'blue', epoch: 4 })).toEqual({ active: 'green', epoch: 4 });
    // newer: the seed wins, and the epoch goes on from there
    expect(await b.seedActive({ active: 'blue', epoch: 6 })).toEqual({ active: 'blue', epoch: 6 });
    expect(await a.compareAndSetActive(6, { active: 'green', epoch: 7 })).toBe(true);
    expect(await a.initActive('blue')).toEqual({ active: 'green', epoch: 7 });
  });

  it('decides a flip once: commit and abort cannot both win', async () => {
    await a.initActive('blue');
    expect(await a.beginFlip({ id: 'f1', fromEpoch: 0, from: 'blue', target: 'green', startedAt: Date.now(), holdMs: 1000 })).toBe(true);
    expect(await b.beginFlip({ id: 'f2', fromEpoch: 0, from: 'blue', target: 'green', startedAt: Date.now(), holdMs: 1000 })).toBe(false);
    const [c, ab] = await Promise.all([a.commitFlip('f1'), b.abortFlip('f1', 'member gave up')]);
    const final = await a.currentFlip();
    if (c.committed) {
      expect(ab?.state).toBe('committed');
      expect(await a.getActive()).toEqual({ active: 'green', epoch: 1 });
    } else {
      expect(final).toMatchObject({ state: 'aborted', reason: 'member gave up' });
      expect(await a.getActive()).toEqual({ active: 'blue', epoch: 0 });
    }
    expect(final?.state).toBe(c.committed ? 'committed' : 'aborted');
    // once decided, a new flip may begin; the old one can no longer commit
    expect(await b.beginFlip({ id: 'f3', fromEpoch: c.committed ? 1 : 0, from: 'blue', target: 'green', startedAt: Date.now(), holdMs: 1000 })).toBe(true);
    expect((await a.commitFlip('f1')).committed).toBe(false);
  });

  it('refuses to commit a flip when the epoch moved under it', async () => {
    await a.initActive('blue');
    await a.beginFlip({ id: 'f', fromEpoch: 0, from: 'blue', target: 'green', startedAt: Date.now(), holdMs: 1000 });
    await b.compareAndSetActive(0, { active: 'green', epoch: 1 });
    const c = await a.commitFlip('f');
    expect(c.committed).toBe(false);
    expect(c.active).toEqual({ active: 'green', epoch: 1 });
  });

  it('sees a proxy as live only while its heartbeat keeps the registration fresh', async () => {
    await a.registerProxy({ id: 'p1', startedAt: 1, meta: { adminUrl: 'http://h:9187' } }, 300);
    await a.registerProxy({ id: 'p2', startedAt: 2 }, 5000);
    expect((await b.liveProxies()).map((p) => p.id).sort()).toEqual(['p1', 'p2']);
    expect((await b.liveProxies()).find((p) => p.id === 'p1')?.meta).toEqual({ adminUrl: 'http://h:9187' });
    expect(await a.heartbeat('p1', 300)).toBe(true);
    await sleep(450);
    expect((await b.liveProxies()).map((p) => p.id)).toEqual(['p2']);
    expect(await a.heartbeat('p1', 300)).toBe(false);
    await a.deregisterProxy('p2');
    expect(await b.liveProxies()).toEqual([]);
  });

  it('keeps the latest health report per proxy until it expires', async () => {
    await a.registerProxy({ id: 'p1', startedAt: 1 }, 5000);
    await a.reportHealth({ proxyId: 'p1', at: 1, sides: { blue: { up: true, latencyMs: 1 } } }, 5000);
    await a.reportHealth({ proxyId: 'p1', at: 2, sides: { blue: { up: false, error: 'connection refused' } } }, 200);
    expect(await b.healthReports()).toEqual([{ proxyId: 'p1', at: 2, sides: { blue: { up: false, error: 'connection refused' } } }]);
    await sleep(300);
    expect(await b.healthReports()).toEqual([]);
  });

  it('routes a cancel request to the proxy that owns the key', async () => {
    const key: CancelKey = { processId: 4242, secretKey: 0xdeadbeef };
    expect(await a.claimCancelKey(key, 'p1', 60_000)).toBe(true);
    expect(await b.claimCancelKey(key, 'p2', 60_000)).toBe(false);
    expect(await b.cancelKeyOwner(key)).toBe('p1');
    expect(await b.routeCancel(key)).toBe('unreachable'); // p1 not listening
    const got = new Promise<CancelKey>((resolve) => { void a.onCancel('p1', resolve); });
    await sleep(20);
    expect(await b.routeCancel(key)).toBe('sent');
    expect(await got).toEqual(key);
    expect(await b.routeCancel({ processId: 1, secretKey: 2 })).toBe('unknown');
    await b.releaseCancelKey(key, 'p2'); // not the owner: no effect
    expect(await a.cancelKeyOwner(key)).toBe('p1');
    await a.releaseCancelKey(key, 'p1');
    expect(await b.cancelKeyOwner(key)).toBeNull();
  });

  it('lets one leader hold the lock and fences writes of a leader whose lease lapsed', async () => {
    const l1 = await a.acquireLeadership('ctl-1', 300);
    expect(l1).not.toBeNull();
    expect(await b.acquireLeadership('ctl-2', 300)).toBeNull();
    expect(await a.renewLeadership(l1!, 300)).toBe(true);
    expect(await a.setJson('migration/1', { step: 'copy' }, { fencingToken: l1!.token })).toEqual({ ok: true, version: 1 });
    await sleep(450); // l1 lapses (a paused controller)
    const l2 = await b.acquireLeadership('ctl-2', 5000);
    expect(l2!.token).toBeGreaterThan(l1!.token);
    expect(await b.currentLeader()).toEqual(l2);
    expect(await a.renewLeadership(l1!, 300)).toBe(false);
    expect(await a.setJson('migration/1', { step: 'flip' }, { fencingToken: l1!.token })).toEqual({ ok: false, reason: 'fenced' });
    await a.initActive('blue');
    expect(await a.compareAndSetActive(0, { active: 'green', epoch: 1 }, { fencingToken: l1!.token })).toBe(false);
    expect(await a.beginFlip({ id: 'x', fromEpoch: 0, from: 'blue', target: 'green', startedAt: 0, holdMs: 1000 }, { fencingToken: l1!.token })).toBe(false);
    expect(await b.setJson('migration/1', { step: 'rolled back' }, { fencingToken: l2!.token })).toEqual({ ok: true, version: 2 });
    await a.releaseLeadership(l1!); // stale: must not release l2
    expect(await b.currentLeader()).toEqual(l2);
    await b.releaseLeadership(l2!);
    expect(await a.currentLeader()).toBeNull();
  });

  it('stores versioned JSON with optional compare-and-set', async () => {
    expect(await a.getJson('m')).toBeNull();
    expect(await a.setJson('m', { n: 1 }, { expectVersion: 1 })).toEqual({ ok: false, reason: 'conflict', version: 0 });
    expect(await a.setJson('m', { n: 1 }, { expectVersion: 0 })).toEqual({ ok: true, version: 1 });
    expect(await b.setJson('m', { n: 2 }, { expectVersion: 0 })).toEqual({ ok: false, reason: 'conflict', version: 1 });
    expect(await b.setJson('m', { n: 2, nested: ['x'] }, { expectVersion: 1 })).toEqual({ ok: true, version: 2 });
    expect(await a.getJson('m')).toEqual({ value: { n: 2, nested: ['x'] }, version: 2 });
    expect(await a.setJson('m', 'plain')).toEqual({ ok: true, version: 3 });
    expect(await b.deleteJson('m')).toBe(true);
    expect(await a.getJson('m')).toBeNull();
  });

  it('keeps the newest entries of a capped list, newest first', async () => {
    for (let i = 1; i <= 5; i++) await a.appendCapped('history', { i }, 3);
    expect(await b.listRange('history')).toEqual([{ i: 5 }, { i: 4 }, { i: 3 }]);
    expect(await b.listRange('history', 2)).toEqual([{ i: 5 }, { i: 4 }]);
    expect(await b.listRange('none')).toEqual([]);
  });

  it('publishes to every subscriber and stops after unsubscribe', async () => {
    const seen: unknown[] = [];
    const off = await b.subscribe('ch', (m) => seen.push(m));
    const other = nextMessage(a, 'ch');
    await sleep(20);
    expect(await a.publish('ch', { hello: 1 })).toBeGreaterThan(0);
    expect(await other).toEqual({ hello: 1 });
    await sleep(20);
    expect(seen).toEqual([{ hello: 1 }]);
    await off();
    await a.publish('ch', { hello: 2 });
    await sleep(50);
    expect(seen).toEqual([{ hello: 1 }]);
  });
});

describe('Redis state store specifics', () => {
  it('keeps every key under its prefix, isolated from another prefix', async () => {
    const p1 = `${redis.prefix}iso1:`;
    const s1 = await RedisStateStore.connect(redis.url, { prefix: p1 });
    const s2 = await RedisStateStore.connect(redis.url, { prefix: `${redis.prefix}iso2:` });
    const raw = new Redis(redis.url);
    try {
      await s1.initActive('green');
      await s1.registerProxy({ id: 'p', startedAt: 0 }, 5000);
      await s1.setJson('k', 1);
      await s1.appendCapped('l', 1, 5);
      expect(await s2.getActive()).toBeNull();
      expect(await s2.liveProxies()).toEqual([]);
      const keys = await raw.keys(`${redis.prefix}iso*`);
      expect(keys.sort()).toEqual([`${p1}active`, `${p1}kv:k`, `${p1}list:l`, `${p1}proxies`, `${p1}proxy:p`]);
    } finally {
      raw.disconnect();
      await Promise.all([s1.close(), s2.close()]);
    }
  });

  it('resubscribes and reports a reconnect after Redis drops its connections', async () => {
    const s = await RedisStateStore.connect(redis.url, { prefix: `${redis.prefix}rc:`, connectionName: 'pgflip-reconnect-test' });
    const raw = new Redis(redis.url);
    try {
      const seen: unknown[] = [];
      await s.subscribe('ch', (m) => seen.push(m));
      const reconnected = new Promise<void>((resolve) => s.onReconnect(resolve));
      const list = String(await raw.client('LIST'));
      const ids = [...list.matchAll(/^id=(\d+) .* name=pgflip-reconnect-test /gm)].map((m) => m[1]);
      expect(ids).toHaveLength(2); // commands and subscriptions
      for (const id of ids) await raw.client('KILL', 'ID', id);
      await reconnected;
      // ioredis re-issues SUBSCRIBE on reconnect; wait until the server counts our subscriber again
      for (let i = 0; i < 100; i++) {
        const [, count] = (await raw.pubsub('NUMSUB', `${redis.prefix}rc:ch`)) as [string, number];
        if (Number(count) > 0) break;
        await sleep(20);
      }
      await s.publish('ch', { after: 'reconnect' });
      await sleep(50);
      expect(seen).toEqual([{ after: 'reconnect' }]);
    } finally {
      raw.disconnect();
      await s.close();
    }
  });

  it('names the unreachable Redis without its password', async () => {
    await expect(RedisStateStore.connect('redis://:s3cret@127.0.0.1:1')).rejects.toThrow(/cannot connect to Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/);
  });
});

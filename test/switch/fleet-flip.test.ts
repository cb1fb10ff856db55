/**
 * The two-phase fleet flip (docs/fleet.md) between a FlipCoordinator and several
 * FleetMembers, over real Redis (each member on its own connections, as on its
 * own machine) and over the in-process memory store. The proxies are stood in
 * for by RecordingParticipant; what is asserted is the protocol's outcome.
 */
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { startRedis, TestRedis } from '../harness/clusters';
import { CHANNELS } from '../../src/state/keys';
import { MemoryStateStore } from '../../src/state/memory-store';
import { RedisStateStore } from '../../src/state/redis-store';
import { StateStore } from '../../src/state/store';
import { FlipCoordinator } from '../../src/switch/coordinator';
import { FleetMember } from '../../src/switch/fleet-member';
import { PauseCommand } from '../../src/switch/messages';
import { PauseBehaviour, RecordingParticipant } from './recording-participant';

const HEARTBEAT_MS = 150;
const TTL_MS = 1500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let redis: TestRedis;
let n = 0;
beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => { await redis.stop(); });

interface Fleet {
  /** the controller's store */
  store: StateStore;
  coordinator: FlipCoordinator;
  join(id: string, behaviour?: PauseBehaviour): Promise<{ p: RecordingParticipant; m: FleetMember }>;
  /** a member object not yet started */
  member(id: string, behaviour?: PauseBehaviour): Promise<{ p: RecordingParticipant; m: FleetMember }>;
  close(): Promise<void>;
}

type StoreMaker = () => { open(): Promise<StateStore>; prefix: string };

function makeFleet(makeStore: StoreMaker) {
  return async (): Promise<Fleet> => {
    const maker = makeStore();
    const stores: StateStore[] = [];
    const members: FleetMember[] = [];
    const open = async () => { const s = await maker.open(); stores.push(s); return s; };
    const store = await open();
    await store.initActive('blue');
    const coordinator = new FlipCoordinator(store, { commitWindowMs: 1000, switchAckTimeoutMs: 2000, livenessPollMs: 100 });
    const fleet: Fleet = {
      store,
      coordinator,
      async member(id, behaviour) {
        const p = new RecordingParticipant(id, behaviour);
        // each member gets its own store handle, as a proxy on its own machine would
        const m = new FleetMember(await open(), p, { heartbeatMs: HEARTBEAT_MS, ttlMs: TTL_MS });
        members.push(m);
        return { p, m };
      },
      async join(id, behaviour) {
        const r = await fleet.member(id, behaviour);
        await r.m.start();
        return r;
      },
      async close() {
        await Promise.all(members.map((m) => m.stop()));
        await coordinator.close();
        await Promise.all([...new Set(stores)].map((s) => s.close()));
      },
    };
    return fleet;
  };
}

const memoryStores: StoreMaker = () => {
  const s = new MemoryStateStore();
  return { prefix: '', open: async () => s };
};
const redisStores: StoreMaker = () => {
  const prefix = `${redis.prefix}${++n}:`;
  return { prefix, open: () => RedisStateStore.connect(redis.url, { prefix }) };
};

describe.each([['redis', redisStores], ['memory', memoryStores]] as const)('fleet flip over the %s store', (_name, stores) => {
  let fleet: Fleet;
  beforeEach(async () => { fleet = await makeFleet(stores)(); });
  afterEach(async () => { await fleet.close(); });

  it('pauses both proxies, commits the new epoch, switches both, and flips back', async () => {
    const { p: p1 } = await fleet.join('p1');
    const { p: p2 } = await fleet.join('p2');
    const out = await fleet.coordinator.flip({ target: 'green', deadlineMs: 2000 });
    expect(out).toMatchObject({ ok: true, from: 'blue', target: 'green', active: 'green', epoch: 1, proxies: ['p1', 'p2'], sessionsCarried: 6, sessionsTerminated: 0 });
    expect(Object.keys(out.pauseMs).sort()).toEqual(['p1', 'p2']);
    expect(out.unacknowledged).toBeUndefined();
    for (const p of [p1, p2]) {
      expect(p.calls).toEqual(['adopt:blue:0', 'pause', 'switchTo:green:1', 'resume']);
      expect(p).toMatchObject({ side: 'green', epoch: 1, state: 'serving' });
    }
    expect(await fleet.store.getActive()).toEqual({ active: 'green', epoch: 1 });

    const back = await fleet.coordinator.flip({ target: 'blue', deadlineMs: 2000 });
    expect(back).toMatchObject({ ok: true, active: 'blue', epoch: 2 });
    expect(p1).toMatchObject({ side: 'blue', epoch: 2, state: 'serving' });
    expect(p2).toMatchObject({ side: 'blue', epoch: 2, state: 'serving' });
  });

  it('aborts at the deadline when one proxy never answers: epoch unchanged, everyone back on the old side', async () => {
    const { p: p1 } = await fleet.join('p1');
    const { p: p2 } = await fleet.join('p2', { kind: 'silent' });
    const out = await fleet.coordinator.flip({ target: 'green', deadlineMs: 600 });
    expect(out).toMatchObject({ ok: false, active: 'blue', epoch: 0, blockedProxies: [{ proxyId: 'p2', why: 'no-answer' }] });
    expect(out.reason).toMatch(/p2: no answer before the deadline/);
    expect(await fleet.store.getActive()).toEqual({ active: 'blue', epoch: 0 });
    await waitFor('both proxies to resume', () => p1.state === 'serving' && p2.state === 'serving');
    for (const p of [p1, p2]) {
      expect(p.calls).toEqual(['adopt:blue:0', 'pause', 'abort']);
      expect(p).toMatchObject({ side: 'blue', epoch: 0 });
    }
    // the fleet is usable again right away
    expect(await fleet.coordinator.flip({ target: 'green', deadlineMs: 300 }).then((o) => o.ok)).toBe(false); // p2 is still silent
    p2.behaviour = { kind: 'pause' };
    expect(await fleet.coordinator.flip({ target: 'green', deadlineMs: 2000 })).toMatchObject({ ok: true, epoch: 1 });
  });

  it('aborts when a proxy reports sessions stuck in a transaction, and names them', async () => {
    const { p: p1 } = await fleet.join('p1');
    await fleet.join('p2', { kind: 'blocked', sessions: ['client 10.0.0.7:51234 (in transaction)'] });
    const out = await fleet.coordinator.flip({ target: 'green', deadlineMs: 400 });
    expect(out).toMatchObject({ ok: false, epoch: 0, blockedProxies: [{ proxyId: 'p2', why: 'blocked' }] });
    expect(out.blockedSessions).toEqual(['p2/client 10.0.0.7:51234 (in transaction)']);
    await waitFor('p1 to resume', () => p1.state === 'serving');
    expect(p1.calls).toEqual(['adopt:blue:0', 'pause', 'abort']);
  });

  it('runs beforeCommit while every proxy holds, and aborts when it fails', async () => {
    const { p: p1 } = await fleet.join('p1');
    const { p: p2 } = await fleet.join('p2');
    const heldDuringCatchUp: string[] = [];
    const aborted: string[] = [];
    const out = await fleet.coordinator.flip({
      target: 'green',
      deadlineMs: 2000,
      beforeCommit: async () => {
        heldDuringCatchUp.push(p1.state, p2.state);
        throw new Error('final catch-up: lag did not reach zero');
      },
      onAbort: async (reason) => { aborted.push(reason); },
    });
    expect(heldDuringCatchUp).toEqual(['held', 'held']);
    expect(out).toMatchObject({ ok: false, epoch: 0, active: 'blue', reason: 'beforeCommit failed: final catch-up: lag did not reach zero' });
    expect(aborted).toEqual([out.reason]);
    expect(await fleet.store.getActive()).toEqual({ active: 'blue', epoch: 0 });
    await waitFor('both proxies to resume', () => p1.state === 'serving' && p2.state === 'serving');
    expect(p1.side).toBe('blue');
  });

  it('lets a proxy that starts late adopt the current side and epoch before it serves', async () => {
    await fleet.join('p1');
    await fleet.coordinator.flip({ target: 'green', deadlineMs: 2000 });
    const { p, m } = await fleet.member('late');
    expect(p.side).toBeNull();
    expect(await m.start()).toEqual({ active: 'green', epoch: 1 });
    expect(p.calls).toEqual(['adopt:green:1']);
    // and takes part in the next flip
    const out = await fleet.coordinator.flip({ target: 'blue', deadlineMs: 2000 });
    expect(out).toMatchObject({ ok: true, epoch: 2, proxies: ['late', 'p1'] });
    expect(p).toMatchObject({ side: 'blue', epoch: 2 });
  });

  it('makes a proxy that starts during a flip wait for the decision, then adopt it', async () => {
    await fleet.join('p1');
    let joining: Promise<unknown> | undefined;
    const { p, m } = await fleet.member('joiner');
    const out = await fleet.coordinator.flip({
      target: 'green',
      deadlineMs: 2000,
      beforeCommit: async () => {
        joining = m.start();
        await sleep(300);
        expect(p.calls).toEqual([]); // neither side served while the flip is undecided
      },
    });
    expect(out).toMatchObject({ ok: true, epoch: 1 });
    await joining;
    expect(p.calls).toEqual(['adopt:green:1']);
  });

  it('re-synchronises a proxy that finds a newer epoch than its own', async () => {
    const { p } = await fleet.join('p1');
    // as if a flip happened while this proxy was cut off from the store
    expect(await fleet.store.compareAndSetActive(0, { active: 'green', epoch: 1 })).toBe(true);
    await waitFor('the proxy to adopt epoch 1', () => p.epoch === 1);
    expect(p.calls).toEqual(['adopt:blue:0', 'adopt:green:1']);
  });

  it('decides through the store when the controller vanishes mid-flip: commit recorded → switch, else → abort', async () => {
    const { p: p1 } = await fleet.join('p1');
    const { p: p2 } = await fleet.join('p2');
    const pause = (flipId: string, fromEpoch: number, from: 'blue' | 'green', target: 'blue' | 'green'): PauseCommand =>
      ({ type: 'pause', flipId, fromEpoch, from, epoch: fromEpoch + 1, target, timeoutMs: 200, commitWindowMs: 200 });

    // a controller paused the fleet and died before deciding
    expect(await fleet.store.beginFlip({ id: 'f-dead', fromEpoch: 0, from: 'blue', target: 'green', startedAt: Date.now(), holdMs: 400 })).toBe(true);
    await fleet.store.publish(CHANNELS.flip, pause('f-dead', 0, 'blue', 'green'));
    await waitFor('both proxies to give up and resume', () => p1.calls.includes('abort') && p2.calls.includes('abort'));
    expect((await fleet.store.currentFlip())?.state).toBe('aborted');
    expect((await fleet.store.commitFlip('f-dead')).committed).toBe(false); // too late for a commit
    expect(p1).toMatchObject({ side: 'blue', epoch: 0, state: 'serving' });

    // a controller committed and died before publishing switch
    expect(await fleet.store.beginFlip({ id: 'f-half', fromEpoch: 0, from: 'blue', target: 'green', startedAt: Date.now(), holdMs: 400 })).toBe(true);
    await fleet.store.publish(CHANNELS.flip, pause('f-half', 0, 'blue', 'green'));
    await waitFor('both proxies to pause', () => p1.calls.filter((c) => c === 'pause').length === 2 && p2.calls.filter((c) => c === 'pause').length === 2);
    expect((await fleet.store.commitFlip('f-half')).committed).toBe(true);
    await waitFor('both proxies to switch', () => p1.epoch === 1 && p2.epoch === 1);
    expect(p1.calls.slice(-2)).toEqual(['switchTo:green:1', 'resume']);
    expect(p2).toMatchObject({ side: 'green', state: 'serving' });
  });

  it('lets a proxy start when a flip was left undecided by a controller that died and no proxy to decide it', async () => {
    expect(await fleet.store.beginFlip({ id: 'orphan', fromEpoch: 0, from: 'blue', target: 'green', startedAt: Date.now(), holdMs: 300 })).toBe(true);
    const { p, m } = await fleet.member('restarted');
    expect(await m.start()).toEqual({ active: 'blue', epoch: 0 });
    expect(p.calls).toEqual(['adopt:blue:0']);
    expect(await fleet.store.currentFlip()).toMatchObject({ id: 'orphan', state: 'aborted' });
    expect((await fleet.store.commitFlip('orphan')).committed).toBe(false);
  });

  it('refuses a flip from a controller whose leadership lapsed, before pausing anyone', async () => {
    const { p } = await fleet.join('p1');
    const stale = await fleet.store.acquireLeadership('ctl-old', 100);
    await sleep(200);
    const current = await fleet.store.acquireLeadership('ctl-new', 5000);
    const out = await fleet.coordinator.flip({ target: 'green', deadlineMs: 1000, fencingToken: stale!.token });
    expect(out).toMatchObject({ ok: false, epoch: 0, reason: 'the store refused the flip: leadership lost' });
    expect(p.calls).toEqual(['adopt:blue:0']);
    expect(await fleet.coordinator.flip({ target: 'green', deadlineMs: 1000, fencingToken: current!.token })).toMatchObject({ ok: true, epoch: 1 });
  });

  it('reports a flip to the side already active as a no-op', async () => {
    const { p } = await fleet.join('p1');
    expect(await fleet.coordinator.flip({ target: 'blue', deadlineMs: 1000 })).toMatchObject({ ok: true, noop: true, epoch: 0 });
    expect(p.calls).toEqual(['adopt:blue:0']);
  });
});

describe('fleet flip with a proxy process killed mid-pause', () => {
  let child: ChildProcess | undefined;
  afterEach(() => { child?.kill('SIGKILL'); });

  it('aborts, leaves the epoch unchanged and resumes the survivors on the old side', async () => {
    const fleet = await makeFleet(() => {
      const prefix = `${redis.prefix}${++n}:`;
      return { prefix, open: () => RedisStateStore.connect(redis.url, { prefix }) };
    })();
    try {
      const prefix = (fleet.store as RedisStateStore).prefix;
      const { p: survivor } = await fleet.join('survivor');
      const fixture = path.join(__dirname, 'fixtures');
      const lines: string[] = [];
      child = spawn(process.execPath, ['-r', path.join(__dirname, '../harness/ts-register.js'), path.join(fixture, 'member-process.ts'),
        redis.url, prefix, 'doomed', String(HEARTBEAT_MS), String(TTL_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise((r) => child!.once('exit', r));
      child.stdout!.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
      await waitFor('the child proxy to join', () => lines.includes('ready'), 20_000);
      expect((await fleet.store.liveProxies()).map((r) => r.id).sort()).toEqual(['doomed', 'survivor']);

      const flipping = fleet.coordinator.flip({ target: 'green', deadlineMs: 8000 });
      await waitFor('the child proxy to start pausing', () => lines.includes('pause'));
      child.kill('SIGKILL');
      await exited;
      const out = await flipping;

      expect(out).toMatchObject({ ok: false, active: 'blue', epoch: 0, proxies: ['doomed', 'survivor'] });
      // its registration expired (TTL) before the deadline, so the coordinator did not wait that long
      expect(out.blockedProxies).toEqual([{ proxyId: 'doomed', why: 'lost' }]);
      expect(await fleet.store.getActive()).toEqual({ active: 'blue', epoch: 0 });
      await waitFor('the survivor to resume', () => survivor.state === 'serving');
      expect(survivor.calls).toEqual(['adopt:blue:0', 'pause', 'abort']);
      expect(survivor.side).toBe('blue');
    } finally {
      await fleet.close();
    }
  });
});

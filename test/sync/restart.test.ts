/**
 * A sync process killed (SIGKILL) mid-copy and mid-stream: the restarted
 * process cleans the leftovers or resumes from the applied LSN, ends equal,
 * and leaves no slot behind.
 */
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { startPair, TestCluster } from '../harness/clusters';
import { SyncSession } from '../../src/sync';
import { leftovers, sleep, startWriter } from './fixtures/writer';

const SLOT = 'pgflip_restart';
let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
const children = new Set<ChildProcess>();

interface Child {
  proc: ChildProcess;
  events: Record<string, unknown>[];
  /** resolves with the first event matching `pred` */
  waitFor(pred: (e: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  kill(): Promise<void>;
}

function runChild(mode: 'full' | 'resume'): Child {
  const proc = spawn(process.execPath, [
    '-r', path.join(__dirname, '../harness/ts-register.js'), path.join(__dirname, 'fixtures/sync-child.ts'),
    mode, pair.blue.url(), pair.green.url(), SLOT,
  ], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(proc);
  const events: Record<string, unknown>[] = [];
  const waiters: { pred: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }[] = [];
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const e = JSON.parse(line) as Record<string, unknown>;
    events.push(e);
    for (const w of [...waiters]) if (w.pred(e)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(e); }
  });
  const exited = new Promise<void>((r) => proc.on('exit', () => { children.delete(proc); r(); }));
  return {
    proc, events,
    waitFor(pred, timeoutMs = 60_000) {
      const found = events.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`child: no matching event in ${timeoutMs} ms; got ${JSON.stringify(events.slice(-3))}`)), timeoutMs);
        waiters.push({ pred: (e) => (e.event === 'error' ? (reject(new Error(String(e.message))), true) : pred(e)), resolve: (e) => { clearTimeout(t); resolve(e); } });
      });
    },
    async kill() {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

beforeAll(async () => {
  pair = await startPair();
  await pair.blue.query(`
    CREATE TABLE items (id bigserial PRIMARY KEY, payload text NOT NULL, n int NOT NULL DEFAULT 0);
    INSERT INTO items (payload) SELECT repeat(md5(g::text), 4) FROM generate_series(1, 150000) g`);
}, 60_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await pair?.stop();
});

const slotsOn = async (side: TestCluster) => (await side.query<{ slot_name: string; active: boolean }>('SELECT slot_name, active FROM pg_replication_slots'));

test('killed mid-copy: leftovers are removed and a fresh run starts clean', async () => {
  const child = runChild('full');
  // any progress report before the table is done (a fast copy may report 0.0 % and then 100 %)
  await child.waitFor((e) => e.event === 'copy' && e.done === false);
  await child.kill();
  expect((await slotsOn(pair.blue)).map((s) => s.slot_name)).toEqual([SLOT]); // what a crash leaves

  const report = await SyncSession.cleanupLeftovers(pair.blue.url(), 'pgflip_');
  expect(report.slots).toEqual([SLOT]);
  expect(report.publications).toEqual([SLOT]);
  expect(await leftovers((sql) => pair.blue.query(sql))).toEqual({ slots: [], publications: [], helperSchema: false });
}, 90_000);

test('killed mid-stream: the restarted process resumes from the applied LSN and ends equal, without a leaked slot', async () => {
  const writer = await startWriter(pair.blue.url(), async (c, rand, i) => {
    const id = 1 + Math.floor(rand() * 150000);
    if (i % 3 === 0) await c.query('INSERT INTO items (payload) VALUES ($1)', [`new ${i}`]);
    else if (i % 3 === 1) await c.query('UPDATE items SET n = n + 1, payload = $2 WHERE id = $1', [id, `upd ${i}`]);
    else await c.query('DELETE FROM items WHERE id = $1', [id]);
  }, 3);
  try {
    const first = runChild('full');
    await first.waitFor((e) => e.event === 'streaming');
    let applied = 0;
    await first.waitFor((e) => e.event === 'applied' && ++applied >= 3);
    await first.kill();
    // the slot must survive a crash of the streaming process: it holds what was not yet applied
    expect((await slotsOn(pair.blue)).map((s) => s.slot_name)).toEqual([SLOT]);
    const [state] = await pair.green.query<{ lsn: string }>('SELECT applied_lsn::text AS lsn FROM pgflip.sync_state WHERE slot_name = $1', [SLOT]);
    expect(state.lsn).toMatch(/\//);

    const second = runChild('resume');
    await second.waitFor((e) => e.event === 'streaming');
    await sleep(1000);
    await writer.stop();
    second.proc.stdin!.write('finish\n');
    const done = await second.waitFor((e) => e.event === 'finished', 60_000);
    expect(done.equal).toBe(true);
    expect((done.stats as { missingRows: number }).missingRows).toBe(0);
    expect((done.cleanup as { source: { slots: string[] } }).source.slots).toEqual([SLOT]);
  } finally {
    await writer.stop().catch(() => undefined);
  }
  for (const side of [pair.blue, pair.green]) {
    expect(await leftovers((sql) => side.query(sql))).toEqual({ slots: [], publications: [], helperSchema: false });
  }
}, 120_000);

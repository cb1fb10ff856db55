/**
 * The flip-torture harness in a bounded budget (bench/torture runs it longer):
 * random programs on node-postgres, postgres.js and a raw-protocol client,
 * through pgflip while it flips, aborts flips with faults and flips back; every
 * result equals the same program's direct run. A failure prints its seed:
 * TORTURE_SEED=<seed> npx jest test/torture draws the same programs again.
 */
import { startPair, TestCluster } from '../harness/clusters';
import { PROXY_PASSWORD, PROXY_USER, startProxyFor, TestProxy } from '../harness/proxy';
import { torture } from './run';
import { prepareTortureSchema, targetOf } from './schema';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let px: TestProxy;

beforeAll(async () => {
  pair = await startPair();
  await prepareTortureSchema(pair.blue, pair.green);
  px = await startProxyFor(pair, { proxy: { pinnedPolicy: 'terminate' } });
});
afterAll(async () => {
  await px?.stop();
  await pair?.stop();
});

test('programs × flips: every session finds what PostgreSQL left it, every result equals the direct run', async () => {
  const seed = Number(process.env.TORTURE_SEED ?? Math.floor(Math.random() * 1e6));
  const lines: string[] = [];
  const report = await torture({
    proxy: px.proxy,
    store: px.proxy.store,
    proxied: { host: '127.0.0.1', port: px.proxy.port, user: PROXY_USER, password: PROXY_PASSWORD, database: 'app' },
    direct: targetOf(pair.blue, 'ref'),
  }, { seed, clients: 9, steps: 30, pins: true, minDurationMs: 25_000, log: (l) => lines.push(l) });
  const summary = { seed, programs: report.programs, steps: report.steps, flips: report.flips, pinnedEnds: report.pinnedEnds };
  process.stdout.write(`torture: ${JSON.stringify(summary)}\n`);
  const failure = { seed, replay: `TORTURE_SEED=${seed} npx jest test/torture`, mismatches: report.mismatches, unexpectedEnds: report.unexpectedEnds, unexpectedAborts: report.flips.unexpectedAborts };
  expect(failure).toEqual({ seed, replay: `TORTURE_SEED=${seed} npx jest test/torture`, mismatches: [], unexpectedEnds: [], unexpectedAborts: [] });
  expect(report.flips.committed).toBeGreaterThan(3);
  expect(Object.keys(report.flips.aborted).length).toBeGreaterThan(1);
  expect(px.proxy.sessions().length).toBe(0);
}, 240_000);

/**
 * `pgflip demo` (what `npm run demo` runs after the build), as a user sees it:
 * the story on stdout and a summary that must show no lost write and no client
 * error.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { runCli, tempDataDir } from './helpers';

const dir = tempDataDir('pgflip-demo-test-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const field = (out: string, name: string): string => {
  const m = new RegExp(`^  ${name} +(.*)$`, 'm').exec(out);
  if (!m) throw new Error(`no "${name}" line in the summary:\n${out}`);
  return m[1];
};

test('the demo: writes through the proxy during a risky migration, the flip, 0 lost, 0 client errors', async () => {
  const dataDir = path.join(dir, 'data');
  const r = runCli(['demo', '--data-dir', dataDir, '--watch-seconds', '2']);
  const guard = setTimeout(() => r.child.kill('SIGTERM'), 150_000);
  const { code } = await r.exited;
  clearTimeout(guard);
  const out = r.stdout();
  if (code !== 0) process.stderr.write(`pgflip demo exited ${code}:\n${out}\n${r.stderr()}\n`);
  // the story: the safe migrations, the workload, the risky migration's steps and progress
  expect(out).toMatch(/000_example_schema\.sql: submitted as safe/);
  expect(out).toMatch(/ALTER TABLE users RENAME COLUMN nickname TO display_name;/);
  expect(out).toMatch(/copy \d+%/);
  expect(out).toMatch(/✓ flip \(\d+ ms\): all proxies on green \(epoch 1, pause \d+ ms: fence \d+ ms, final catch-up \d+ ms, pin \d+ ms\); blue fenced, reverse sync running/);
  expect(out).toMatch(/lag \d+\.\d\d s \/ \d+ bytes · writes acknowledged \d+, errors 0/);
  expect(out).toMatch(/green users columns: id, name, email, display_name$/m);
  // the summary
  expect(field(out, 'migration')).toMatch(/^completed — switched to green; the previous schema version is served from pgflip_compat_\w+ until `pgflip finalize [\w-]+`$/);
  // the old version wrote the renamed and dropped columns through the whole story; the new one its new names
  expect(out).toMatch(/the new version connects with pgflip\.version=latest and writes display_name/);
  expect(out).toMatch(/5\. both versions done: `pgflip finalize [\w-]+` dropped the previous schema version \(pgflip_compat_\w+\)/);
  const attempted = Number(field(out, 'writes attempted'));
  const [, ack, ackNew] = /^(\d+) \(new version: (\d+)\)$/.exec(field(out, 'acknowledged'))!;
  const acknowledged = Number(ack);
  expect(acknowledged).toBeGreaterThan(0);
  expect(Number(ackNew)).toBeGreaterThan(0);
  expect(attempted).toBe(acknowledged); // none failed, none left in flight
  expect(field(out, 'lost')).toBe('0');
  expect(field(out, 'client errors')).toBe('0');
  expect(field(out, 'pause')).toMatch(/^\d+ ms \(slowest acknowledged write \d+ ms\)$/);
  expect(out).toMatch(/^OK: no acknowledged write lost, no client error$/m);
  expect(code).toBe(0);
}, 160_000);

test('the demo refuses a data dir that already holds a pgflip setup (usage error)', async () => {
  // left by the run above
  const r = runCli(['demo', '--data-dir', path.join(dir, 'data')]);
  expect((await r.exited).code).toBe(2);
  expect(r.stderr()).toContain(`pgflip demo: --data-dir ${path.join(dir, 'data')} already holds a pgflip setup; the demo needs a new or empty directory`);
});

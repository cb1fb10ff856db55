/**
 * The flip-torture harness (test/torture) for longer: more clients, longer
 * programs, for TORTURE_SECONDS. Prints programs × steps × flips and every
 * mismatch with its seed (TORTURE_SEED=<seed> replays the programs and the
 * flip schedule).
 *
 * Knobs (env): TORTURE_SEED (random), TORTURE_CLIENTS (30), TORTURE_STEPS (60), TORTURE_SECONDS (300).
 */
import { startPair } from '../../test/harness/clusters';
import { PROXY_PASSWORD, PROXY_USER, startProxyFor } from '../../test/harness/proxy';
import { torture } from '../../test/torture/run';
import { prepareTortureSchema, targetOf } from '../../test/torture/schema';

async function main(): Promise<void> {
  const seed = Number(process.env.TORTURE_SEED ?? Math.floor(Math.random() * 1e6));
  const clients = Number(process.env.TORTURE_CLIENTS ?? 30);
  const steps = Number(process.env.TORTURE_STEPS ?? 60);
  const seconds = Number(process.env.TORTURE_SECONDS ?? 300);
  const pair = await startPair({ max_connections: 4 * clients + 50 });
  let px: Awaited<ReturnType<typeof startProxyFor>> | undefined;
  try {
    await prepareTortureSchema(pair.blue, pair.green);
    px = await startProxyFor(pair, { proxy: { pinnedPolicy: 'terminate' } });
    process.stderr.write(`torture: seed ${seed}, ${clients} clients, ${steps} steps per program, ${seconds} s …\n`);
    const report = await torture({
      proxy: px.proxy,
      store: px.proxy.store,
      proxied: { host: '127.0.0.1', port: px.proxy.port, user: PROXY_USER, password: PROXY_PASSWORD, database: 'app' },
      direct: targetOf(pair.blue, 'ref'),
    }, { seed, clients, steps, pins: true, minDurationMs: seconds * 1000, log: (l) => process.stderr.write(`  ${l}\n`) });
    const aborted = Object.values(report.flips.aborted).reduce((a, b) => a + b, 0);
    const ok = !report.mismatches.length && !report.unexpectedEnds.length && !report.flips.unexpectedAborts.length;
    process.stdout.write([
      '',
      `pgflip flip torture: seed ${seed}`,
      `programs: ${report.programs} (${clients} at a time, node-postgres / postgres.js / raw protocol), steps compared: ${report.steps}`,
      `flips: ${report.flips.committed} committed, ${aborted} aborted by an injected fault ${JSON.stringify(report.flips.aborted)}`,
      `pinned sessions ended by a flip (57P01): ${report.pinnedEnds}`,
      `result: ${ok ? 'every result equal to the direct run' : 'FAILED'}`,
      ...report.mismatches.map((m) => `  mismatch: seed ${m.seed} program ${m.program} (${m.client}) step ${m.step} ${m.sql}\n    direct:  ${m.direct}\n    proxied: ${m.proxied}`),
      ...report.unexpectedEnds.map((e) => `  unexpected end: ${e}`),
      ...report.flips.unexpectedAborts.map((e) => `  unexpected abort: ${e}`),
      ok ? '' : `replay: TORTURE_SEED=${report.mismatches[0]?.seed ?? seed} bench/torture.sh`,
      '',
    ].join('\n'));
    if (!ok) process.exitCode = 1;
  } finally {
    await px?.stop();
    await pair.stop();
  }
}

main().catch((e) => { process.stderr.write(`bench/torture: ${(e as Error).stack}\n`); process.exitCode = 1; });

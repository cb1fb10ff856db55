'use strict';
/**
 * CPU time per transaction of the relays, side by side (needs `npm run build` first):
 * pgflip as built, pgflip with PGFLIP_RELAY_READS=stream ('data' events instead of its own read
 * buffers), a bare Node.js socket pipe (bench/proxy/pipe.js), PgBouncer (session mode), and
 * optionally another pgflip build (BASELINE_DIST=/path/to/dist, e.g. a copy of dist/ made before a
 * change). pgbench -S runs against each in turn (a,b,c,… then reversed), ROUNDS times per mode and
 * client count. CPU time comes from /proc (user and system separately): on a machine shared with
 * other work it is much steadier than TPS.
 *
 * Usage: npm run build && node bench/proxy/cpu.js
 * Knobs (env): BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_SCALE (10), BENCH_MODES (prepared,simple),
 * BENCH_CLIENTS (8), BENCH_THREADS (2), BASELINE_DIST.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const { LocalCluster } = require('../../dist/pgcluster/local-cluster.js');
const { APP, libpqEnv, log, median, pgbench, startPgbouncer, startPgflip, startPipe } = require('./run.js');

const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const SCALE = Number(process.env.BENCH_SCALE || 10);
const MODES = (process.env.BENCH_MODES || 'prepared,simple').split(',');
const CLIENTS = (process.env.BENCH_CLIENTS || '8').split(',').map(Number);

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgflip-bench-cpu-'));
  fs.chmodSync(work, 0o755);
  const cluster = new LocalCluster({ dir: path.join(work, 'pg'), settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: 300 } });
  const stops = [];
  try {
    await cluster.start();
    stops.push(() => cluster.destroy());
    const c = new Client({ connectionString: cluster.url('postgres') });
    await c.connect();
    await c.query('CREATE DATABASE app');
    await c.end();
    const direct = { name: 'direct', port: cluster.port, user: 'postgres', password: 'postgres', database: APP.database, pid: 0 };
    const init = spawnSync('pgbench', ['-i', '-q', '-s', String(SCALE)], { env: libpqEnv(direct), encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);

    const targets = [];
    const add = async (start) => { const t = await start(); stops.unshift(() => t.stop()); targets.push(t); };
    await add(() => startPgflip(work, cluster.url('app')));
    await add(() => startPgflip(work, cluster.url('app'), { name: 'pgflip stream', env: { PGFLIP_RELAY_READS: 'stream' } }));
    if (process.env.BASELINE_DIST) await add(() => startPgflip(work, cluster.url('app'), { name: 'baseline', dist: path.resolve(process.env.BASELINE_DIST) }));
    await add(() => startPipe(work, cluster.port));
    await add(() => startPgbouncer(work, cluster.port));
    for (const t of targets) pgbench(t, 'prepared', 8, 2);

    const lines = [`pgbench -S, scale ${SCALE}, ${SECONDS} s x ${ROUNDS} runs per cell, interleaved; ${os.cpus().length} CPUs; load average ${os.loadavg()[0].toFixed(1)} at start`,
      'CPU µs per transaction of the relay process: median of runs (user + system), then every run', ''];
    for (const mode of MODES) {
      for (const clients of CLIENTS) {
        const runs = new Map(targets.map((t) => [t.name, []]));
        for (let round = 0; round < ROUNDS; round++) {
          for (const t of round % 2 ? [...targets].reverse() : targets) {
            const r = pgbench(t, mode, clients, SECONDS);
            runs.get(t.name).push({ total: (r.cpu * 1e6) / r.tx, user: (r.user * 1e6) / r.tx, sys: (r.sys * 1e6) / r.tx, tps: r.tps });
            log(`  -M ${mode} -c ${clients} ${t.name}: ${((r.cpu * 1e6) / r.tx).toFixed(1)} µs/tx, ${r.tps.toFixed(0)} TPS`);
          }
        }
        for (const t of targets) {
          const rs = runs.get(t.name);
          const m = (k) => median(rs.map((x) => x[k]));
          lines.push(`${`-M ${mode} -c ${clients}`.padEnd(18)} ${t.name.padEnd(14)} ${m('total').toFixed(1).padStart(5)} µs/tx (user ${m('user').toFixed(1)} + sys ${m('sys').toFixed(1)})` +
            `  TPS ${m('tps').toFixed(0).padStart(6)}   runs: ${rs.map((x) => x.total.toFixed(1)).join(' ')}`);
        }
        lines.push('');
      }
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const stop of stops) await stop().catch((e) => log(`cleanup: ${e.message}`));
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  log(`bench/proxy/cpu: ${err.message}`);
  process.exit(1);
});

'use strict';
/**
 * proxy.workers 1 vs 2 (bench/proxy-workers.sh; needs `npm run build` and redis-server): one
 * PostgreSQL cluster, one Redis, pgflip with 1 and with 2 workers (both in a Redis fleet, so the
 * only difference is the second event loop), pgbench -S interleaved (1, 2, 1, 2 …) per query mode
 * and client count. Printed per row: TPS (median), p99 latency, the proxy's CPU time per
 * transaction (primary and workers, from /proc), and the ratio 2 workers / 1 worker. On a machine
 * whose cores PostgreSQL and pgbench also need, the gain is bounded: the figures say by how much.
 *
 * Knobs (env): BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_SCALE (10), BENCH_MODES (simple,prepared),
 * BENCH_CLIENTS (32), BENCH_THREADS (2).
 */
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const { LocalCluster, freePort } = require('../../dist/pgcluster/local-cluster.js');
const { latencies, libpqEnv, log, median, once, percentile, pgbench, sleep, startPgflip } = require('./run.js');

const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const SCALE = Number(process.env.BENCH_SCALE || 10);
const MODES = (process.env.BENCH_MODES || 'simple,prepared').split(',');
const CLIENTS = (process.env.BENCH_CLIENTS || '32').split(',').map(Number);

async function startRedis(work) {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--dir', work], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const r = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (r.stdout.trim() === 'PONG') return { url: `redis://127.0.0.1:${port}`, stop: async () => { child.kill('SIGTERM'); await once(child); } };
    await sleep(100);
  }
  throw new Error('redis-server did not start');
}

const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : '-');

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgflip-bench-workers-'));
  fs.chmodSync(work, 0o755);
  const cluster = new LocalCluster({ dir: path.join(work, 'pg'), settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: 300, shared_buffers: '256MB' } });
  const stops = [];
  try {
    await cluster.start();
    stops.push(() => cluster.destroy());
    const c = new Client({ connectionString: cluster.url('postgres') });
    await c.connect();
    await c.query('CREATE DATABASE app');
    await c.end();
    const direct = { name: 'direct', port: cluster.port, user: 'postgres', password: 'postgres', database: 'app', pid: 0 };
    const init = spawnSync('pgbench', ['-i', '-q', '-s', String(SCALE)], { env: libpqEnv(direct), encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
    const redis = await startRedis(work);
    stops.unshift(() => redis.stop());
    const targets = [];
    for (const n of [1, 2]) {
      const t = await startPgflip(work, cluster.url('app'), { name: `pgflip-${n}w`, env: { REDIS_URL: redis.url, PGFLIP_REDIS_PREFIX: `bench${n}:`, PGFLIP_PROXY_WORKERS: String(n) } });
      stops.unshift(() => t.stop());
      targets.push(t);
    }
    for (const t of targets) pgbench(t, 'prepared', 8, 2);
    const logDir = path.join(work, 'logs');
    fs.mkdirSync(logDir);
    const rows = [];
    for (const mode of MODES) {
      for (const clients of CLIENTS) {
        const acc = targets.map(() => ({ tps: [], tx: 0, cpu: 0, lat: [] }));
        for (let round = 1; round <= ROUNDS; round++) {
          targets.forEach((t, i) => {
            const prefix = path.join(logDir, `${t.name}-${mode}-${clients}-${round}`);
            const r = pgbench(t, mode, clients, SECONDS, prefix);
            acc[i].tps.push(r.tps); acc[i].tx += r.tx; acc[i].cpu += r.cpu; for (const v of latencies(prefix)) acc[i].lat.push(v);
            log(`  -M ${mode} -c ${clients} round ${round} ${t.name}: ${r.tps.toFixed(0)} TPS`);
          });
        }
        rows.push({ mode, clients, r: acc.map((a) => ({ tps: median(a.tps), p99: percentile(a.lat, 99), cpu: (a.cpu * 1e6) / a.tx })) });
      }
    }
    const lines = [`pgbench -S, scale ${SCALE}, ${SECONDS} s x ${ROUNDS} interleaved runs per cell; ${os.cpus().length} CPUs; both proxies in a Redis fleet`, '',
      '| mode | clients | 1 worker TPS | p99 ms | CPU µs/tx | 2 workers TPS | p99 ms | CPU µs/tx | TPS 2w/1w | CPU/tx 2w/1w |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
    for (const { mode, clients, r: [a, b] } of rows) {
      lines.push(`| ${mode} | ${clients} | ${fmt(a.tps)} | ${fmt(a.p99 / 1000, 2)} | ${fmt(a.cpu, 1)} | ${fmt(b.tps)} | ${fmt(b.p99 / 1000, 2)} | ${fmt(b.cpu, 1)} | ${fmt(b.tps / a.tps, 2)}x | ${fmt(b.cpu / a.cpu, 2)}x |`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const stop of stops) await stop().catch((e) => log(`cleanup: ${e.message}`));
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => { log(`bench/proxy/workers: ${err.message}`); process.exit(1); });

'use strict';
/**
 * The flip benchmark behind bench/flip.sh (needs `npm run build` first).
 *
 * Blue and green PostgreSQL clusters, each initialised with `pgbench -i`; `pgflip proxy` in
 * front (SCRAM for clients, in-process state store); pgbench -M prepared with the default
 * TPC-B-like script and progress every second writes through it while this script asks the
 * proxy's admin port (POST /switch) for FLIPS flips, one every FLIP_INTERVAL_MS.
 *
 * Knobs (env): FLIPS (10), FLIP_INTERVAL_MS (2500), BENCH_CLIENTS (32), BENCH_THREADS (2),
 * BENCH_SCALE (10), FLIP_DEADLINE_MS (5000).
 *
 * `--sessions N[,N…]` sweeps the session count instead: per N, 8 busy writers (pgbench) plus
 * N − 8 idle node-postgres sessions (each with one SET and one named prepared statement),
 * SWEEP_FLIPS (3) manual flips with a 10 s deadline (FLIP_DEADLINE_MS), and one table row:
 * pause (max over the fleet) and flip duration over those flips, and their outcomes.
 */
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const { LocalCluster } = require('../../dist/pgcluster/local-cluster.js');

const ROOT = path.resolve(__dirname, '..', '..');
const FLIPS = Number(process.env.FLIPS || 10);
const INTERVAL = Number(process.env.FLIP_INTERVAL_MS || 2500);
const CLIENTS = Number(process.env.BENCH_CLIENTS || 32);
const THREADS = Number(process.env.BENCH_THREADS || 2);
const SCALE = Number(process.env.BENCH_SCALE || 10);
const DEADLINE = Number(process.env.FLIP_DEADLINE_MS || (process.argv.includes('--sessions') ? 10000 : 5000));
const WARMUP_S = 4;
const TOKEN = 'bench-flip-token-0123456789';
const APP = { user: 'app', password: 'apppass' };

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i];
};

async function startSide(work, name, maxConnections = 200) {
  const cluster = new LocalCluster({
    dir: path.join(work, name),
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: maxConnections, shared_buffers: '128MB' },
  });
  await cluster.start();
  const c = new Client({ connectionString: cluster.url('postgres') });
  await c.connect();
  await c.query('CREATE DATABASE app');
  await c.end();
  const env = { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(cluster.port), PGUSER: 'postgres', PGPASSWORD: 'postgres', PGDATABASE: 'app' };
  const init = spawnSync('pgbench', ['-i', '-q', '-s', String(SCALE)], { env, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`pgbench -i on ${name} failed: ${init.stderr}`);
  return cluster;
}

async function startPgflip(work, blue, green) {
  const cfgFile = path.join(work, 'pgflip.json');
  fs.writeFileSync(cfgFile, JSON.stringify({
    blue: { url: blue.url('app') },
    green: { url: green.url('app') },
    proxy: { listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, users: { [APP.user]: { password: APP.password } } },
  }));
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'proxy', '--config', cfgFile], {
    env: { ...process.env, REDIS_URL: '', PGFLIP_API_TOKEN: TOKEN, PGFLIP_LOG_LEVEL: process.env.PGFLIP_LOG_LEVEL || 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const line = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (process.env.PGFLIP_BENCH_PROXY_LOG) fs.appendFileSync(process.env.PGFLIP_BENCH_PROXY_LOG, d);
      if (/pgflip proxy \S+ joined the fleet/.test(out)) resolve(out);
    });
    child.once('exit', (code) => reject(new Error(`pgflip proxy exited ${code}: ${out}`)));
  });
  const m = /pgflip proxy listening on 127\.0\.0\.1:(\d+) \(admin (http:\/\/[^)]+)\)/.exec(line);
  return { port: Number(m[1]), admin: m[2], stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGTERM'); }) };
}

async function flip(admin, target) {
  const res = await fetch(`${admin}/switch`, {
    method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ target, deadlineMs: DEADLINE }),
  });
  return res.json();
}

const SWEEP_WRITERS = 8;
const SWEEP_FLIPS = Number(process.env.SWEEP_FLIPS || 3);

function sweepArg() {
  const i = process.argv.indexOf('--sessions');
  if (i < 0) return null;
  const list = (process.argv[i + 1] || '').split(',').map(Number);
  if (!list.length || list.some((n) => !Number.isInteger(n) || n < SWEEP_WRITERS)) {
    throw new Error(`--sessions takes a comma-separated list of session counts, each at least ${SWEEP_WRITERS} (the busy writers)`);
  }
  return list;
}

/** N idle sessions through the proxy, each with one SET and one named prepared statement. */
async function idleSessions(port, n) {
  const clients = [];
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, async (_, j) => {
      const c = new Client({ host: '127.0.0.1', port, user: APP.user, password: APP.password, database: 'app', application_name: `idle-${i + j}` });
      c.on('error', () => undefined);
      await c.connect();
      await c.query("SET statement_timeout = '54321ms'");
      await c.query({ name: 'idle_q', text: 'SELECT $1::int AS n', values: [1] });
      clients.push(c);
    }));
  }
  return clients;
}

const range = (xs) => {
  const v = xs.filter(Number.isFinite);
  if (!v.length) return '–';
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  return lo === hi ? fmtNum(lo) : `${fmtNum(lo)}–${fmtNum(hi)}`;
};
const fmtNum = (x) => Math.round(x).toLocaleString('en-US');

async function sweep(counts) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgflip-bench-flip-'));
  fs.chmodSync(work, 0o755);
  const stops = [];
  const rows = [];
  try {
    const maxConn = Math.max(...counts) + 150;
    log(`starting blue and green (max_connections ${maxConn}), pgbench -i -s ${SCALE} on each …`);
    const [blue, green] = await Promise.all([startSide(work, 'blue', maxConn), startSide(work, 'green', maxConn)]);
    stops.push(() => blue.destroy(), () => green.destroy());
    const px = await startPgflip(work, blue, green);
    stops.unshift(() => px.stop());
    let side = 'blue';
    for (const total of counts) {
      const idle = await idleSessions(px.port, total - SWEEP_WRITERS);
      // pgbench runs until it is stopped after this row's flips
      const env = { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(px.port), PGUSER: APP.user, PGPASSWORD: APP.password, PGDATABASE: 'app', PGSSLMODE: 'disable' };
      const bench = spawn('pgbench', ['-n', '-M', 'prepared', '-c', String(SWEEP_WRITERS), '-j', '2', '-T', '3600'], { env });
      const benchExit = new Promise((r) => bench.once('exit', r));
      let bout = '';
      bench.stdout.on('data', (d) => { bout += d; });
      bench.stderr.on('data', (d) => { bout += d; });
      await sleep(2000);
      const flips = [];
      for (let i = 0; i < SWEEP_FLIPS; i++) {
        const target = side === 'blue' ? 'green' : 'blue';
        const t0 = Date.now();
        const out = await flip(px.admin, target);
        const pauses = Object.values(out.pauseMs || {});
        const f = { ok: out.ok, pauseMs: pauses.length ? Math.max(...pauses) : NaN, durationMs: out.durationMs ?? Date.now() - t0, carried: out.sessionsCarried, terminated: out.sessionsTerminated, unacknowledged: out.unacknowledged, reason: out.reason };
        flips.push(f);
        log(`  ${total} sessions, flip ${i + 1} → ${target}: ${out.ok ? `committed, pause ${f.pauseMs} ms, ${f.durationMs} ms, ${f.carried} carried${f.unacknowledged ? `, unacknowledged: ${f.unacknowledged.join(',')}` : ''}` : `ABORTED after ${f.durationMs} ms: ${out.reason}`}`);
        if (out.ok) side = target;
        await sleep(1500);
      }
      bench.kill('SIGINT');
      await benchExit;
      await Promise.all(idle.map((c) => c.end().catch(() => undefined)));
      const outcome = (fs) => {
        const ok = fs.filter((f) => f.ok);
        const parts = [];
        if (ok.length) parts.push(`${ok.length} committed${ok.some((f) => !Number.isFinite(f.pauseMs)) ? ` (${ok.filter((f) => !Number.isFinite(f.pauseMs)).length} with no pause and ${ok.filter((f) => !Number.isFinite(f.pauseMs)).map((f) => f.carried).join('/')} carried: unacknowledged)` : ''}`);
        if (ok.length < fs.length) parts.push(`${fs.length - ok.length} aborted`);
        return parts.join(', ');
      };
      rows.push({ total, pause: range(flips.filter((f) => f.ok).map((f) => f.pauseMs)), duration: range(flips.map((f) => f.durationMs)), outcome: outcome(flips), carried: range(flips.filter((f) => f.ok).map((f) => f.carried)), flips });
      await sleep(1000);
    }
  } finally {
    for (const s of stops) await s().catch(() => undefined);
    fs.rmSync(work, { recursive: true, force: true });
  }
  const lines = [
    '',
    `pgflip flip sweep: one proxy, ${SWEEP_WRITERS} busy writers (pgbench -M prepared) + idle sessions (one SET, one named statement each), manual switch, ${DEADLINE} ms deadline, ${SWEEP_FLIPS} flips per row, ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    '',
    '| sessions | pause (max over the fleet) | flip duration | sessions carried | outcome |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.total} | ${r.pause} ms | ${r.duration} ms | ${r.carried} | ${r.outcome} |`),
  ];
  const allOk = rows.flatMap((r) => r.flips);
  const pauses = allOk.filter((f) => f.ok).map((f) => f.pauseMs).filter(Number.isFinite);
  lines.push('', `all flips: pause p50 / p99 ${fmtNum(quantile(pauses, 0.5))} / ${fmtNum(quantile(pauses, 0.99))} ms over ${pauses.length} committed flips of ${allOk.length}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main() {
  const counts = sweepArg();
  if (counts) return sweep(counts);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgflip-bench-flip-'));
  fs.chmodSync(work, 0o755);
  const stops = [];
  try {
    log(`starting blue and green, pgbench -i -s ${SCALE} on each …`);
    const [blue, green] = await Promise.all([startSide(work, 'blue'), startSide(work, 'green')]);
    stops.push(() => blue.destroy(), () => green.destroy());
    const px = await startPgflip(work, blue, green);
    stops.unshift(() => px.stop());

    const seconds = Math.ceil(WARMUP_S + (FLIPS * INTERVAL) / 1000 + 3);
    log(`pgbench -M prepared -c ${CLIENTS} -j ${THREADS} -T ${seconds} through pgflip, ${FLIPS} flips every ${INTERVAL} ms …`);
    const env = { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(px.port), PGUSER: APP.user, PGPASSWORD: APP.password, PGDATABASE: 'app', PGSSLMODE: 'disable' };
    const bench = spawn('pgbench', ['-n', '-M', 'prepared', '-c', String(CLIENTS), '-j', String(THREADS), '-T', String(seconds), '-P', '1'], { env });
    let bout = '';
    bench.stdout.on('data', (d) => { bout += d; });
    bench.stderr.on('data', (d) => { bout += d; });
    const benchStart = Date.now();
    const benchDone = new Promise((r) => bench.once('exit', (code) => r(code)));

    await sleep(WARMUP_S * 1000);
    const flips = [];
    let side = 'blue';
    for (let i = 0; i < FLIPS; i++) {
      const target = side === 'blue' ? 'green' : 'blue';
      const at = (Date.now() - benchStart) / 1000;
      const out = await flip(px.admin, target);
      const pauseMs = out.ok ? Math.max(...Object.values(out.pauseMs)) : NaN;
      flips.push({ at, target, ok: out.ok, pauseMs, carried: out.sessionsCarried, reason: out.reason });
      log(`  flip ${i + 1} → ${target}: ${out.ok ? `ok, pause ${pauseMs} ms, ${out.sessionsCarried} sessions carried` : `FAILED: ${out.reason}`}`);
      if (out.ok) side = target;
      await sleep(Math.max(0, INTERVAL - (Date.now() - benchStart - at * 1000)));
    }
    const code = await benchDone;

    // per-second TPS from "progress: 12.0 s, 3456.7 tps, …"
    const progress = [...bout.matchAll(/progress: ([\d.]+) s, ([\d.]+) tps/g)].map((m) => ({ t: Number(m[1]), tps: Number(m[2]) }));
    const median = quantile(progress.map((p) => p.tps), 0.5);
    const dips = flips.map((f) => {
      // the progress lines covering (at-1, at+2]: the second of the flip and the one after it
      const around = progress.filter((p) => p.t > f.at && p.t <= f.at + 2);
      return around.length ? Math.min(...around.map((p) => p.tps)) / median : NaN;
    });
    const failed = Number(/number of failed transactions: (\d+)/.exec(bout)?.[1] ?? NaN);
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(bout)?.[1] ?? NaN);
    const abortedClients = (bout.match(/client \d+ aborted/g) || []).length;
    const pauses = flips.filter((f) => f.ok).map((f) => f.pauseMs);
    const p99 = quantile(pauses, 0.99);
    const fmt = (x) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
    const lines = [
      '',
      `pgflip flip benchmark: pgbench -M prepared (TPC-B-like) -c ${CLIENTS} -j ${THREADS}, scale ${SCALE}, ${FLIPS} flips, ${os.cpus().length} cores`,
      '',
      `flips ok:                 ${pauses.length} / ${FLIPS}`,
      `pause p50 / p99 / max:    ${fmt(quantile(pauses, 0.5))} / ${fmt(p99)} / ${fmt(Math.max(...pauses))} ms  (all: ${pauses.join(', ')})`,
      `sessions carried per flip: ${[...new Set(flips.map((f) => f.carried))].join(', ')}`,
      `client errors:            ${failed} failed transactions, ${abortedClients} aborted clients (pgbench exit ${code}; ${processed} transactions processed)`,
      `TPS median:               ${fmt(median)}`,
      `TPS dip (lowest second around each flip / median): min ${(Math.min(...dips) * 100).toFixed(0)}%, mean ${(dips.reduce((a, b) => a + b, 0) / dips.length * 100).toFixed(0)}%  (${dips.map((d) => `${(d * 100).toFixed(0)}%`).join(' ')})`,
      '',
      `targets: 0 client errors: ${failed === 0 && abortedClients === 0 && code === 0 ? 'met' : 'NOT met'}; p99 pause <= 100 ms: ${p99 <= 100 ? 'met' : 'NOT met'}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (code !== 0) log(bout.split('\n').filter((l) => !l.startsWith('progress')).join('\n'));
  } finally {
    for (const s of stops) await s().catch(() => undefined);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => { log(`bench/flip: ${e.stack || e.message}`); process.exitCode = 1; });

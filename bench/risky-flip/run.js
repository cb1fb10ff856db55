'use strict';
/**
 * The risky flip's pause beside the plain switch's, in one run (bench/risky-flip.sh; needs
 * `npm run build`). `pgflip up` (embedded pair, proxy, controller) with pgbench -M prepared,
 * BENCH_CLIENTS (32) clients of the TPC-B-like script writing through the proxy; then, in turns,
 * RISKY_RUNS (5) risky migrations (a column of pgbench_history renamed back and forth: the whole
 * risky flow, copy, catch-up, verify and the flip with its fence, final catch-up, final verify and
 * reverse start) and SWITCHES (5) plain switches (POST /switch). Prints the pause p50/p99/max of
 * each, the risky pause's breakdown from the flip step's detail, their ratio, and pgbench's errors.
 * The plain switches go between the two sides as the risky runs left them (pgbench does not read
 * the renamed column, and a bench does not care that the side switched to is behind).
 * Knobs (env): RISKY_RUNS, SWITCHES, BENCH_CLIENTS, BENCH_THREADS, BENCH_SCALE (10).
 */
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist/cli/main.js');
const RISKY = Number(process.env.RISKY_RUNS || 5);
const SWITCHES = Number(process.env.SWITCHES || 5);
const CLIENTS = Number(process.env.BENCH_CLIENTS || 32);
const THREADS = Number(process.env.BENCH_THREADS || 2);
const SCALE = Number(process.env.BENCH_SCALE || 10);

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] : NaN;
};
const stats = (xs) => `p50 ${quantile(xs, 0.5)} ms, p99 ${quantile(xs, 0.99)} ms, max ${Math.max(...xs)} ms (n=${xs.length})`;

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgflip-bench-risky-'));
  fs.chmodSync(work, 0o755);
  const env = { ...process.env, PGFLIP_LOG_LEVEL: 'warn' };
  delete env.NODE_ENV;
  const up = spawn(process.execPath, [CLI, 'up', '--json', '--data-dir', path.join(work, 'data'), '--proxy-port', '0', '--api-port', '0', '--watch-seconds', '1'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  up.stdout.on('data', (d) => { out += d; });
  for (let i = 0; !out.includes('\n'); i++) { if (i > 1200) throw new Error('pgflip up not ready'); await sleep(100); }
  const info = JSON.parse(out.split('\n')[0]);
  const app = new URL(info.appUrl);
  const pgenv = { ...process.env, PGHOST: app.hostname, PGPORT: app.port, PGUSER: app.username, PGPASSWORD: decodeURIComponent(app.password), PGDATABASE: app.pathname.slice(1) };
  let bench;
  try {
    const init = spawnSync('pgbench', ['-i', '-q', '-s', String(SCALE)], { env: pgenv, encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
    // pgbench_history has no key: the sync engine needs a replica identity to stream it
    const ri = spawnSync('psql', ['-qc', 'ALTER TABLE pgbench_history REPLICA IDENTITY FULL'], { env: pgenv, encoding: 'utf8' });
    if (ri.status !== 0) throw new Error(`replica identity: ${ri.stderr}`);
    const api = async (method, p, body) => {
      const res = await fetch(info.controllerUrl + p, { method, headers: { authorization: `Bearer ${info.apiToken}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
      return JSON.parse(text);
    };
    bench = spawn('pgbench', ['-M', 'prepared', '-c', String(CLIENTS), '-j', String(THREADS), '-T', '100000', '-P', '1', '--failures-detailed'], { env: pgenv, stdio: ['ignore', 'pipe', 'pipe'] });
    let benchOut = '';
    bench.stdout.on('data', (d) => { benchOut += d; });
    bench.stderr.on('data', (d) => { benchOut += d; });
    await sleep(4000);
    const risky = [];
    const plain = [];
    const phases = {};
    let name;
    for (let i = 0; i < Math.max(RISKY, SWITCHES); i++) {
      if (i < RISKY) {
        // the active side's column now (a plain switch in between may have gone back to the other schema)
        const q = spawnSync('psql', ['-Atc', "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'pgbench_history' AND column_name LIKE 'filler%'"], { env: pgenv, encoding: 'utf8' });
        name = q.stdout.trim();
        const next = name === 'filler' ? 'filler_b' : 'filler';
        const sql = `ALTER TABLE pgbench_history RENAME COLUMN ${name} TO ${next};\n`;
        const { id } = await api('POST', '/migrations', { name: `bench_${i}_${next}.sql`, sql, type: 'risky' });
        let rec;
        for (;;) { rec = await api('GET', `/migrations/${id}`); if (['completed', 'failed', 'aborted', 'rolled_back'].includes(rec.state)) break; await sleep(200); }
        if (rec.state !== 'completed') throw new Error(`risky run ${i}: ${rec.state}: ${rec.outcome}`);
        const detail = rec.steps.find((s) => s.name === 'flip').detail;
        const m = /pause (\d+) ms: (.*?)\)/.exec(detail);
        if (!m) throw new Error(`no pause in the flip step: ${detail}`);
        risky.push(Number(m[1]));
        for (const part of m[2].split(', ')) {
          const [, k, v] = /^(.*) (\d+) ms$/.exec(part) ?? [];
          if (k) (phases[k] ??= []).push(Number(v));
        }
        log(`risky ${i + 1}/${RISKY}: pause ${m[1]} ms (${m[2]})`);
      }
      if (i < SWITCHES) {
        const st = await api('GET', '/status');
        // force: after a risky run the other side is behind by design (see the note above)
        const r = await api('POST', '/switch', { target: st.active === 'blue' ? 'green' : 'blue', force: true });
        plain.push(Math.round(r.pauseMs));
        log(`switch ${i + 1}/${SWITCHES}: pause ${Math.round(r.pauseMs)} ms`);
      }
      await sleep(1000);
    }
    bench.kill('SIGINT');
    await new Promise((r) => bench.once('close', r));
    const failed = /number of failed transactions: (\d+)/.exec(benchOut)?.[1] ?? '?';
    const aborted = /aborted|error/i.test(benchOut.split('\n').filter((l) => !/^progress:/.test(l)).join('\n')) ? 'see pgbench output' : 'none';
    process.stdout.write([
      `risky flip pause:  ${stats(risky)}`,
      `  breakdown (mean): ${Object.entries(phases).map(([k, v]) => `${k} ${Math.round(v.reduce((a, b) => a + b, 0) / v.length)} ms`).join(', ')}`,
      `plain switch pause: ${stats(plain)}`,
      `ratio risky/plain: p50 ${(quantile(risky, 0.5) / quantile(plain, 0.5)).toFixed(2)}×, p99 ${(quantile(risky, 0.99) / quantile(plain, 0.99)).toFixed(2)}×`,
      `pgbench (${CLIENTS} clients, scale ${SCALE}): failed transactions ${failed}; client errors: ${aborted}`,
      '',
    ].join('\n'));
  } finally {
    bench?.kill('SIGKILL');
    up.kill('SIGTERM');
    await new Promise((r) => up.once('close', r));
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => { log(`bench/risky-flip: ${err.stack ?? err}`); process.exitCode = 1; });

'use strict';
/**
 * The proxy benchmark behind bench/proxy.sh (needs `npm run build` first).
 *
 * One PostgreSQL cluster; in front of it pgflip (`pgflip proxy`, SCRAM for clients), PgBouncer
 * (session mode, SCRAM for clients) and a bare Node.js socket pipe (bench/proxy/pipe.js: the
 * floor any Node.js relay starts from), all logging in to PostgreSQL as the same superuser.
 * pgbench -S runs against direct, pgflip, PgBouncer and the pipe in turn (a,b,c,d,a,b,c,d …) for
 * each query mode and client count. Printed per row: TPS, p99 latency (from pgbench's sampled
 * per-transaction log), the proxies' CPU time per transaction (from /proc), and the ratios.
 * Then the proxies' RSS per idle client, with IDLE_CLIENTS raw authenticated connections open.
 *
 * Knobs (env): BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_SCALE (10), BENCH_MODES (simple,prepared),
 * BENCH_CLIENTS (8,32), BENCH_THREADS (2), IDLE_CLIENTS (1000).
 *
 * BENCH_POOL_MODE=transaction (bench/pooling.sh) runs pgflip and PgBouncer in transaction mode
 * with BENCH_POOL_SIZE (20, both proxies' default) server connections, PgBouncer with
 * max_prepared_statements = 200 where its version has it (1.21+); defaults become -M
 * simple,extended,prepared, 8/32/100 clients and 10,000 idle clients, and the idle figures
 * include the PostgreSQL backends each proxy holds for them. A pgbench run that fails through
 * a proxy (PgBouncer before 1.21 with -M prepared) is reported as such in its cell.
 */
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('pg');
const { LocalCluster, freePort } = require('../../dist/pgcluster/local-cluster.js');
const { openIdleClients } = require('./idle-clients.js');

const ROOT = path.resolve(__dirname, '..', '..');
const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const SCALE = Number(process.env.BENCH_SCALE || 10);
const POOLED = process.env.BENCH_POOL_MODE === 'transaction';
const POOL_SIZE = Number(process.env.BENCH_POOL_SIZE || 20);
const MODES = (process.env.BENCH_MODES || (POOLED ? 'simple,extended,prepared' : 'simple,prepared')).split(',');
const CLIENTS = (process.env.BENCH_CLIENTS || (POOLED ? '8,32,100' : '8,32')).split(',').map(Number);
const THREADS = Number(process.env.BENCH_THREADS || 2);
const IDLE = Number(process.env.IDLE_CLIENTS || (POOLED ? 10000 : 1000));
/** PgBouncer 1.21 added max_prepared_statements (protocol-level statements in transaction mode) */
const BOUNCER_VERSION = (() => { try { return /PgBouncer (\d+)\.(\d+)/.exec(execFileSync('pgbouncer', ['--version']).toString()); } catch { return null; } })();
const BOUNCER_PREPARES = !!BOUNCER_VERSION && (Number(BOUNCER_VERSION[1]) > 1 || Number(BOUNCER_VERSION[2]) >= 21);
const APP = { user: 'app', password: 'apppass', database: 'app' };
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const isRoot = process.getuid && process.getuid() === 0;

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- /proc: CPU ticks and RSS of a process and its descendants (workers count too) ----

function procStat(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' '); // [0] = state (field 3)
}

function processTree(root) {
  const children = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(procStat(d)[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch { /* exited meanwhile */ }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]) || []));
  return out;
}

/** user and system CPU seconds of a process tree (fields 14 and 15 of /proc/PID/stat) */
function cpuTimes(root) {
  let user = 0;
  let sys = 0;
  for (const pid of processTree(root)) {
    try { const f = procStat(pid); user += Number(f[11]); sys += Number(f[12]); } catch { /* gone */ }
  }
  return { user: user / CLK_TCK, sys: sys / CLK_TCK };
}

function cpuSeconds(root) {
  const t = cpuTimes(root);
  return t.user + t.sys;
}

function rssKiB(root) {
  let kib = 0;
  for (const pid of processTree(root)) {
    try { kib += Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]); } catch { /* gone */ }
  }
  return kib;
}

// ---- the three targets ----

function libpqEnv(t) {
  return { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(t.port), PGUSER: t.user, PGPASSWORD: t.password, PGDATABASE: t.database, PGSSLMODE: 'disable' };
}

async function waitReady(t, what, logFile) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const c = new Client({ host: '127.0.0.1', port: t.port, user: t.user, password: t.password, database: t.database });
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      return;
    } catch (err) {
      await c.end().catch(() => undefined);
      if (Date.now() > deadline) throw new Error(`${what} not ready on port ${t.port}: ${err.message}\n${tail(logFile)}`);
      await sleep(200);
    }
  }
}

function tail(file, lines = 20) {
  try { return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n'); } catch { return ''; }
}

/** `pgflip proxy` from ROOT/dist, or from another build (`dist`) with extra environment (`env`) */
async function startPgflip(work, backendUrl, { name = 'pgflip', dist = path.join(ROOT, 'dist'), env = {} } = {}) {
  const port = await freePort();
  const admin = await freePort();
  const cfg = path.join(work, `${name}.yaml`);
  const pooling = POOLED ? `  poolMode: transaction\n  poolSize: ${POOL_SIZE}\n  maxPreparedStatements: 200\n` : '';
  fs.writeFileSync(cfg, `proxy:\n  admin: { host: 127.0.0.1, port: ${admin} }\n  maxClientConnections: ${IDLE + 200}\n${pooling}`);
  const logFile = path.join(work, `${name}.log`);
  const out = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [path.join(dist, 'cli/main.js'), 'proxy', '--config', cfg,
    '--listen', `127.0.0.1:${port}`, '--blue', backendUrl, '--green', backendUrl, '--auth', 'scram'], {
    // per-connection logging off, as for PgBouncer (log_connections = 0)
    env: { ...process.env, DB_USER: APP.user, DB_PASSWORD: APP.password, PGFLIP_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', out, out],
  });
  const t = { name, port, ...APP, pid: child.pid, logFile, stop: async () => { child.kill('SIGTERM'); await once(child); } };
  const exited = once(child).then(() => { throw new Error(`pgflip proxy exited (code ${child.exitCode}):\n${tail(logFile)}`); });
  await Promise.race([waitReady(t, 'pgflip proxy', logFile), exited]);
  exited.catch(() => undefined);
  return t;
}

function once(child) {
  return new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
}

/** bench/proxy/pipe.js: one backend per client, 'data' events, backpressure, nothing else */
async function startPipe(work, pgPort) {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(__dirname, 'pipe.js'), String(port), String(pgPort)], { stdio: 'ignore' });
  // the pipe does no authentication of its own: clients log in to PostgreSQL through it
  const t = { name: 'node pipe', port, user: 'postgres', password: 'postgres', database: APP.database, pid: child.pid, stop: async () => { child.kill('SIGTERM'); await once(child); } };
  await waitReady(t, 'node pipe', path.join(work, 'none'));
  return t;
}

async function startPgbouncer(work, pgPort) {
  const dir = path.join(work, 'pgbouncer');
  fs.mkdirSync(dir, { mode: 0o755 });
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'userlist.txt'), `"${APP.user}" "${APP.password}"\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'pgbouncer.ini'), `[databases]
${APP.database} = host=127.0.0.1 port=${pgPort} dbname=app user=postgres password=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${dir}/userlist.txt
pool_mode = ${POOLED ? 'transaction' : 'session'}
max_client_conn = ${IDLE + 200}
default_pool_size = ${POOLED ? POOL_SIZE : IDLE + 100}
${POOLED && BOUNCER_PREPARES ? 'max_prepared_statements = 200\n' : ''}logfile = ${dir}/pgbouncer.log
pidfile = ${dir}/pgbouncer.pid
log_connections = 0
log_disconnections = 0
`);
  // PgBouncer refuses to run as root; runuser's PAM session resets the open-files limit, which
  // 1,000 idle clients (plus their server connections) exceed, so raise it again.
  if (isRoot) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  const cmd = `ulimit -n "$(ulimit -Hn)" && exec pgbouncer -d '${path.join(dir, 'pgbouncer.ini')}'`;
  const r = isRoot ? spawnSync('runuser', ['-u', 'postgres', '--', 'sh', '-c', cmd], { encoding: 'utf8' }) : spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pgbouncer did not start: ${r.stderr}${tail(path.join(dir, 'pgbouncer.log'))}`);
  const t = { name: 'pgbouncer', port, ...APP, pid: 0, logFile: path.join(dir, 'pgbouncer.log') };
  await waitReady(t, 'pgbouncer', t.logFile);
  t.pid = Number(fs.readFileSync(path.join(dir, 'pgbouncer.pid'), 'utf8').trim());
  t.stop = async () => {
    try { process.kill(t.pid, 'SIGTERM'); } catch { return; }
    for (let i = 0; i < 50; i++) { try { process.kill(t.pid, 0); } catch { return; } await sleep(100); }
  };
  return t;
}

// ---- pgbench ----

function pgbench(t, mode, clients, seconds, logPrefix) {
  const args = ['-n', '-S', '-M', mode, '-c', String(clients), '-j', String(Math.min(THREADS, clients)), '-T', String(seconds)];
  if (logPrefix) args.push('-l', '--sampling-rate', '0.1', '--log-prefix', logPrefix);
  const cpu0 = t.pid ? cpuTimes(t.pid) : { user: 0, sys: 0 };
  const r = spawnSync('pgbench', args, { env: libpqEnv(t), encoding: 'utf8', timeout: (seconds + 60) * 1000 });
  const cpu1 = t.pid ? cpuTimes(t.pid) : { user: 0, sys: 0 };
  const user = cpu1.user - cpu0.user;
  const sys = cpu1.sys - cpu0.sys;
  const cpu = user + sys;
  const out = `${r.stdout}${r.stderr}`;
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  const tx = Number(/actually processed: (\d+)/.exec(out)?.[1]);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  if (r.status !== 0 || !(tps > 0) || failed > 0) {
    const err = new Error(`pgbench against ${t.name} (-M ${mode} -c ${clients}) failed (exit ${r.status}):\n${out}`);
    err.firstError = /error: (.*)/.exec(out)?.[1] ?? `exit ${r.status}`;
    throw err;
  }
  return { tps, tx, cpu, user, sys };
}

/** Latencies (µs) of pgbench's per-transaction log files: field 3 of each line. */
function latencies(logPrefix) {
  const dir = path.dirname(logPrefix);
  const base = path.basename(logPrefix);
  const lat = [];
  for (const f of fs.readdirSync(dir).filter((n) => n.startsWith(`${base}.`))) {
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const v = line.split(' ')[2];
      if (v) lat.push(Number(v));
    }
  }
  return lat;
}

function median(values) {
  const s = [...values].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function percentile(values, p) {
  if (!values.length) return NaN;
  const s = Float64Array.from(values).sort();
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

// ---- idle clients ----

/** PostgreSQL client backends open now, but for the one asking */
async function backends(direct) {
  const c = new Client({ host: '127.0.0.1', port: direct.port, user: direct.user, password: direct.password, database: 'postgres' });
  await c.connect();
  try {
    return (await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")).rows[0].n;
  } finally { await c.end(); }
}

/** RSS per idle client, and the backends the proxy opened for them (those it holds for pgbench's pools are not counted) */
async function idleCost(t, direct) {
  await sleep(1000);
  const before = rssKiB(t.pid);
  const backendsBefore = await backends(direct);
  const idle = await openIdleClients({ host: '127.0.0.1', port: t.port, ...APP }, IDLE);
  await sleep(2000);
  const after = rssKiB(t.pid);
  const n = await backends(direct);
  await idle.close();
  return { before, after, perClient: ((after - before) * 1024) / IDLE, backends: n - backendsBefore };
}

// ---- report ----

const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : '-');
const pad = (s, n) => String(s).padStart(n);

function printReport(rows, idle) {
  const lines = [];
  lines.push(`pgbench -S, scale ${SCALE}, ${SECONDS} s x ${ROUNDS} interleaved runs per cell, -j ${THREADS}; ${os.cpus().length} CPUs`);
  lines.push(POOLED
    ? `pgflip and PgBouncer ${BOUNCER_VERSION ? BOUNCER_VERSION[0].slice(10) : '?'} in transaction mode, pools of ${POOL_SIZE}${BOUNCER_PREPARES ? ', PgBouncer max_prepared_statements = 200' : ' (this PgBouncer has no max_prepared_statements: it does not track prepared statements)'}; the node pipe has a backend per client`
    : 'pgflip and PgBouncer in session mode');
  lines.push('TPS = median of runs (each run on stderr); p99 = from a 10% sample of all transactions; CPU = proxy process CPU time per transaction (all runs)');
  lines.push('');
  lines.push([pad('mode', 8), pad('clients', 7), pad('direct TPS', 11), pad('p99 ms', 7), pad('pgflip TPS', 11), pad('p99 ms', 7), pad('CPU µs/tx', 9),
    pad('pgbouncer TPS', 13), pad('p99 ms', 7), pad('CPU µs/tx', 9), pad('pipe TPS', 9), pad('CPU µs/tx', 9),
    pad('pgflip/pgbouncer', 16), pad('pgflip/direct', 13), pad('pipe/pgbouncer', 14), pad('pgflip/pipe', 11)].join(' '));
  for (const r of rows) {
    const [d, f, b, n] = ['direct', 'pgflip', 'pgbouncer', 'node pipe'].map((k) => r.targets[k]);
    lines.push([pad(r.mode, 8), pad(r.clients, 7),
      pad(fmt(d.tps), 11), pad(fmt(d.p99 / 1000, 2), 7),
      pad(fmt(f.tps), 11), pad(fmt(f.p99 / 1000, 2), 7), pad(fmt(f.cpuPerTx, 1), 9),
      pad(fmt(b.tps), 13), pad(fmt(b.p99 / 1000, 2), 7), pad(fmt(b.cpuPerTx, 1), 9),
      pad(fmt(n.tps), 9), pad(fmt(n.cpuPerTx, 1), 9),
      pad(`${fmt(f.tps / b.tps, 2)}x`, 16), pad(`${fmt(f.tps / d.tps, 2)}x`, 13), pad(`${fmt(n.tps / b.tps, 2)}x`, 14), pad(`${fmt(f.tps / n.tps, 2)}x`, 11)].join(' '));
  }
  for (const r of rows) {
    for (const [name, x] of Object.entries(r.targets)) if (x.failed) lines.push(`-M ${r.mode} -c ${r.clients} through ${name} failed: ${x.failed}`);
  }
  lines.push('');
  for (const [name, m] of Object.entries(idle)) {
    if (m.error) { lines.push(`${name}: idle clients failed: ${m.error}`); continue; }
    lines.push(`${name}: ${IDLE} idle clients: RSS ${fmt(m.before / 1024, 1)} MiB -> ${fmt(m.after / 1024, 1)} MiB = ${fmt(m.perClient / 1024, 1)} KiB per idle client (${m.backends} PostgreSQL backends opened for them)`);
  }
  // rows where a proxy failed have no ratio
  const least = (f) => Math.min(...rows.map(f).filter(Number.isFinite));
  const worst = least((r) => r.targets.pgflip.tps / r.targets.pgbouncer.tps);
  lines.push('');
  const pipeWorst = least((r) => r.targets['node pipe'].tps / r.targets.pgbouncer.tps);
  const overPipe = least((r) => r.targets.pgflip.tps / r.targets['node pipe'].tps);
  lines.push(`the bare Node.js pipe reaches ${fmt(pipeWorst, 2)}x PgBouncer at worst; pgflip reaches ${fmt(overPipe, 2)}x the pipe at worst`);
  const f = idle.pgflip;
  const rssTarget = POOLED ? 16 : 64;
  lines.push(`targets: pgflip >= 1.00x PgBouncer TPS in every row where both ran: ${worst >= 1 ? 'met' : 'NOT met'} (worst ${fmt(worst, 3)}x); ` +
    `<= ${rssTarget} KiB RSS per idle client: ${f && f.perClient <= rssTarget * 1024 ? 'met' : 'NOT met'}` +
    (POOLED ? `; backends for the idle clients <= pool size (${POOL_SIZE}): ${f && f.backends <= POOL_SIZE ? 'met' : 'NOT met'}` : ''));
  process.stdout.write(`${lines.join('\n')}\n`);
}

// ---- main ----

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pgflip-bench-proxy-'));
  fs.chmodSync(work, 0o755);
  const cluster = new LocalCluster({
    dir: path.join(work, 'pg'),
    // in transaction mode the proxies hold at most their pools for the idle clients; pgbench -c 100 goes direct too.
    // In session mode PgBouncer keeps pgbench's server connections open while pgflip opens one per idle client.
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: POOLED ? Math.max(...CLIENTS) + 2 * POOL_SIZE + 50 : IDLE + Math.max(...CLIENTS) + 100, shared_buffers: '256MB' },
  });
  const stops = [];
  try {
    log(`starting PostgreSQL in ${work} …`);
    await cluster.start();
    stops.push(() => cluster.destroy());
    const direct = { name: 'direct', port: cluster.port, user: 'postgres', password: 'postgres', database: APP.database, pid: 0 };
    const c = new Client({ connectionString: cluster.url('postgres') });
    await c.connect();
    await c.query('CREATE DATABASE app');
    await c.end();
    log(`pgbench -i -s ${SCALE} …`);
    const init = spawnSync('pgbench', ['-i', '-q', '-s', String(SCALE)], { env: libpqEnv(direct), encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);

    const pgflip = await startPgflip(work, cluster.url('app'));
    stops.unshift(() => pgflip.stop());
    const bouncer = await startPgbouncer(work, cluster.port);
    stops.unshift(() => bouncer.stop());
    const pipe = await startPipe(work, cluster.port);
    stops.unshift(() => pipe.stop());
    const targets = [direct, pgflip, bouncer, pipe];

    log('warming up …');
    for (const t of targets) pgbench(t, POOLED ? 'simple' : 'prepared', 8, 2);

    const rows = [];
    const logDir = path.join(work, 'logs');
    fs.mkdirSync(logDir);
    for (const mode of MODES) {
      for (const clients of CLIENTS) {
        const acc = Object.fromEntries(targets.map((t) => [t.name, { tps: [], tx: 0, cpu: 0, lat: [] }]));
        for (let round = 1; round <= ROUNDS; round++) {
          for (const t of targets) {
            const prefix = path.join(logDir, `${t.name}-${mode}-${clients}-${round}`);
            const a = acc[t.name];
            if (a.failed) continue;
            let r;
            try { r = pgbench(t, mode, clients, SECONDS, prefix); } catch (err) {
              if (!POOLED || !err.firstError) throw err;
              a.failed = err.firstError;
              log(`  -M ${mode} -c ${clients} round ${round} ${t.name}: FAILED: ${err.firstError}`);
              continue;
            }
            a.tps.push(r.tps); a.tx += r.tx; a.cpu += r.cpu;
            for (const v of latencies(prefix)) a.lat.push(v);
            log(`  -M ${mode} -c ${clients} round ${round} ${t.name}: ${r.tps.toFixed(0)} TPS`);
          }
        }
        const row = { mode, clients, targets: {} };
        for (const t of targets) {
          const a = acc[t.name];
          row.targets[t.name] = a.failed ? { tps: NaN, p99: NaN, cpuPerTx: NaN, failed: a.failed } : {
            tps: median(a.tps), // a run disturbed by other load on the machine moves the mean, not the median
            p99: percentile(a.lat, 99),
            cpuPerTx: t.pid ? (a.cpu * 1e6) / a.tx : NaN,
          };
        }
        rows.push(row);
      }
    }

    const idle = {};
    for (const t of [pgflip, bouncer]) {
      log(`${IDLE} idle clients on ${t.name} …`);
      try { idle[t.name] = await idleCost(t, direct); } catch (err) { idle[t.name] = { error: err.message }; }
    }
    printReport(rows, idle);
  } finally {
    for (const stop of stops) await stop().catch((e) => log(`cleanup: ${e.message}`));
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err) => {
    log(`bench/proxy: ${err.message}`);
    process.exit(1);
  });
}

module.exports = { APP, latencies, libpqEnv, log, median, once, percentile, pgbench, sleep, startPgbouncer, startPgflip, startPipe, tail, waitReady };

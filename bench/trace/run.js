// Wall time of `pgflip validate --json [--trace] bench/trace/twenty.sql`, BENCH_RUNS times each,
// alternating; the first --trace run may make the initdb template (reported apart).
const { spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../..');
const FILE = path.join(__dirname, 'twenty.sql');
const RUNS = Number(process.env.BENCH_RUNS ?? 7);

function time(args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'validate', '--json', ...args, FILE], { encoding: 'utf8' });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr}`);
  const report = JSON.parse(r.stdout);
  return { s, statements: report.operations.filter((o) => o.trace).length };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const first = time(['--trace']);
const traced = [];
const plain = [];
for (let i = 0; i < RUNS; i++) {
  traced.push(time(['--trace']).s);
  plain.push(time([]).s);
}
const f = (x) => `${x.toFixed(2)} s`;
console.log(`statements traced: ${first.statements}; first run (may make the initdb template): ${f(first.s)}`);
console.log(`validate --trace: median ${f(median(traced))}, min ${f(Math.min(...traced))}, max ${f(Math.max(...traced))} over ${RUNS} runs`);
console.log(`validate (no trace): median ${f(median(plain))}, min ${f(Math.min(...plain))}`);
console.log(`load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, ${os.cpus().length} cores`);

/**
 * Classifier throughput over the shared corpus (1,183 real migrations), after the parser has
 * loaded: statements per second for parsing alone and for the full classification, and the
 * wall time of one `pgflip validate --json` call over the whole corpus (process start included).
 * Knobs: BENCH_ROUNDS (default 5), PGFLIP_CORPUS (the corpus directory, as for the tests). Not part of `npm test`.
 */
'use strict';
const { readFileSync } = require('node:fs');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const lq = require('libpg-query');
const { classifySqlSync, loadParser } = require('../../dist/classifier');

const ROOT = path.resolve(__dirname, '../..');
const CORPUS = process.env.PGFLIP_CORPUS ?? path.resolve(ROOT, '../shared/corpus');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

async function main() {
  const files = readFileSync(path.join(CORPUS, 'MANIFEST.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => path.join(CORPUS, l.split('\t')[3]));
  const sources = files.map((f) => readFileSync(f, 'utf8'));
  const bytes = sources.reduce((n, s) => n + Buffer.byteLength(s), 0);

  let t = process.hrtime.bigint();
  await loadParser();
  const loadMs = Number(process.hrtime.bigint() - t) / 1e6;

  // statements = what the classifier reports on (operations may be several per statement)
  let statements = 0;
  let operations = 0;
  for (const s of sources) {
    const r = classifySqlSync(s);
    operations += r.operations.length;
    try { statements += lq.parseSync(s).stmts.length; } catch { statements += s.split(';').length - 1; }
  }

  const time = (fn) => {
    fn(); // warm-up
    const start = process.hrtime.bigint();
    for (let i = 0; i < ROUNDS; i++) fn();
    return Number(process.hrtime.bigint() - start) / 1e9 / ROUNDS;
  };
  const parseS = time(() => { for (const s of sources) { try { lq.parseSync(s); } catch { /* counted above */ } } });
  const classifyS = time(() => { for (const s of sources) classifySqlSync(s); });

  t = process.hrtime.bigint();
  const cli = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'validate', '--json', ...files], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const cliS = Number(process.hrtime.bigint() - t) / 1e9;
  const reports = JSON.parse(cli.stdout);

  const rate = (s) => Math.round(statements / s);
  console.log(`corpus: ${files.length} files, ${(bytes / 1e6).toFixed(2)} MB, ${statements} statements, ${operations} operations; parser load ${loadMs.toFixed(0)} ms; ${ROUNDS} rounds`);
  console.log('');
  console.log('| measure | value | target | ratio to target |');
  console.log('|---|---:|---:|---:|');
  console.log(`| parse only (libpg-query), statements/s | ${rate(parseS).toLocaleString('en-US')} | | |`);
  console.log(`| classify (parse + rules + context), statements/s | ${rate(classifyS).toLocaleString('en-US')} | 5,000 | ${(rate(classifyS) / 5000).toFixed(1)}× |`);
  console.log(`| classify / parse only | ${(parseS / classifyS).toFixed(2)} | | |`);
  console.log(`| one \`pgflip validate --json\` over the corpus, s | ${cliS.toFixed(2)} | < 5 | ${(5 / cliS).toFixed(1)}× faster |`);
  console.log('');
  console.log(`validate exit code ${cli.status}; ${reports.length} reports, ${reports.filter((r) => !r.isValid).length} invalid`);
}

main().catch((err) => { console.error(err); process.exit(1); });

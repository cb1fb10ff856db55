/**
 * `pgflip demo`: the product on the embedded default, told as it happens. pgflip
 * up starts; the example schema goes in through the controller as safe
 * migrations; an application writes through the proxy; a risky migration (a
 * column renamed, another dropped) runs while it writes, with its progress; the
 * fleet flips; and every write the application saw acknowledged is looked up on
 * the new side.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { ControllerClient } from '../controller/client';
import { sleep } from '../util/sleep';
import { isTerminal, MigrationRecord, MigrationClass } from '../controller/types';
import { startUp, UpProcess } from './up-process';
import { LostWrite, Workload } from './workload';

export const MIGRATIONS_DIR = path.join(__dirname, '..', '..', 'migrations');

/** The demo's risky migration: both statements break an application still on the old schema. */
export const RISKY_NAME = 'demo_rename_and_drop_column.sql';
export const RISKY_SQL = `-- risky: a rename and a drop break queries of the running application; pgflip
-- runs them on the idle side, keeps it in sync and flips all traffic at once.
ALTER TABLE users RENAME COLUMN nickname TO display_name;
ALTER TABLE users DROP COLUMN created_at;
`;

export interface DemoOptions {
  /** a new or empty directory; default: a temporary one, removed after a successful run */
  dataDir?: string;
  writers: number;
  seedRows: number;
  watchSeconds: number;
  print: (line: string) => void;
}

export interface DemoSummary {
  migration: { id: string; state: string; outcome?: string; side?: string };
  attempted: number;
  acknowledged: number;
  lost: number;
  clientErrors: number;
  /** the proxies' pause at the flip, from the migration's flip step */
  pauseMs?: number;
  maxWriteLatencyMs: number;
  /** writes of the new application version, started after the flip beside the old one */
  newVersionAcknowledged: number;
  ok: boolean;
}

export class DemoUsageError extends Error {}


function prepareDataDir(dir: string | undefined): { dir: string; temporary: boolean } {
  if (!dir) {
    const d = mkdtempSync(path.join(os.tmpdir(), 'pgflip-demo-'));
    chmodSync(d, 0o755); // as root, PostgreSQL runs as the postgres user, which must reach it
    return { dir: d, temporary: true };
  }
  const d = path.resolve(dir);
  if (existsSync(path.join(d, 'secrets.json'))) {
    throw new DemoUsageError(`--data-dir ${d} already holds a pgflip setup; the demo needs a new or empty directory`);
  }
  mkdirSync(d, { recursive: true, mode: 0o755 });
  return { dir: d, temporary: false };
}

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const t0 = Date.now();
  const say = (line: string) => o.print(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${line}`);
  const { dir, temporary } = prepareDataDir(o.dataDir);
  let stack: UpProcess | undefined;
  let workload: Workload | undefined;
  let newWorkload: Workload | undefined;
  let ok = false;
  let cleaning: Promise<void> | undefined;
  const cleanup = (keepDir: boolean) => cleaning ??= (async () => {
    await Promise.all([workload?.stop(), newWorkload?.stop()]);
    if (stack) {
      const code = await stack.stop();
      if (code !== 0) o.print(`pgflip up exited with code ${code}; its log: ${stack.logFile}`);
    }
    if (temporary && !keepDir) rmSync(dir, { recursive: true, force: true });
    else o.print(`data directory kept: ${dir} (log: ${path.join(dir, 'up.log')})`);
  })();
  // Ctrl-C: the writers and pgflip up stop cleanly, and a temporary data dir goes
  const onSignal = () => {
    o.print('interrupted: stopping the workload and pgflip up');
    void cleanup(false).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say(`starting pgflip up (blue + green PostgreSQL, proxy, controller) in ${dir}`);
    stack = await startUp(dir, ['--watch-seconds', String(o.watchSeconds)]);
    const { info } = stack;
    say(`up: application ${info.appUrl.replace(/:[^:@/]*@/, ':***@')}, controller ${info.controllerUrl}`);
    const api = new ControllerClient({ PGFLIP_CONTROLLER_URL: info.controllerUrl, PGFLIP_API_TOKEN: info.apiToken });

    say('1. the example schema, through the controller as safe migrations (recorded in the ledger)');
    for (const file of ['000_example_schema.sql', '001_add_nullable_column.sql']) {
      const rec = await runMigration(api, file, readFileSync(path.join(MIGRATIONS_DIR, file), 'utf8'), 'safe', say);
      if (rec.state !== 'completed') throw new Error(`${file} ended ${rec.state}: ${rec.outcome ?? rec.errors.join('; ')}`);
    }
    workload = new Workload({ url: info.appUrl, writers: o.writers, pauseMs: 5, version: 'old' });
    await seed(info.appUrl, o.seedRows, workload);
    say(`   ${o.seedRows} users seeded through the proxy`);

    say(`2. the application: ${o.writers} node-postgres clients inserting and updating users (nickname, created_at) through the proxy`);
    workload.start();
    await sleep(1500);
    say(`   writes flowing: ${workload.counts.acknowledged} acknowledged so far`);

    say(`3. a risky migration while the writes continue (${RISKY_NAME}):`);
    for (const l of RISKY_SQL.trim().split('\n').filter((l) => !l.startsWith('--'))) say(`     ${l}`);
    const w = workload;
    const rec = await runMigration(api, RISKY_NAME, RISKY_SQL, 'risky', say, () => `writes acknowledged ${w.counts.acknowledged}, errors ${w.counts.errors}`);
    say(`   migration ${rec.state}${rec.outcome ? `: ${rec.outcome}` : ''}`);
    if (rec.state === 'completed') {
      // the new version is deployed while the old one still runs: both schema versions are served
      say(`   the old version keeps writing nickname and created_at; the new version connects with pgflip.version=latest and writes display_name`);
      newWorkload = new Workload({ url: info.appUrl, writers: Math.max(1, Math.floor(o.writers / 2)), pauseMs: 5, version: 'new' });
      newWorkload.start();
      await sleep(2000);
      await newWorkload.stop();
    }
    await workload.stop();

    const newSide = rec.state === 'completed' ? rec.side : rec.startSide;
    const sideUrl = newSide === 'green' ? info.greenUrl : info.blueUrl;
    say(`4. every acknowledged write looked up on ${newSide} (the side now serving)`);
    const lost = rec.state === 'completed'
      ? [...await workload.lostOn(sideUrl), ...(newWorkload ? await newWorkload.lostOn(sideUrl) : [])]
      : [];
    if (rec.compat?.state === 'serving') {
      await api.post(`/migrations/${encodeURIComponent(rec.id)}/finalize`, {});
      say(`5. both versions done: \`pgflip finalize ${rec.id}\` dropped the previous schema version (${rec.compat.schema})`);
    }
    if (rec.state === 'completed') say(`   ${newSide} users columns: ${(await columns(sideUrl)).join(', ')}`);
    const flip = rec.steps.find((s) => s.name === 'flip' && s.state === 'done');
    const pause = flip?.detail && /pause (\d+) ms/.exec(flip.detail);
    const c = workload.counts;
    const n = newWorkload?.counts ?? { attempted: 0, acknowledged: 0, errors: 0, maxLatencyMs: 0 };
    const summary: DemoSummary = {
      migration: { id: rec.id, state: rec.state, outcome: rec.outcome, side: rec.side },
      attempted: c.attempted + n.attempted,
      acknowledged: c.acknowledged + n.acknowledged,
      lost: lost.length,
      clientErrors: c.errors + n.errors,
      pauseMs: pause ? Number(pause[1]) : undefined,
      maxWriteLatencyMs: Math.round(Math.max(c.maxLatencyMs, n.maxLatencyMs)),
      newVersionAcknowledged: n.acknowledged,
      ok: rec.state === 'completed' && lost.length === 0 && c.errors + n.errors === 0 && c.acknowledged > 0 && n.acknowledged > 0,
    };
    printSummary(o.print, summary, lost, [...workload.errorMessages, ...(newWorkload?.errorMessages ?? [])], Date.now() - t0);
    ok = summary.ok;
    return summary;
  } finally {
    await cleanup(!ok); // a failed run keeps its data dir and log to look at
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function seed(url: string, rows: number, errors: Workload): Promise<void> {
  const c = new Client({ connectionString: url, application_name: 'demo-seed' });
  c.on('error', (err) => errors.recordError(err, 'seeding, on an idle or closing connection'));
  await c.connect();
  try {
    await c.query(`INSERT INTO users (name, email) SELECT 'seed-' || g, 'seed-' || g || '@example.com' FROM generate_series(1, $1::int) g`, [rows]);
  } finally {
    await c.end();
  }
}

async function columns(url: string): Promise<string[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ attname: string }>(`SELECT attname FROM pg_attribute WHERE attrelid = 'users'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
    return r.rows.map((x) => x.attname);
  } finally {
    await c.end();
  }
}

/**
 * Submits a migration and follows it: a line per step started and finished,
 * copy progress in tenths, and the lag (with `extra`) at most once a second.
 */
async function runMigration(api: ControllerClient, name: string, sql: string, type: MigrationClass,
  say: (l: string) => void, extra?: () => string): Promise<MigrationRecord> {
  const { id } = await api.post<{ id: string }>('/migrations', { name, sql, type });
  say(`   ${name}: submitted as ${type} (id ${id})`);
  const seen = new Map<string, string>();
  let copyTenth = -1;
  let lastLag = 0;
  for (;;) {
    const rec = await api.get<MigrationRecord>(`/migrations/${encodeURIComponent(id)}`);
    for (const s of rec.steps) {
      if (seen.get(s.name) === s.state) continue;
      seen.set(s.name, s.state);
      if (s.state === 'running') say(`   > ${s.name}`);
      else if (s.name === 'copy' && s.state === 'done' && copyTenth < 10) {
        copyTenth = 10; // finished between two looks: its 100% still belongs to the story
        say(`     copy 100%${rec.copy?.rows !== undefined ? ` (${rec.copy.rows} rows)` : ''}`);
      }
      if (s.state !== 'running') say(`   ${s.state === 'done' ? '✓' : s.state === 'skipped' ? '-' : '✗'} ${s.name}${s.durationMs !== undefined ? ` (${s.durationMs} ms)` : ''}${s.detail ? `: ${s.detail}` : ''}`);
    }
    const running = rec.steps.at(-1)?.state === 'running' ? rec.steps.at(-1)!.name : undefined;
    if (running === 'copy' && rec.copy && Math.floor(rec.copy.fraction * 10) > copyTenth) {
      copyTenth = Math.floor(rec.copy.fraction * 10);
      say(`     copy ${Math.round(rec.copy.fraction * 100)}%${rec.copy.rows !== undefined ? ` (${rec.copy.rows} rows)` : ''}`);
    }
    if (running && running !== 'copy' && Date.now() - lastLag >= 1000 && (rec.lag || extra)) {
      lastLag = Date.now();
      const lag = rec.lag ? `lag ${rec.lag.seconds.toFixed(2)} s / ${rec.lag.bytes} bytes` : '';
      say(`     ${[lag, extra?.()].filter(Boolean).join(' · ')}`);
    }
    if (isTerminal(rec.state)) return rec;
    await sleep(200);
  }
}

function printSummary(print: (l: string) => void, s: DemoSummary, lost: LostWrite[], errors: string[], elapsedMs: number): void {
  print('');
  print('summary');
  print(`  migration          ${s.migration.state}${s.migration.outcome ? ` — ${s.migration.outcome}` : ''}`);
  print(`  writes attempted   ${s.attempted}`);
  print(`  acknowledged       ${s.acknowledged} (new version: ${s.newVersionAcknowledged})`);
  print(`  lost               ${s.lost}`);
  print(`  client errors      ${s.clientErrors}`);
  print(`  pause              ${s.pauseMs !== undefined ? `${s.pauseMs} ms` : 'n/a'} (slowest acknowledged write ${s.maxWriteLatencyMs} ms)`);
  print(`  took               ${(elapsedMs / 1000).toFixed(1)} s`);
  for (const l of lost.slice(0, 5)) print(`  lost: users.id ${l.id}: acknowledged ${JSON.stringify(l.expected)}, found ${l.found ? JSON.stringify(l.found) : 'nothing'}`);
  for (const e of errors.slice(0, 5)) print(`  client error: ${e}`);
  print(s.ok ? 'OK: no acknowledged write lost, no client error' : 'FAILED');
}

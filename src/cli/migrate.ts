import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { confirm, ControllerClient } from '../controller/client';
import type { MigrationRecord } from '../controller/types';
import { isTerminal } from '../controller/types';
import { sleep } from '../util/sleep';

export const seconds = (flag: string, min: number) => (v: string): number => {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min) throw new InvalidArgumentError(`${flag} takes whole seconds >= ${min}, got "${v}"`);
  return n;
};

type MigrationClass = 'safe' | 'risky' | 'maintenance';

interface MigrateOptions { type?: MigrationClass; dryRun?: boolean; yes?: boolean; rollback: boolean; timeout?: number; switchDelay?: number }

/** Progress of one migration: rewritten in place on a terminal, one line per change otherwise. */
class ProgressView {
  private last = '';
  constructor(private readonly tty: boolean, private readonly name: string) {}

  show(rec: MigrationRecord): void {
    const step = rec.steps.at(-1);
    const parts = [`${this.name}`, `${Math.round(rec.progress * 100)}%`, step ? `${step.name}${step.state === 'running' ? '…' : ` ${step.state}`}` : rec.state];
    if (rec.copy && rec.copy.fraction < 1 && step?.name === 'copy') parts.push(`copy ${Math.round(rec.copy.fraction * 100)}%`);
    if (rec.lag) parts.push(`lag ${rec.lag.seconds.toFixed(1)}s`);
    if (rec.statements && step?.name === 'apply') parts.push(`statements ${rec.statements.committed}/${rec.statements.total}`);
    if (this.tty) {
      const line = parts.join('  ');
      process.stderr.write(`\r\x1b[2K${line}`);
      this.last = line;
    } else {
      // plain lines: one per step change, with the finished step's detail
      for (const s of rec.steps) {
        const key = `${s.name}:${s.state}`;
        if (this.seen.has(key)) continue;
        this.seen.add(key);
        process.stderr.write(`${this.name}: ${s.name} ${s.state}${s.detail && s.state !== 'running' ? ` — ${s.detail}` : ''}\n`);
      }
      const extra = parts.slice(3).join(' ');
      if (extra && extra !== this.last) { process.stderr.write(`${this.name}: ${extra}\n`); this.last = extra; }
    }
  }

  private readonly seen = new Set<string>();

  end(): void { if (this.tty && this.last) process.stderr.write('\n'); }
}

export function registerMigrate(program: Command): void {
  program.command('migrate')
    .description('run migration files through the controller, in order; stops at the first that does not complete')
    .addOption(new Option('--type <class>', 'strategy allowed: a file classified above it is refused (required unless --dry-run: a dry run without it plans each file as classified)').choices(['safe', 'risky', 'maintenance']))
    .option('--dry-run', 'validate, check prerequisites, plan and estimate; change nothing')
    .option('--yes', 'do not ask before a risky or maintenance migration')
    .option('--no-rollback', 'no rollback point and no automatic rollback after the flip')
    .option('--timeout <seconds>', 'risky: the health-check timeout, how long health is watched after the switch and must hold before the migration completes (the watch window; default controller.watchWindowSeconds). Never a budget: a healthy migration is not aborted however long it takes', seconds('--timeout', 1))
    .option('--switch-delay <seconds>', 'risky: wait between verification and the flip', seconds('--switch-delay', 0))
    .argument('<file...>', 'migration files')
    .action(async (files: string[], o: MigrateOptions, cmd: Command) => {
      if (!o.type && !o.dryRun) cmd.error("error: required option '--type <class>' not specified (only --dry-run may leave it out)", { exitCode: 2 });
      const client = new ControllerClient();
      const sources = files.map((f) => {
        try { return { file: f, name: path.basename(f), sql: readFileSync(f, 'utf8') }; } catch (e) {
          throw new Error(`${f}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        }
      });
      if (!o.type) { process.exitCode = await planAsClassified(client, sources, o); return; }
      if (!o.dryRun && !o.yes && o.type !== 'safe' && process.stdin.isTTY) {
        const what = o.type === 'risky' ? 'flip all traffic to the other side' : 'hold all traffic while it runs';
        if (!(await confirm(`${files.length} ${o.type} migration(s) may ${what}. Continue?`))) { process.stderr.write('cancelled\n'); process.exitCode = 1; return; }
      }
      const tty = Boolean(process.stderr.isTTY);
      let allCompleted = true;
      for (const s of sources) {
        const { id } = await client.post<{ id: string }>('/migrations', migrationRequest(s, o.type, o));
        const view = new ProgressView(tty, s.name);
        let aborting = false;
        const onSigint = () => {
          if (aborting) process.exit(130);
          aborting = true;
          process.stderr.write(`\n${s.name}: aborting migration ${id} (Ctrl-C again to leave it running)\n`);
          client.post(`/migrations/${id}/abort`).catch((e: Error) => process.stderr.write(`abort failed: ${e.message}\n`));
        };
        process.on('SIGINT', onSigint);
        let rec: MigrationRecord;
        try {
          rec = await untilEnded(client, id, (r) => view.show(r));
        } finally {
          process.off('SIGINT', onSigint);
          view.end();
        }
        const ok = rec.state === 'completed';
        const out = `${s.name}: ${rec.state}${rec.outcome ? ` — ${rec.outcome}` : ''} (id ${id})\n`;
        if (ok) process.stdout.write(out); else process.stderr.write(out);
        if (rec.plan?.length && o.dryRun) process.stdout.write(rec.plan.map((p, i) => `  ${i + 1}. ${p}\n`).join(''));
        for (const w of rec.warnings) process.stderr.write(`  warning: ${w}\n`);
        for (const e of rec.errors) if (!rec.outcome?.includes(e)) process.stderr.write(`  error: ${e}\n`);
        if (!ok) { allCompleted = false; break; }
      }
      if (!allCompleted) process.exitCode = 1;
    });
}

interface Source { file: string; name: string; sql: string }

function migrationRequest(s: Source, type: MigrationClass, o: MigrateOptions): Record<string, unknown> {
  return {
    sql: s.sql, name: s.name, type, dryRun: Boolean(o.dryRun), noRollback: !o.rollback,
    ...(o.timeout !== undefined ? { timeoutSeconds: o.timeout } : {}),
    ...(o.switchDelay !== undefined ? { switchDelaySeconds: o.switchDelay } : {}),
  };
}

const STRATEGY: Record<MigrationClass, string> = {
  safe: 'runs on the live side',
  risky: 'applied to the idle side, synced, then flipped',
  maintenance: 'runs in a maintenance window (traffic held)',
};

/**
 * `--dry-run` without `--type` (a CI check over a directory of migrations): the controller's own
 * validation classifies each file (the ledger first: an applied file is reported as skipped), and
 * the file is dry-run as its class, one report per file. Exit 1 only when a file is invalid or its
 * dry run fails; files do not stop each other.
 */
async function planAsClassified(client: ControllerClient, sources: Source[], o: MigrateOptions): Promise<number> {
  const dryRun = async (s: Source, type: MigrationClass): Promise<MigrationRecord> => {
    const { id } = await client.post<{ id: string }>('/migrations', migrationRequest(s, type, o));
    return untilEnded(client, id);
  };
  let failed = 0;
  for (const s of sources) {
    // the widest class is never refused, so this run tells the file's class
    let rec = await dryRun(s, 'maintenance');
    const cls = rec.classification as MigrationClass | undefined;
    if (rec.state === 'completed' && cls && cls !== 'maintenance') rec = await dryRun(s, cls);
    const ok = rec.state === 'completed';
    if (!ok) failed++;
    const what = !cls ? rec.outcome ?? rec.state : `${cls} — ${STRATEGY[cls]}${ok ? '' : `; dry run ${rec.state}${rec.outcome ? `: ${rec.outcome}` : ''}`}`;
    const head = `${s.file}: ${what} (id ${rec.id})\n`;
    if (ok) process.stdout.write(head); else process.stderr.write(head);
    if (rec.plan?.length) process.stdout.write(rec.plan.map((p, i) => `  ${i + 1}. ${p}\n`).join(''));
    for (const w of rec.warnings) process.stderr.write(`  warning: ${w}\n`);
    for (const e of rec.errors) process.stderr.write(`  error: ${s.file}: ${e}\n`);
  }
  if (sources.length > 1) process.stdout.write(`${sources.length - failed} of ${sources.length} files planned${failed ? `; ${failed} failed` : ''}\n`);
  return failed ? 1 : 0;
}

/** Polls a migration until it ends; `each` sees every record read (progress). */
async function untilEnded(client: ControllerClient, id: string, each?: (rec: MigrationRecord) => void): Promise<MigrationRecord> {
  for (;;) {
    const rec = await client.get<MigrationRecord>(`/migrations/${id}`);
    each?.(rec);
    if (isTerminal(rec.state)) return rec;
    await sleep(300);
  }
}

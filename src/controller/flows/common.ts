/**
 * The steps every flow begins with (validate, rollback point), the run of a
 * file's statements, and the end of a dry run.
 */
import type { PgflipConfig } from '../../config';
import type { Side } from '../../side';
import type { SchemaMapping } from '../../classifier/mapping';
import { logger } from '../../observability/logger';
import { Applier, ApplyError } from '../apply';
import { withClient } from '../../util/pg';
import { CONTROLLER_APP } from '../db';
import { ledgerStatus } from '../ledger';
import { parseStatements, runMode, SqlStatement, SqlSyntaxError } from '../statements';
import { FlowEnd } from '../steps';
import { classRank, StatementProgress, StoredMigration } from '../types';
import type { Flow, FlowContext } from './flow';

/** Steps every flow has, under these names. */
export type SharedStep = 'validate' | 'rollback point';

const now = (): string => new Date().toISOString();

/** the mapping of a file that renames, retypes, adds and drops nothing */
export const noMapping = (): SchemaMapping => ({ tables: [], newTables: [], droppedTables: [] });

export function describeMode(m: ReturnType<typeof runMode>): string {
  return m === 'transaction' ? 'in one transaction' : m === 'statements' ? 'statement by statement (holds statements that cannot run in a transaction)' : 'with the file\'s own BEGIN/COMMIT';
}

/** validate: parse, classify, compare with --type, consult the ledger. */
export async function validate<N extends string>(ctx: FlowContext<N | SharedStep>, side: Side, resume = false): Promise<{ statements: SqlStatement[]; mapping?: SchemaMapping }> {
  const { rec } = ctx;
  return ctx.steps.run('validate', async (s) => {
    let statements: SqlStatement[];
    try {
      statements = await parseStatements(rec.sql, rec.name);
    } catch (err) {
      if (err instanceof SqlSyntaxError) throw new FlowEnd('failed', `invalid SQL: ${err.message}; nothing applied`);
      throw err;
    }
    if (statements.length === 0) throw new FlowEnd('failed', `${rec.name}: no SQL statements; nothing applied`);
    // the ledger first: an applied file no longer matches the live catalog (its column exists)
    await withClient(ctx.sideUrl(side), async (c) => {
      const l = await ledgerStatus(c, rec.name, rec.checksum);
      if (l.status === 'applied') {
        // our own earlier run, interrupted after its commit (recovery)
        if (l.row.migrationId === rec.id) throw new FlowEnd('completed', `applied on ${l.row.side} at ${l.row.finishedAt} (committed before the controller restarted)`);
        throw new FlowEnd('completed', `skipped: ${rec.name} was already applied on ${l.row.side} at ${l.row.finishedAt} with the same checksum`);
      }
      if (l.status === 'changed') {
        throw new FlowEnd('failed', `refused: ${rec.name} was applied at ${l.row.finishedAt} with checksum ${l.row.checksum.slice(0, 12)}…, this file has ${rec.checksum.slice(0, 12)}… (a changed migration needs a new name); nothing applied`);
      }
    }, CONTROLLER_APP);
    if (resume && rec.classification && rec.statements) {
      // classified before the restart; the live catalog now shows the statements that already ran
      s.detail = `${rec.classification}, classified before the restart; resuming after statement ${rec.statements.committed}`;
      return { statements };
    }
    const trace = ctx.d.cfg.controller.trace;
    if (trace !== 'off') s.detail = 'classifying, and tracing the file on a throwaway cluster with the schema of ' + side;
    const started = Date.now();
    const report = await ctx.d.classifier.classify(rec.sql, { fileName: rec.name, databaseUrl: ctx.sideUrl(side), ...(trace !== 'off' ? { trace } : {}) });
    const traced = report.operations.some((o) => o.trace) ? `; traced on a throwaway cluster in ${((Date.now() - started) / 1000).toFixed(1)} s` : '';
    rec.classification = report.classification;
    rec.warnings.push(...report.warnings);
    if (!report.isValid || report.errors.length) {
      rec.errors.push(...report.errors);
      throw new FlowEnd('failed', `invalid: ${report.errors.join('; ') || 'the classifier rejected the file'}; nothing applied`);
    }
    if (classRank(report.classification) > classRank(rec.type)) {
      const worst = report.operations.filter((o) => o.classification === report.classification);
      const why = worst.map((o) => `line ${o.line}: ${o.type} — ${o.reason}`).join('; ');
      throw new FlowEnd('failed', `refused: ${rec.name} is ${report.classification}, more than --type ${rec.type} allows (${why}); nothing applied`);
    }
    rec.statements = { total: statements.length, committed: 0, mode: runMode(statements) };
    s.detail = `${report.classification} (${report.riskLevel}), ${statements.length} statement(s), runs ${describeMode(runMode(statements))}${traced}`;
    if (report.tables?.length) rec.estimates = { ...(rec.estimates ?? {}), tables: report.tables };
    return { statements, mapping: report.mapping };
  });
}

/** rollback point: a plain SQL dump of the side about to change, unless --no-rollback. */
export async function rollbackPoint<N extends string>(ctx: FlowContext<N | SharedStep>, side: Side): Promise<void> {
  const { rec } = ctx;
  if (rec.noRollback) { await ctx.steps.skip('rollback point', '--no-rollback'); return; }
  await ctx.steps.run('rollback point', async (s) => {
    const p = await ctx.d.rollbackPoints.create(rec.id, side, ctx.sideUrl(side));
    rec.rollbackPoint = p.id;
    s.detail = `${p.id} (${p.bytes} bytes, ${side}, written by ${p.tool === 'node' ? 'the Node dump' : 'pg_dump'})`;
  });
}

/** Runs the file's statements on a side (apply.ts), its progress saved as it goes; an abort cancels them. */
export async function runStatements<N extends string>(ctx: FlowContext<N>, side: Side, statements: SqlStatement[], resumeFrom?: number): Promise<void> {
  const { rec } = ctx;
  const c = ctx.d.cfg.controller;
  const applier = new Applier(ctx.sideUrl(side), statements, {
    lockTimeoutMs: c.lockTimeoutMs,
    lockRetries: c.lockRetries,
    resumeFrom,
    ledger: { name: rec.name, checksum: rec.checksum, class: rec.classification ?? rec.type, side, migrationId: rec.id, startedAt: rec.startedAt ?? now() },
    onProgress: async (p: StatementProgress) => { rec.statements = p; await ctx.save(); },
    onRetry: async (attempt, err, st) => {
      rec.warnings.push(`lock timeout on statement ${st.index} (line ${st.line}), retry ${attempt} of ${c.lockRetries}`);
      logger().warn({ id: rec.id, attempt, sqlstate: err.code }, 'lock timeout, retrying');
      await ctx.save();
    },
  });
  ctx.setApplier(applier);
  try {
    rec.statements = await applier.run();
  } catch (err) {
    if (err instanceof ApplyError) rec.statements = { total: err.total, committed: err.committed, mode: applier.mode };
    throw err;
  } finally {
    ctx.setApplier(undefined);
  }
}

/** --dry-run: the plan on the record, every later step skipped, and the flow ends. */
export async function dryRunEnd<N extends string>(ctx: FlowContext<N>, flow: Flow<N>, side: Side, statements: SqlStatement[], more: string[] = []): Promise<never> {
  const { rec } = ctx;
  rec.plan = [...flow.plan(ctx.d.cfg, rec, side, statements), ...more];
  for (const name of flow.steps.slice(1)) await ctx.steps.skip(name, 'dry run');
  throw new FlowEnd('completed', `dry run: ${rec.name} is ${rec.classification}; nothing changed`);
}

/** The rollback point line of a plan. */
export function rollbackPointPlan(cfg: PgflipConfig, rec: StoredMigration, side: Side): string {
  return rec.noRollback ? 'no rollback point (--no-rollback)' : `rollback point: plain SQL dump of ${side} into ${cfg.controller.backupDir}`;
}

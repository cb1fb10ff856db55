/**
 * safe: validate → rollback point → apply on the active side (lock_timeout,
 * bounded retries) → ledger. After a restart the flow runs again under the
 * same id: the ledger row, committed with the migration, carries that id, and
 * a statement-by-statement file resumes after its last committed statement.
 */
import type { Flow } from './flow';
import { describeMode, dryRunEnd, rollbackPoint, rollbackPointPlan, runStatements, validate } from './common';
import { runMode } from '../statements';

export const SAFE_STEPS = ['validate', 'rollback point', 'apply', 'ledger'] as const;
export type SafeStep = typeof SAFE_STEPS[number];

export const safeFlow: Flow<SafeStep> = {
  steps: SAFE_STEPS,

  async run(ctx, { resume }) {
    const { rec } = ctx;
    const { active } = await ctx.activeSide();
    rec.side ??= active;
    rec.startSide ??= active;
    const side = rec.side;
    const { statements } = await validate(ctx, side, resume);
    if (rec.dryRun) await dryRunEnd(ctx, safeFlow, side, statements);
    if (!rec.rollbackPoint && !(resume && rec.noRollback)) await rollbackPoint(ctx, side);
    const resumeFrom = resume && rec.statements?.mode === 'statements' ? rec.statements.committed : undefined;
    await ctx.steps.run('apply', async (s) => {
      await runStatements(ctx, side, statements, resumeFrom);
      s.detail = `${rec.statements?.committed}/${statements.length} statement(s) on ${side}, ${describeMode(runMode(statements))}`;
    });
    // the ledger row commits with the migration itself (apply.ts); this step records that fact
    await ctx.steps.run('ledger', async (s) => { s.detail = `pgflip.migrations: ${rec.name} on ${side}`; });
    rec.outcome = `applied on ${side} (active)`;
  },

  // the transaction either committed (ledger row) or not; statement mode resumes after the last committed statement
  recover: async () => 'rerun',

  plan(cfg, rec, side, statements) {
    const c = cfg.controller;
    return [rollbackPointPlan(cfg, rec, side), `apply ${statements.length} statement(s) on ${side} (active) ${describeMode(runMode(statements))}, lock_timeout ${c.lockTimeoutMs}ms, up to ${c.lockRetries} retries`, 'record in pgflip.migrations'];
  },
};

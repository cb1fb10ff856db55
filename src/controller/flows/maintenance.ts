/**
 * maintenance: validate → rollback point → hold traffic at the proxies → apply
 * (inside the hold) → resume traffic. The hold is the fleet flip's pause,
 * released without a commit (wiring.ts): every proxy resumes on its side.
 * After a restart: completed if the ledger shows the file committed, else
 * rolled back (its transaction died with the connection; the proxies resumed).
 */
import type { Side } from '../../side';
import { withClient } from '../../util/pg';
import { CONTROLLER_APP } from '../db';
import { ledgerStatus } from '../ledger';
import { runMode } from '../statements';
import { FlowEnd, Step } from '../steps';
import type { StoredMigration } from '../types';
import { describeMode, dryRunEnd, rollbackPoint, rollbackPointPlan, runStatements, validate } from './common';
import { servingCompat } from '../compat';
import type { Flow } from './flow';

export const MAINTENANCE_STEPS = ['validate', 'rollback point', 'hold traffic', 'apply', 'resume traffic'] as const;
export type MaintenanceStep = typeof MAINTENANCE_STEPS[number];

export const maintenanceFlow: Flow<MaintenanceStep> = {
  steps: MAINTENANCE_STEPS,

  async run(ctx) {
    const { rec, d } = ctx;
    const { active } = await ctx.activeSide();
    rec.side ??= active;
    rec.startSide ??= active;
    const side = rec.side;
    const { statements } = await validate(ctx, side);
    if (rec.dryRun) await dryRunEnd(ctx, maintenanceFlow, side, statements);
    // the views of a previous schema version depend on the tables a maintenance change alters
    const serving = await servingCompat(d.store);
    if (serving?.side === side) {
      throw new Error(`${serving.migration} still serves its previous schema version from ${serving.schema} on ${side}, whose views this change could break: run \`pgflip finalize ${serving.migrationId}\` first`);
    }
    await rollbackPoint(ctx, side);
    const holdMs = d.cfg.controller.holdLimitSeconds * 1000;
    const flipper = d.flipper;
    if (!flipper) throw new Error('maintenance needs the flip coordinator (state store) to hold traffic at the proxies');
    let hold: Step<MaintenanceStep> | undefined;
    let apply: Step<MaintenanceStep> | undefined;
    const outcome = await ctx.steps.run('hold traffic', async (s) => {
      hold = s;
      return flipper.hold({
        deadlineMs: Math.min(holdMs, 10_000),
        during: async () => {
          s.detail = 'all proxies hold their sessions';
          s.markDone();
          await s.inner('apply', async (a) => {
            apply = a;
            await runStatements(ctx, side, statements);
            a.detail = `${rec.statements?.committed}/${statements.length} statement(s) on ${side} while traffic was held`;
          });
        },
      });
    });
    if (!outcome.committed) {
      if (hold) hold.detail = `hold ended without commit: ${outcome.reason}`;
      if (apply?.state === 'failed') throw new FlowEnd('failed', `${apply.detail}; traffic resumed on ${side}`);
      throw new FlowEnd('failed', `could not hold traffic: ${outcome.reason ?? 'the proxies did not pause'}; nothing applied, traffic resumed on ${side}`);
    }
    if (outcome.releasedEarly) {
      // committed, but not all of it under the hold: say so rather than claim either extreme
      const why = `the proxies stopped holding at their limit (controller.holdLimitSeconds ${d.cfg.controller.holdLimitSeconds}s) before the apply finished`;
      rec.warnings.push(`${why}: clients ran against ${side} while the last statements were applied`);
      await ctx.steps.run('resume traffic', async (s) => { s.detail = `${why}; proxies resumed on ${side}`; });
      rec.outcome = `applied on ${side}; traffic was held only for part of it (${why})`;
      return;
    }
    await ctx.steps.run('resume traffic', async (s) => { s.detail = `proxies resumed on ${side} (epoch ${outcome.epoch}${outcome.pauseMs !== undefined ? `, held ${Math.round(outcome.pauseMs)} ms` : ''})`; });
    rec.outcome = `applied on ${side} with traffic held`;
  },

  async recover(ctx) {
    const { rec } = ctx;
    const applied = rec.side ? await appliedBy(ctx.sideUrl(rec.side), rec).catch(() => false) : false;
    return applied
      ? { state: 'completed', outcome: `applied on ${rec.side}; the controller restarted before recording the end (the proxies resumed)` }
      : { state: 'rolled_back', outcome: 'the controller stopped while traffic was held; nothing applied (the transaction rolled back) and the proxies resumed' };
  },

  plan(cfg, rec, side: Side, statements) {
    return [rollbackPointPlan(cfg, rec, side), `hold traffic at the proxies (limit ${cfg.controller.holdLimitSeconds}s)`, `apply ${statements.length} statement(s) on ${side} ${describeMode(runMode(statements))}`, 'resume traffic'];
  },
};

/** Whether this migration's own run committed on the side (its ledger row carries the migration id). */
async function appliedBy(url: string, rec: StoredMigration): Promise<boolean> {
  return withClient(url, async (c) => {
    const l = await ledgerStatus(c, rec.name, rec.checksum);
    return l.status === 'applied' && l.row.migrationId === rec.id;
  }, CONTROLLER_APP);
}

/**
 * risky: the migration runs on the idle side, kept in sync with the active
 * one, then all traffic flips to it; a reverse stream carries the writes made
 * on the new side back to the old one, so that a rollback (a failed watch, a
 * restart before the watch passed) loses none.
 *
 * validate → rollback point → prepare idle side → copy → migrate idle side →
 * catch up → verify → switch delay → flip (final verify inside it) → watch →
 * finalize; or roll back after the flip.
 */
import type { PgflipConfig } from '../../config';
import { otherSide, Side } from '../../side';
import { connectClient, withClient } from '../../util/pg';
import { advanceSequencesToData, CONTROLLER_APP } from '../db';
import { copyLedger, recordLedger } from '../ledger';
import { announceCompat, buildCompat, dropCompatSchema, endCompat, needsCompat, oldVersionPlan } from '../compat';
import { readCatalog } from '../../sync';
import { applicationRoles } from '../roles';
import type { ForwardSync, PinnedFlipState, ReverseSync, SyncPort, TableVerifyResult } from '../ports';
import type { MigrationRecord } from '../types';
import { errMsg, FlowEnd } from '../steps';
import { controllerMetrics } from '../metrics';
import { probeSide } from '../health';
import { PreFlip, preFlipRate, TrafficSnapshot, trafficSnapshot, watchWindow, WatchVerdict } from '../watch';
import { sleep } from '../../util/sleep';
import { dryRunEnd, noMapping, rollbackPoint, rollbackPointPlan, validate } from './common';
import type { Flow, FlowContext, Recovery } from './flow';

export const RISKY_STEPS = ['validate', 'rollback point', 'prepare idle side', 'copy', 'migrate idle side', 'catch up', 'verify', 'switch delay', 'flip', 'final verify', 'watch', 'finalize'] as const;
/** steps of going back to the old side, outside the progress bar */
const ROLLBACK_STEPS = ['roll back', 'reverse catch-up'] as const;
export type RiskyStep = typeof RISKY_STEPS[number] | typeof ROLLBACK_STEPS[number];

type Ctx = FlowContext<RiskyStep>;

export const riskyFlow: Flow<RiskyStep> = {
  steps: RISKY_STEPS,
  run: (ctx) => run(ctx),
  recover: (ctx) => recover(ctx),

  plan(cfg, rec, side, statements) {
    const c = cfg.controller;
    const idle = otherSide(side);
    return [rollbackPointPlan(cfg, rec, side), `prepare ${idle} (schema of ${side})`, `copy ${side} → ${idle} under one snapshot, then stream changes`, `apply ${statements.length} statement(s) on ${idle}`, 'catch up and verify row counts and checksums',
      rec.switchDelaySeconds ? `wait ${rec.switchDelaySeconds}s` : 'no switch delay', `flip all proxies to ${idle}; fence ${side}; start reverse sync ${idle} → ${side}`,
      rec.noRollback ? `watch ${watchSeconds(cfg, rec)}s; no automatic rollback (--no-rollback)` : `watch ${watchSeconds(cfg, rec)}s${rec.timeoutSeconds ? ' (--timeout)' : ''} (error rate > the pre-flip rate + ${c.errorRateThreshold * 100}%, p95 > ${c.latencyFactor}× baseline, ${c.healthFailureLimit} failed health checks, ${idle} unreachable → roll back)`,
      'finalize: stop reverse sync, clean up'];
  },
};

async function run(ctx: Ctx): Promise<void> {
  const { rec, d, steps } = ctx;
  const { active, epoch } = await ctx.activeSide();
  rec.startSide ??= active;
  rec.startEpoch ??= epoch;
  const source = rec.startSide;
  const target = otherSide(source);
  rec.side = target;
  const { statements, mapping } = await validate(ctx, source);
  const sync = d.sync;
  const flipper = d.flipper;
  if (!sync || !flipper) throw new Error('risky migrations need the sync engine and the flip coordinator, which this controller was started without');
  // a rollback must carry every write made on the new side back to the old one: check it now
  if (!rec.noRollback) {
    const inv = await sync.inverse({ mapping: mapping ?? noMapping(), oldSide: source });
    rec.warnings.push(...inv.warnings.map((w) => `rollback: ${w}`));
    if (inv.problems.length) {
      rec.errors.push(...inv.problems);
      throw new FlowEnd('failed', `refused: a rollback could not carry the writes made after the flip back to ${source} (${inv.problems.join('; ')}); make the change reversible, or run with --no-rollback to give up automatic rollback; nothing changed`);
    }
  }
  // every sync stream this run opened: before the flip, a failure discards them all
  const syncs: SyncPort[] = [];
  const fwd = sync.forward({ migrationId: rec.id, source, target, sql: rec.sql, mapping: mapping ?? noMapping() });
  syncs.push(fwd);
  const problems = await fwd.checkPrerequisites();
  if (problems.length) {
    rec.errors.push(...problems);
    throw new FlowEnd('failed', `prerequisites not met: ${problems.join('; ')}; nothing changed`);
  }
  if (rec.dryRun) {
    if (fwd.estimate) rec.estimates = { ...(rec.estimates ?? {}), ...(await fwd.estimate()) };
    const oldCatalog = await withClient(ctx.sideUrl(source), readCatalog, CONTROLLER_APP);
    await dryRunEnd(ctx, riskyFlow, source, statements, oldVersionPlan(rec.id, mapping, oldCatalog, d.cfg.controller.compatSchema));
  }
  let flipped = false;
  let finalizing = false;
  let verdict: WatchVerdict = { ok: true, reason: 'no watch window' };
  // the application's traffic on the old side from here to the flip: its error rate before the flip
  const trafficAtStart = await trafficSnapshot(d.cfg.controller, d.store);
  let preFlip: PreFlip | undefined;
  let beforeFlip: TrafficSnapshot | undefined;
  /** the compatibility schema made for the old version, once announced */
  let compat: string | undefined;
  try {
    await rollbackPoint(ctx, source);
    await steps.run('prepare idle side', async (s) => {
      // slots an earlier migration left (a rollback with a dead side) would block rebuilding the idle side
      await sync.leftovers().catch((err) => rec.warnings.push(errMsg(err)));
      const how = await fwd.rebuildTarget();
      s.detail = `${target} has the schema of ${source} (${how})`;
    });
    await steps.run('copy', async (s) => {
      await fwd.initialCopy((p) => { rec.copy = { fraction: p.copyFraction ?? 0, rows: p.rowsCopied, bytes: p.bytesCopied, totalBytes: p.bytesTotal }; ctx.saveSoon(); });
      const done = fwd.progress();
      rec.copy = { fraction: 1, rows: done.rowsCopied, bytes: done.bytesCopied, totalBytes: done.bytesTotal };
      s.detail = `${rec.copy.rows ?? '?'} rows copied ${source} → ${target}`;
    });
    await steps.run('migrate idle side', async (s) => {
      await fwd.migrateTarget();
      await fwd.startStreaming();
      const [a, b] = await Promise.all([connectClient(ctx.sideUrl(source), CONTROLLER_APP), connectClient(ctx.sideUrl(target), CONTROLLER_APP)]);
      try {
        await copyLedger(a, b);
        await recordLedger(b, { name: rec.name, checksum: rec.checksum, class: rec.classification ?? 'risky', side: target, migrationId: rec.id, startedAt: rec.startedAt! });
        // the application still running the old version keeps its schema on the new side
        if (d.cfg.controller.compatSchema && needsCompat(mapping)) {
          const plan = await buildCompat({ migrationId: rec.id, mapping: mapping!, oldSide: a, newSide: b, roles: applicationRoles(d.cfg) });
          if (plan.views.length) {
            await announceCompat(d.store, rec, target, plan.schema);
            compat = plan.schema;
            rec.compat = { schema: plan.schema, side: target, state: 'prepared', views: plan.views };
          }
        }
      } finally { await Promise.all([a.end(), b.end()]).catch(() => undefined); }
      s.detail = `${statements.length} statement(s) applied on ${target}; streaming changes${compat ? `; the previous version served from ${compat}` : ''}`;
    });
    await steps.run('catch up', async (s) => {
      const p = await fwd.catchUp({ maxLagMs: 1000, timeoutMs: catchUpMs(d) }).catch(catchUpTimedOut(d));
      rec.lag = { seconds: p.lagSeconds ?? 0, bytes: p.lagBytes ?? 0 };
      s.detail = `lag ${rec.lag.seconds.toFixed(2)} s, ${rec.lag.bytes} bytes`;
    });
    // Compared at one instant while writes continue (the source at a snapshot, the target held
    // at that snapshot's position), so the pause does not grow with the data, and exact: a
    // table that differs here fails the migration before anything changes for the application.
    await steps.run('verify', async (s) => {
      const r = await fwd.verify();
      recordVerify(rec, r.results);
      if (!r.ok) throw new Error(`verification failed: ${r.problems.join('; ')}; traffic stayed on ${source}`);
      const parity = await schemaParity(fwd, source, target);
      s.detail = `row counts and checksums of ${r.tables} table(s) match; ${target}'s schema is ${source}'s with the migration applied (compared in ${parity.toFixed(1)} s)`;
    });
    if (rec.switchDelaySeconds > 0) {
      await steps.run('switch delay', async (s) => {
        await sleep(rec.switchDelaySeconds * 1000, ctx.signal);
        // the schema may have changed on the active side while waiting
        const parity = await schemaParity(fwd, source, target);
        s.detail = `${rec.switchDelaySeconds}s; schema parity checked again (${parity.toFixed(1)} s)`;
      });
    } else await steps.skip('switch delay', 'no --switch-delay');
    const rev = sync.reverse({ migrationId: rec.id, source: target, target: source, mapping: mapping ?? noMapping() });
    syncs.push(rev);
    // Made ready before the pause, so that inside it each is a few statements: the fence of
    // the old side, and the two connections that fix both sides as the flip leaves them.
    const fencer = await d.fence?.ready(source);
    const atFlip = await fwd.pinFlipState();
    try {
      await steps.run('flip', async (s) => {
        // The reverse stream is started before the pause, not in it (slot creation waits for a
        // consistent point, and starting a stream takes several connections), when that is
        // safe: until the flip only the forward apply writes to the new side, and the reverse
        // stream skips its transactions by their replication origin. Without the origin (no
        // superuser on the new side) it is created and started inside the pause, once the
        // forward stream has stopped.
        beforeFlip = await trafficSnapshot(d.cfg.controller, d.store);
        preFlip = preFlipRate(source, trafficAtStart, beforeFlip);
        const early = fwd.tagsOrigin();
        if (early) {
          await rev.createSlot();
          await rev.startStreaming();
          // nothing but the forward apply (which does not wait) commits on the new side before the flip
          if (d.cfg.controller.synchronousReverse) await confirmReverse(ctx, rev, target);
        }
        // what writes left behind meanwhile, applied while they still run: the pause's catch-up is then short
        await fwd.catchUp({ maxLagMs: 0, timeoutMs: catchUpMs(d) }).catch(catchUpTimedOut(d));
        // what the pause is made of, for the step's detail
        const held = new PhaseTimer();
        const o = await flipper.flip({
          target,
          deadlineMs: Math.min(d.cfg.controller.holdLimitSeconds * 1000, 10_000),
          onAbort: async () => { await d.fence?.unfence(source); await rev.stop().catch(() => undefined); },
          beforeCommit: async () => {
            // Fence first: a writer that bypasses the proxy (a cron job, another application)
            // either committed before the fence, and so before the goal of the final catch-up
            // read next, or is refused; nothing lands on the old side after the goal.
            await held.time('fence', async () => { await fencer?.fence(); });
            await held.time('final catch-up', () => fwd.catchUp({ maxLagMs: 0, timeoutMs: d.cfg.controller.holdLimitSeconds * 1000 }));
            // both sides as the flip leaves them, compared once traffic runs again (final verify)
            await held.time('pin', () => atFlip.pin());
            if (!early) {
              await fwd.stop();
              await held.time('reverse sync', async () => { await rev.createSlot(); await rev.startStreaming(); });
            }
          },
        });
        if (o.committed) flipped = true;
        if (o.committed && rec.compat) rec.compat.state = 'serving';
        // the old side is fenced and fully applied: nothing is left for the forward stream
        if (o.committed && early) await fwd.stop();
        // the stream was started inside the pause: commits made since the flip are not covered
        if (o.committed && !early && d.cfg.controller.synchronousReverse) await confirmReverse(ctx, rev, target);
        if (!o.committed) throw new Error(`flip aborted: ${o.reason ?? 'unknown'}; traffic stayed on ${source}`);
        const pause = o.pauseMs !== undefined ? `, pause ${Math.round(o.pauseMs)} ms: ${held.summary()}` : '';
        s.detail = `all proxies on ${target} (epoch ${o.epoch}${pause}); ${source} fenced, reverse sync running`;
      });
      verdict = await finalVerify(ctx, atFlip, source, target);
    } finally {
      await Promise.all([fencer?.close(), atFlip.close()]);
    }
    if (verdict.ok) {
      await steps.run('watch', async (s) => {
        verdict = await watchWindow({ cfg: d.cfg.controller, windowSeconds: watchSeconds(d.cfg, rec), store: d.store, url: ctx.sideUrl(target), side: target, signal: ctx.signal, preFlip, since: beforeFlip });
        s.detail = verdict.reason;
      });
    } else await steps.skip('watch', `not watched: ${verdict.reason}`);
    const v = verdict;
    if (!v.ok && !rec.noRollback) await rollBackAndEnd(ctx, { source, target, fwd, rev }, v.reason);
    finalizing = true;
    await steps.run('finalize', async (s) => {
      await rev.stop();
      await rev.cleanup();
      await fwd.cleanup();
      s.detail = v.ok ? 'reverse sync stopped, replication slots dropped' : `kept ${target} despite: ${v.reason} (--no-rollback)`;
    });
    rec.outcome = v.ok ? `switched to ${target}` : `switched to ${target}; watch failed (${v.reason}) but --no-rollback kept it`;
    if (rec.compat) rec.outcome += `; the previous schema version is served from ${rec.compat.schema} until \`pgflip finalize ${rec.id}\``;
  } catch (err) {
    if (err instanceof FlowEnd) throw err;
    // before the flip: nothing changed for the application; discard the idle side's sync state
    if (!flipped) {
      for (const sp of syncs) { await sp.stop().catch(() => undefined); await sp.cleanup().catch(() => undefined); }
      if (compat) await endServing(ctx);
      throw err;
    }
    await afterFlipFailure(ctx, { source, target, fwd, rev: syncs[1] as ReverseSync, finalizing, err });
  }
}

/**
 * The controller failed after the flip (not a failed verdict: its own error). Traffic is on the
 * new side and the reverse stream carries its writes back: what a failed watch would do is done
 * — roll back — unless --no-rollback, or the error came while finalizing (the migration stands;
 * what is left of its sync is dropped).
 */
async function afterFlipFailure(ctx: Ctx, o: { source: Side; target: Side; fwd: ForwardSync; rev: ReverseSync; finalizing: boolean; err: unknown }): Promise<never> {
  const { rec } = ctx;
  const msg = errMsg(o.err);
  rec.errors.push(msg);
  if (o.finalizing || rec.noRollback) {
    await dropSync(ctx, o);
    throw new FlowEnd('failed', `${msg}; traffic stays on ${o.target}, where the migration is applied${o.finalizing ? '' : ' (--no-rollback)'}`);
  }
  return rollBackAndEnd(ctx, o, `controller error after the flip: ${msg}`);
}

/** Drops what is left of a migration's sync after the flip; what cannot be dropped is a warning. */
async function dropSync(ctx: Ctx, o: { fwd: ForwardSync; rev?: ReverseSync }): Promise<void> {
  const warn = (what: string) => (e: unknown) => { ctx.rec.warnings.push(`could not drop the ${what} slot: ${errMsg(e)}`); };
  if (o.rev) {
    await o.rev.stop().catch(() => undefined);
    await o.rev.cleanup().catch(warn('reverse'));
  }
  await o.fwd.cleanup().catch(warn('forward'));
}

/**
 * controller.synchronousReverse: from here each commit on the new side waits until the reverse
 * stream applied it on the old one (a new side lost for good loses nothing); a warning when the
 * new side cannot do it.
 */
async function confirmReverse(ctx: Ctx, rev: ReverseSync, target: Side): Promise<void> {
  const why = await rev.requireConfirmation().catch((err) => errMsg(err));
  if (why) ctx.rec.warnings.push(`synchronous reverse sync (controller.synchronousReverse): ${why}; a write acknowledged on ${target} without waiting can be missing on the old side if ${target} is lost for good`);
}

/**
 * The sides as the flip left them (fixed inside the pause: the old one fenced and fully
 * streamed, the new one before any application write) must be equal; compared while traffic
 * runs on the new side. A difference is the flip carrying wrong data: a failed verdict, which
 * rolls back through the reverse stream (every write made on the new side goes back too).
 */
async function finalVerify(ctx: Ctx, atFlip: PinnedFlipState, source: Side, target: Side): Promise<WatchVerdict> {
  try {
    await ctx.steps.run('final verify', async (s) => {
      const r = await atFlip.verify();
      recordVerify(ctx.rec, r.results);
      if (!r.ok) throw new Error(`${target} differs from ${source} as the flip left them: ${r.problems.join('; ')}`);
      s.detail = `row counts and checksums of ${r.tables} table(s) equal as the flip left both sides`;
    });
    return { ok: true, reason: 'sides equal at the flip' };
  } catch (err) {
    // a comparison that cannot run (the new side died) is no proof either
    return { ok: false, reason: `verification after the flip: ${errMsg(err)}` };
  }
}

/** How long health is watched after the flip: the migration's --timeout, else controller.watchWindowSeconds. */
/** controller.catchUpTimeoutSeconds, in ms: the bound of every catch-up of a risky migration */
const catchUpMs = (d: { cfg: PgflipConfig }): number => d.cfg.controller.catchUpTimeoutSeconds * 1000;

/** A catch-up that ran out of time says which setting bounds it. */
const catchUpTimedOut = (d: { cfg: PgflipConfig }) => (err: unknown): never => {
  const m = errMsg(err);
  if (/catchUp: target still/.test(m)) throw new Error(`${m} (controller.catchUpTimeoutSeconds is ${d.cfg.controller.catchUpTimeoutSeconds})`);
  throw err;
};

function watchSeconds(cfg: PgflipConfig, rec: { timeoutSeconds?: number }): number {
  return rec.timeoutSeconds ?? cfg.controller.watchWindowSeconds;
}

/**
 * Rolls back and ends the flow, whatever the rollback meets; both sync slots are gone after it.
 * The rollback failing on its own (not "impossible": an error, an aborted flip) leaves traffic
 * where the store says it is: on the new side the migration stands, with every write there.
 */
async function rollBackAndEnd(ctx: Ctx, o: { source: Side; target: Side; fwd: ForwardSync; rev: ReverseSync }, reason: string): Promise<never> {
  const { rec } = ctx;
  try {
    await rollBackFlip(ctx, o.source, o.target, o.rev, reason);
  } catch (err) {
    // rolled back: the reverse slot went with the flip back (a dead new side keeps it)
    await dropSync(ctx, err instanceof FlowEnd && err.state === 'rolled_back' ? { fwd: o.fwd } : o);
    if (err instanceof FlowEnd) throw err;
    const msg = errMsg(err);
    rec.errors.push(msg);
    const { active } = await ctx.activeSide().catch(() => ({ active: o.target }));
    if (active === o.source) {
      await endServing(ctx);
      throw new FlowEnd('rolled_back', `rolled back to ${o.source}: ${reason}; then: ${msg}`);
    }
    throw new FlowEnd('failed', `rollback failed: ${msg}; traffic stays on ${o.target}, where the migration is applied and every acknowledged write is (the rollback was for: ${reason})`);
  }
  throw new Error('unreachable: rollBackFlip ends the flow');
}

/**
 * Flips back to the old side through the reverse stream; ends the flow rolled back. Only once
 * the reverse stream has applied everything the new side committed up to the pause: when it
 * cannot (a value that does not fit the old column, a stream that stopped), flipping back
 * would lose those writes, so traffic stays on the new side and the flow ends failed with
 * "rollback impossible: …".
 */
async function rollBackFlip(ctx: Ctx, source: Side, target: Side, rev: ReverseSync, reason: string): Promise<never> {
  const { rec, d } = ctx;
  const holdMs = d.cfg.controller.holdLimitSeconds * 1000;
  let impossible: string | undefined;
  /**
   * The reverse stream failed. With the new side alive, flipping back would drop what it has not
   * carried: refuse. With the new side dead, what it applied so far is all there is, and staying
   * would be an outage: go back, saying what may be missing.
   */
  const reverseFailed = async (err: unknown): Promise<void> => {
    const probe = await probeSide(ctx.sideUrl(target));
    if (!probe.up) {
      rec.warnings.push(`final reverse catch-up failed (${errMsg(err)}) and ${target} is unreachable (${probe.error}): writes acknowledged on ${target} after its last synced change are not on ${source}`);
      return;
    }
    impossible = `the reverse stream cannot carry the writes made on ${target} back to ${source}: ${errMsg(err)}`;
    throw new Error(impossible);
  };
  await ctx.steps.run('roll back', async (s) => {
    // most of the backlog outside the pause; a stream that already stopped shows here
    let failed = false;
    await rev.catchUp({ maxLagMs: 1000, timeoutMs: catchUpMs(d) }).catch(async (err) => { failed = true; await reverseFailed(err); });
    let fencedTarget = false;
    // a fence that failed part-way may have revoked: an abort lifts it from any fence begun
    let fencing = false;
    const o = await d.flipper!.flip({
      target: source,
      deadlineMs: 10_000,
      onAbort: async () => {
        // the side traffic stays on first: its sessions resume there
        if (fencing) await d.fence?.unfence(target);
        await d.fence?.fence(source);
      },
      beforeCommit: async () => {
        // the side left is fenced first, as in the forward flip: a direct writer there either
        // committed before the final reverse catch-up's goal or is refused
        fencing = true;
        fencedTarget = await fenceLeaving(ctx, target);
        if (!failed) await rev.catchUp({ maxLagMs: 0, timeoutMs: holdMs }).catch(reverseFailed);
        await rev.stop();
        await advanceSequencesToData(ctx.sideUrl(source));
        await d.fence?.unfence(source);
      },
    });
    if (!o.committed) throw new Error(`rollback flip aborted: ${o.reason}; traffic is still on ${target}`);
    await rev.cleanup().catch(() => undefined);
    s.detail = `traffic back on ${source} (epoch ${o.epoch}); writes made on ${target} were synced back; ${target} ${fencedTarget ? 'fenced' : 'not fenced (unreachable)'}`;
  }).catch((err) => {
    if (!impossible) throw err;
    controllerMetrics().rollbackImpossible.inc();
    throw new FlowEnd('failed', `rollback impossible: ${impossible}; traffic stays on ${target}, where the migration is applied and every acknowledged write is (the rollback was for: ${reason})`);
  });
  // the old side serves the old version itself
  await endServing(ctx);
  throw new FlowEnd('rolled_back', `rolled back to ${source}: ${reason}`);
}

/** The migration's compatibility schema is no longer served; one that cannot be dropped is a warning. */
async function endServing(ctx: Ctx): Promise<void> {
  const { rec } = ctx;
  await endCompat(ctx.d.store, rec.id, (c) => withClient(ctx.sideUrl(c.side), (cl) => dropCompatSchema(cl, c.schema), CONTROLLER_APP))
    .then((c) => { if (c && rec.compat) rec.compat.state = 'dropped'; })
    .catch((err) => rec.warnings.push(`could not drop the compatibility schema: ${errMsg(err)}`));
}

/**
 * Fences the side a rollback leaves. A dead side cannot be fenced and takes no writes while it
 * is down: that is a warning, not a reason to stay on it.
 */
async function fenceLeaving(ctx: Ctx, side: Side): Promise<boolean> {
  if (!ctx.d.fence) return false;
  try {
    await ctx.d.fence.fence(side);
    return true;
  } catch (err) {
    const probe = await probeSide(ctx.sideUrl(side));
    if (probe.up) throw err;
    ctx.rec.warnings.push(`${side} could not be fenced (${errMsg(err)}; unreachable: ${probe.error}): fence it before it serves anything again`);
    return false;
  }
}

/** Before the flip nothing changed for the application: discard. After it, go back to the old side. */
async function recover(ctx: Ctx): Promise<Recovery> {
  const { rec } = ctx;
  const { active } = await ctx.activeSide();
  const source = rec.startSide ?? active;
  const last = rec.steps.at(-1)?.name;
  if (active !== source) {
    // --no-rollback, or the watch had passed: the migration stands; finish it forward
    if (rec.noRollback || ctx.steps.ran('watch', 'done') || ctx.steps.ran('finalize')) {
      await dropSyncLeftovers(ctx);
      return { state: 'completed', outcome: `switched to ${active}; the controller restarted during ${last} and finished it` };
    }
    // After the flip the reverse slot on the new side holds every write made there since the
    // flip, including those made while no controller ran: carry them back before flipping back.
    return recoverReverse(ctx, source, active);
  }
  await dropSyncLeftovers(ctx);
  return { state: 'rolled_back', outcome: `the controller restarted during ${last}; the idle side's sync state was discarded, ${source} unchanged` };
}

/** Drop the slots and publications a migration left on both sides; a failure becomes a warning. */
async function dropSyncLeftovers(ctx: Ctx): Promise<void> {
  await ctx.d.sync?.leftovers(ctx.rec.id).catch((err) => ctx.rec.warnings.push(`could not drop the sync slots: ${errMsg(err)}`));
}

/**
 * Resume the reverse sync of a migration that had flipped when the controller stopped, let it
 * catch up while writes still run (the backlog of the outage, outside any pause), then roll
 * back through it. Where the reverse stream cannot be resumed or catch up, traffic stays on
 * the new side: flipping back would lose the writes made there.
 */
async function recoverReverse(ctx: Ctx, source: Side, target: Side): Promise<Recovery> {
  const { rec, d } = ctx;
  let rev: ReverseSync | undefined;
  try {
    await ctx.steps.run('reverse catch-up', async (s) => {
      // the mapping, as the run computed it: the file classified against the old side's catalog
      const { mapping } = await d.classifier.classify(rec.sql, { fileName: rec.name, databaseUrl: ctx.sideUrl(source) });
      rev = d.sync!.reverse({ migrationId: rec.id, source: target, target: source, mapping: mapping ?? noMapping() });
      await rev.startStreaming();
      const p = await rev.catchUp({ timeoutMs: catchUpMs(d) }).catch(catchUpTimedOut(d));
      s.detail = `writes made on ${target} since the flip applied on ${source} (lag ${(p.lagSeconds ?? 0).toFixed(2)} s)`;
    });
  } catch (err) {
    await rev?.stop().catch(() => undefined);
    return { state: 'failed', outcome: `the controller restarted after the flip and could not resume reverse sync (${errMsg(err)}): traffic stays on ${target}, where the migration is applied; flipping back now would lose the writes made there` };
  }
  const warnings = rec.warnings.length;
  try {
    return await rollBackFlip(ctx, source, target, rev!, 'the controller restarted after the flip');
  } catch (err) {
    await rev!.stop().catch(() => undefined);
    const caughtUp = !rec.warnings.slice(warnings).some((w) => w.startsWith('final reverse catch-up failed'));
    await dropSyncLeftovers(ctx);
    if (err instanceof FlowEnd) return { state: err.state, outcome: caughtUp ? `${err.outcome}; the writes made on ${target} since the flip were synced back first` : err.outcome };
    return { state: 'failed', outcome: `the controller restarted after the flip and could not roll back: ${errMsg(err)}` };
  }
}

/** Durations of the named phases of a piece of work, in the order they ran. */
class PhaseTimer {
  private readonly phases: [string, number][] = [];

  async time<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try { return await fn(); } finally { this.phases.push([name, performance.now() - t0]); }
  }

  summary(): string {
    return this.phases.map(([n, ms]) => `${n} ${Math.round(ms)} ms`).join(', ');
  }
}

/** Keeps the latest comparison of each table on the record (the status page lists them). */
function recordVerify(rec: MigrationRecord, results: TableVerifyResult[] | undefined): void {
  if (!results) return;
  const at = new Date().toISOString();
  const byTable = new Map((rec.verify ?? []).map((v) => [v.table, v]));
  for (const r of results) byTable.set(r.table, { ...r, at });
  rec.verify = [...byTable.values()];
}

/**
 * DDL on the active side since the copy is not replicated: it would vanish with the flip.
 * Fails before the pause, the objects named; resolves to the comparison's seconds.
 */
async function schemaParity(fwd: ForwardSync, source: Side, target: Side): Promise<number> {
  const parity = await fwd.schemaParity();
  if (parity.differences.length) {
    const shown = parity.differences.slice(0, 10).join('; ');
    const more = parity.differences.length > 10 ? `; and ${parity.differences.length - 10} more` : '';
    throw new Error(`schema parity failed: ${target}'s schema is not ${source}'s with the migration applied (${shown}${more}); traffic stayed on ${source}`);
  }
  return parity.seconds;
}

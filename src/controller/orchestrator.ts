/**
 * The orchestrator: one migration at a time. It takes the leader lock,
 * accepts, aborts and times out migrations, runs each through the flow of its
 * class (flows/) with every step start and end saved to the state store, and
 * records how it ended. A restarted controller repairs what its predecessor
 * left (recovery.ts) and lets the unfinished migration's flow resume it or roll
 * it back (Flow.recover).
 */
import { randomBytes } from 'node:crypto';
import { adminUrl, PgflipConfig } from '../config';
import type { Side } from '../side';
import { StateStoreUnreachable, type StateStore } from '../state/store';
import { logger } from '../observability/logger';
import { Applier, ApplyCancelled } from './apply';
import type { AuditLog } from './audit';
import { flowOf, StepName } from './flows';
import type { FlowContext } from './flows/flow';
import { Leadership } from './leadership';
import { switchSides, ManualSwitchResult } from './manual-switch';
import { controllerMetrics } from './metrics';
import type { ClassifyPort, FencePort, FlipPort, SyncFactory } from './ports';
import { checksumOf, ConflictError, MigrationRecords, NotFoundError, publicRecord } from './records';
import { repairAfterRestart } from './recovery';
import { CONTROLLER_APP } from './db';
import { dropCompatSchema, endCompat, noOldVersionSessions, releaseCompat, servingCompat } from './compat';
import { ledgerRows } from './ledger';
import { withClient } from '../util/pg';
import type { RollbackPoints } from './rollback-points';
import { errMsg, FlowEnd, StepFaults, StepRunner } from './steps';
import { isTerminal, MigrationRecord, MigrationRequest, StoredMigration } from './types';

export interface OrchestratorDeps {
  cfg: PgflipConfig;
  store: StateStore;
  classifier: ClassifyPort;
  audit: AuditLog;
  rollbackPoints: RollbackPoints;
  flipper?: FlipPort;
  sync?: SyncFactory;
  fence?: FencePort;
  /** identifies this controller in the leader lock */
  holder?: string;
  /** tests only: faults injected at named steps (steps.ts) */
  faults?: StepFaults<StepName>;
}

const now = (): string => new Date().toISOString();

interface Running { rec: StoredMigration; applier?: Applier; abort: AbortController }

export class Orchestrator {
  readonly records: MigrationRecords;
  private readonly leadership: Leadership;
  private running: Running | undefined;
  private readonly done = new Map<string, Promise<void>>();
  private stopped = false;
  /** set while a restarted controller finishes what its predecessor left (no manual switch meanwhile) */
  private recovering = false;

  constructor(private readonly d: OrchestratorDeps) {
    this.leadership = new Leadership(d.store, d.holder ?? `controller-${process.pid}-${randomBytes(3).toString('hex')}`);
    this.records = new MigrationRecords(d.store, () => this.leadership.token);
  }

  get cfg(): PgflipConfig { return this.d.cfg; }
  get store(): StateStore { return this.d.store; }
  get isLeader(): boolean { return this.leadership.isLeader; }
  get leaseToken(): number | undefined { return this.leadership.token; }
  get runningId(): string | undefined { return this.running?.rec.id; }
  /** fencing of the old side, when application roles are configured */
  get fence(): FencePort | undefined { return this.d.fence; }

  sideUrl(side: Side): string { return adminUrl(this.d.cfg, side); }

  async activeSide(): Promise<{ active: Side; epoch: number }> {
    return (await this.d.store.getActive()) ?? (await this.d.store.initActive(this.d.cfg.active));
  }

  /** Takes the leader lock (waiting up to waitMs for a stale one to expire), then recovers. */
  async start(waitMs = 15_000): Promise<void> {
    await this.leadership.acquire(waitMs);
    await this.activeSide();
    this.recovering = true;
    try { await this.recover(); } finally { this.recovering = false; }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.leadership.stopRenewing();
    const r = this.running;
    if (r) {
      r.abort.abort();
      await r.applier?.cancel();
    }
    // a flow recording its end is no longer `running`: wait for it too
    await Promise.all([...this.done.values()].map((p) => p.catch(() => undefined)));
    await this.leadership.release();
  }

  /** Wait for a migration's flow to end (tests, CLI in-process). */
  async settled(id: string): Promise<void> { await this.done.get(id); }

  get(id: string): Promise<MigrationRecord> { return this.records.get(id); }
  list(limit?: number): Promise<MigrationRecord[]> { return this.records.list(limit); }
  current(): Promise<MigrationRecord | undefined> { return this.records.current(); }

  async submit(req: MigrationRequest, who: string): Promise<MigrationRecord> {
    if (!this.isLeader) throw new ConflictError('this controller is not the leader (another controller runs migrations)');
    if (this.running || (await this.current())) {
      throw new ConflictError(`migration ${this.running?.rec.id ?? (await this.current())?.id} is running; one migration at a time`);
    }
    const id = `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}-${randomBytes(3).toString('hex')}`;
    const rec: StoredMigration = {
      id, name: req.name, checksum: checksumOf(req.sql), type: req.type, dryRun: req.dryRun, noRollback: req.noRollback,
      timeoutSeconds: req.timeoutSeconds, switchDelaySeconds: req.switchDelaySeconds,
      state: 'queued', progress: 0, steps: [], errors: [], warnings: [], requestedBy: who, createdAt: now(), sql: req.sql,
    };
    if (req.timeoutSeconds && req.type !== 'risky') {
      rec.warnings.push(`--timeout ${req.timeoutSeconds}: the health-check window after a risky migration's switch; a ${req.type} migration has no switch, so it is not used`);
    }
    await this.records.add(rec, this.d.cfg.controller.historyLimit);
    this.launch(rec);
    return publicRecord(rec);
  }

  async abort(id: string): Promise<MigrationRecord> {
    const rec = await this.records.getStored(id);
    if (!rec) throw new NotFoundError(`migration ${id} not found`);
    if (isTerminal(rec.state)) throw new ConflictError(`migration ${id} already ended: ${rec.state}`);
    const r = this.running;
    if (!r || r.rec.id !== id) throw new ConflictError(`migration ${id} is not running on this controller`);
    r.rec.abortRequested = true;
    await this.records.save(r.rec);
    r.abort.abort(new Error('abort requested'));
    await r.applier?.cancel();
    return publicRecord(r.rec);
  }

  /**
   * New sessions get the new schema version of `id`'s migration; those alive keep theirs
   * (controller/compat.ts). Refused unless the migration serves its previous version.
   */
  async release(id: string): Promise<MigrationRecord> {
    if (!this.isLeader) throw new ConflictError('this controller is not the leader');
    const rec = await this.records.getStored(id);
    if (!rec) throw new NotFoundError(`migration ${id} not found`);
    if (!rec.compat || rec.compat.state === 'dropped') throw new ConflictError(`migration ${id} serves no previous schema version`);
    if (rec.compat.state === 'prepared') throw new ConflictError(`migration ${id} has not flipped yet: every session uses the old side's schema`);
    await releaseCompat(this.d.store, id).catch((err) => { throw new ConflictError(errMsg(err)); });
    rec.compat.state = 'released';
    await this.records.save(rec);
    return publicRecord(rec);
  }

  /**
   * Once a released migration's old version has no session left in the fleet, its
   * compatibility schema goes: called on a timer by the leader (wiring.ts).
   */
  async finalizeWhenUnused(): Promise<void> {
    if (!this.isLeader || this.stopped) return;
    const c = await servingCompat(this.d.store);
    if (!c || c.defaultVersion !== 'new' || this.running?.rec.id === c.migrationId) return;
    if (!(await noOldVersionSessions(this.d.store, c.migrationId))) return;
    await this.finalize(c.migrationId);
    await this.d.audit.write({ who: 'controller', via: 'controller', action: 'migration.finalize', target: c.migrationId, outcome: 'done', detail: { reason: 'released, and no session of the old version is left' } });
    logger().info({ migration: c.migration, schema: c.schema }, 'previous schema version dropped: released and no old-version session left');
  }

  /**
   * Drops the previous schema version of `id`'s migration: sessions still on it see the new
   * schema from their next statement. Refused while the migration runs.
   */
  async finalize(id: string): Promise<MigrationRecord> {
    if (!this.isLeader) throw new ConflictError('this controller is not the leader');
    const rec = await this.records.getStored(id);
    if (!rec) throw new NotFoundError(`migration ${id} not found`);
    if (this.running?.rec.id === id) throw new ConflictError(`migration ${id} is running; finalize it once it ended`);
    if (!rec.compat || rec.compat.state === 'dropped') throw new ConflictError(`migration ${id} serves no previous schema version`);
    await endCompat(this.d.store, id, (c) => withClient(this.sideUrl(c.side), (cl) => dropCompatSchema(cl, c.schema), CONTROLLER_APP));
    rec.compat.state = 'dropped';
    await this.records.save(rec);
    return publicRecord(rec);
  }

  /** A manual flip (manual-switch.ts); refused while a migration runs or a predecessor's is being finished. */
  async switchTo(target: Side, opts: { force?: boolean } = {}): Promise<ManualSwitchResult> {
    if (!this.d.store.reachable()) throw new StateStoreUnreachable(`switch to ${target}`);
    if (!this.isLeader) throw new ConflictError('this controller is not the leader');
    if (this.running) throw new ConflictError(`migration ${this.running.rec.id} is running; abort it first`);
    if (this.recovering) throw new ConflictError('the controller is finishing a migration left by its predecessor; try again shortly');
    if (!this.d.flipper) throw new Error('no flip coordinator configured');
    const from = await this.activeSide();
    if (!opts.force && from.active !== target) await this.refuseStaleTarget(from.active, target);
    return switchSides({ flipper: this.d.flipper, fence: this.d.fence }, from, target);
  }

  /**
   * A side that does not hold the migrations the active side holds stopped receiving writes when
   * one of them ran (a risky migration leaves the old side behind once it finalizes): switching
   * there serves old data. The ledgers tell; where a side cannot be read (the active one died),
   * the switch is left to go ahead.
   */
  private async refuseStaleTarget(active: Side, target: Side): Promise<void> {
    const read = (side: Side) => withClient(this.sideUrl(side), ledgerRows, CONTROLLER_APP).catch(() => undefined);
    const [a, t] = await Promise.all([read(active), read(target)]);
    if (!a || !t) return;
    const key = (r: { name: string; checksum: string }) => `${r.name}\0${r.checksum}`;
    const onlyActive = a.filter((r) => !t.some((x) => key(x) === key(r))).map((r) => r.name);
    const onlyTarget = t.filter((r) => !a.some((x) => key(x) === key(r))).map((r) => r.name);
    if (!onlyActive.length && !onlyTarget.length) return;
    const what = [
      onlyActive.length ? `${onlyActive.join(', ')} applied on ${active} only` : '',
      onlyTarget.length ? `${onlyTarget.join(', ')} applied on ${target} only` : '',
    ].filter(Boolean).join('; ');
    throw new ConflictError(`${target} is not in step with ${active} (${what}): it stopped receiving writes then, and a switch would serve old data; pass force to switch anyway`);
  }

  /** The flow's view of one migration: its step runner, its abort signal, saving. */
  private context(rec: StoredMigration, running?: Running): FlowContext<StepName> {
    const save = () => this.records.save(rec);
    return {
      d: this.d, rec, signal: running?.abort.signal,
      steps: new StepRunner<StepName>({
        rec, save, faults: this.d.faults,
        progressSteps: flowOf(rec.type).steps,
        stopReason: () => {
          const signal = running?.abort.signal;
          if (!rec.abortRequested && !signal?.aborted && !this.stopped) return undefined;
          return signal?.reason ? errMsg(signal.reason) : 'abort requested';
        },
      }),
      sideUrl: (side) => this.sideUrl(side),
      activeSide: () => this.activeSide(),
      save,
      saveSoon: () => this.records.saveSoon(rec),
      setApplier: (a) => { if (running) running.applier = a; },
    };
  }

  private launch(rec: StoredMigration, resume = false): void {
    const abort = new AbortController();
    const running: Running = { rec, abort };
    this.running = running;
    // No budget for the whole migration: timeoutSeconds is how long health is watched after a
    // risky flip (flows/risky.ts). A healthy migration is never aborted because time passed;
    // a blocked statement is bounded by lock_timeout and its retries, a flip by its deadline.
    const p = this.execute(this.context(rec, running), resume).finally(() => {
      if (this.running === running) this.running = undefined;
    });
    this.done.set(rec.id, p);
  }

  private async execute(ctx: FlowContext<StepName>, resume: boolean): Promise<void> {
    const { rec } = ctx;
    const started = Date.now();
    rec.state = 'running';
    rec.startedAt ??= now();
    try {
      await ctx.save();
      await flowOf(rec.type).run(ctx, { resume });
      await this.finish(rec, 'completed', rec.outcome ?? 'applied');
    } catch (err) {
      if (err instanceof FlowEnd) {
        await this.finish(rec, err.state, err.outcome);
      } else {
        const aborted = rec.abortRequested || err instanceof ApplyCancelled;
        const msg = errMsg(err);
        rec.errors.push(msg);
        const reason = ctx.signal?.reason;
        // where the application's traffic is, unless the error says it
        const where = /\btraffic\b/.test(msg) ? '' : await this.activeSide().then(({ active }) => `; traffic on ${active}`, () => '');
        await this.finish(rec, aborted ? 'aborted' : 'failed', aborted ? `aborted (${reason ? errMsg(reason) : 'abort requested'}): ${msg}${where}` : `${msg}${where}`);
      }
    }
    const m = controllerMetrics();
    const final: MigrationRecord['state'] = (rec as MigrationRecord).state;
    m.duration.observe((Date.now() - started) / 1000);
    if (final !== 'completed') m.errors.inc();
  }

  private async finish(rec: StoredMigration, state: StoredMigration['state'], outcome: string): Promise<void> {
    // the flow's work is over: once its end is saved, the next migration may start (`pgflip
    // migrate a.sql b.sql` submits b as soon as it reads a's end; earlier it could get 409)
    if (this.running?.rec === rec) this.running = undefined;
    rec.state = state;
    rec.outcome = outcome;
    rec.finishedAt = now();
    if (state === 'completed') rec.progress = 1;
    for (const s of rec.steps) if (s.state === 'running') { s.state = 'failed'; s.finishedAt = now(); }
    try {
      await this.records.save(rec);
      await this.records.clearCurrent();
    } catch (err) {
      logger().error({ err: errMsg(err), id: rec.id }, 'could not record the end of a migration');
    }
    await this.d.audit.write({ who: 'controller', via: 'controller', action: 'migration.finished', target: rec.id, outcome: state, detail: { name: rec.name, type: rec.type, reason: outcome } });
    logger().info({ id: rec.id, name: rec.name, state, outcome }, 'migration finished');
  }

  /** After taking the lock: repair what a dead predecessor left, then end or resume its migration. */
  private async recover(): Promise<void> {
    await repairAfterRestart({ store: this.d.store, audit: this.d.audit, fence: this.d.fence, activeSide: () => this.activeSide() });
    const id = await this.records.currentId();
    if (!id) return;
    const rec = await this.records.getStored(id);
    if (!rec || isTerminal(rec.state)) return;
    const last = rec.steps.at(-1)?.name;
    logger().warn({ id, state: rec.state, step: last }, 'resuming an unfinished migration after a restart');
    await this.d.audit.write({ who: 'controller', via: 'controller', action: 'migration.recover', target: id, outcome: 'started', detail: { lastStep: last } });
    for (const s of rec.steps) if (s.state === 'running') { s.state = 'failed'; s.detail = 'interrupted: the controller stopped'; s.finishedAt = now(); }
    rec.warnings.push(`the controller restarted during ${last ?? 'start-up'}`);
    // a dry run changed nothing: it runs again
    const end = rec.dryRun ? 'rerun' : await flowOf(rec.type).recover(this.context(rec));
    if (end === 'rerun') this.launch(rec, true);
    else await this.finish(rec, end.state, end.outcome);
  }
}

/**
 * The orchestrator (DESIGN §7): one migration at a time, as a state machine
 * whose every step start and end is written to the state store before the next
 * step begins. A restarted controller reads the unfinished record and resumes
 * it or rolls it back (recovery.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { adminUrl, otherSide, PgflipConfig, Side } from '../config';
import type { StateStore, LeaderLease } from '../state/store';
import type { SchemaMapping } from '../classifier/mapping';
import { logger } from '../observability/logger';
import { Applier, ApplyCancelled, ApplyError } from './apply';
import type { AuditLog } from './audit';
import { connectSide, advanceSequencesToData } from './db';
import { ledgerStatus, copyLedger } from './ledger';
import { controllerMetrics } from './metrics';
import type { ClassifyPort, FencePort, FlipPort, SyncFactory, SyncPort } from './ports';
import type { RollbackPoints } from './rollback-points';
import { runMode, splitStatements, SqlStatement, SqlSyntaxError } from './statements';
import {
  classRank, isTerminal, MigrationClass, MigrationRecord, MigrationState, MigrationRequest, StatementProgress, StepRecord, StoredMigration,
} from './types';
import { watchWindow, WatchVerdict } from './watch';

export const STORE_KEYS = {
  migration: (id: string) => `migration:${id}`,
  current: 'controller:current',
  history: 'migrations',
  baseline: 'controller:baseline',
} as const;

export class ConflictError extends Error {}
export class NotFoundError extends Error {}

/** Ends a flow early with a final state (skip, refusal, dry run, abort). */
class FlowEnd extends Error {
  constructor(readonly state: 'completed' | 'failed' | 'aborted' | 'rolled_back', readonly outcome: string) {
    super(outcome);
  }
}

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
}

const now = (): string => new Date().toISOString();
const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));
export const checksumOf = (sql: string): string => createHash('sha256').update(sql, 'utf8').digest('hex');

/** the mapping of a file that renames, retypes, adds and drops nothing */
const noMapping = (): SchemaMapping => ({ tables: [], newTables: [], droppedTables: [] });

/** further comparisons, each after a catch-up, of tables that differed while writes ran */
const VERIFY_RETRIES = 2;

/** Flow steps with their share of the progress bar. */
const FLOW_STEPS: Record<MigrationClass, string[]> = {
  safe: ['validate', 'rollback point', 'apply', 'ledger'],
  maintenance: ['validate', 'rollback point', 'hold traffic', 'apply', 'resume traffic'],
  risky: ['validate', 'rollback point', 'prepare idle side', 'copy', 'migrate idle side', 'catch up', 'verify', 'switch delay', 'flip', 'final verify', 'watch', 'finalize'],
};

export class Orchestrator {
  private running: { rec: StoredMigration; applier?: Applier; syncs: SyncPort[]; abort: AbortController } | undefined;
  private lease: LeaderLease | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private readonly holder: string;
  private readonly done = new Map<string, Promise<void>>();
  private stopped = false;
  /** set while a restarted controller finishes what its predecessor left (no manual switch meanwhile) */
  private recovering = false;

  constructor(private readonly d: OrchestratorDeps) {
    this.holder = d.holder ?? `controller-${process.pid}-${randomBytes(3).toString('hex')}`;
  }

  get cfg(): PgflipConfig { return this.d.cfg; }
  get store(): StateStore { return this.d.store; }
  get isLeader(): boolean { return this.lease !== undefined; }
  get leaseToken(): number | undefined { return this.lease?.token; }
  get runningId(): string | undefined { return this.running?.rec.id; }

  sideUrl(side: Side): string { return adminUrl(this.d.cfg, side); }

  async activeSide(): Promise<{ active: Side; epoch: number }> {
    return (await this.d.store.getActive()) ?? (await this.d.store.initActive(this.d.cfg.active));
  }

  // ---------- leadership and start-up ----------

  /** Takes the leader lock (waiting up to waitMs for a stale one to expire), then recovers. */
  async start(waitMs = 15_000): Promise<void> {
    const ttl = 5000;
    const deadline = Date.now() + waitMs;
    for (;;) {
      const lease = await this.d.store.acquireLeadership(this.holder, ttl);
      if (lease) { this.lease = lease; break; }
      if (Date.now() > deadline) {
        const other = await this.d.store.currentLeader();
        throw new Error(`another controller leads (${other?.holder ?? 'unknown'}); only one controller may run migrations`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    this.renewTimer = setInterval(() => {
      if (!this.lease) return;
      this.d.store.renewLeadership(this.lease, ttl).then((ok) => {
        if (!ok) { logger().error('controller lost the leader lock'); this.lease = undefined; }
      }).catch((err) => logger().warn({ err: errMsg(err) }, 'leader renew failed'));
    }, ttl / 3);
    this.renewTimer.unref();
    await this.activeSide();
    this.recovering = true;
    try { await this.recover(); } finally { this.recovering = false; }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.renewTimer) clearInterval(this.renewTimer);
    const r = this.running;
    if (r) {
      r.abort.abort();
      await r.applier?.cancel();
      await this.done.get(r.rec.id)?.catch(() => undefined);
    }
    if (this.lease) await this.d.store.releaseLeadership(this.lease).catch(() => undefined);
    this.lease = undefined;
  }

  /** Wait for a migration's flow to end (tests, CLI in-process). */
  async settled(id: string): Promise<void> { await this.done.get(id); }

  // ---------- persistence ----------

  private async save(rec: StoredMigration): Promise<void> {
    const r = await this.d.store.setJson(STORE_KEYS.migration(rec.id), rec, { fencingToken: this.lease?.token });
    if (!r.ok && r.reason === 'fenced') throw new Error('this controller is no longer the leader; stopping the migration');
    controllerMetrics().progress.set(rec.progress);
  }

  private lastSave = 0;
  /** Live progress (copy %, lag) without a store write per event: at most every 500 ms. */
  private saveSoon(rec: StoredMigration): void {
    if (Date.now() - this.lastSave < 500) return;
    this.lastSave = Date.now();
    void this.save(rec).catch(() => undefined);
  }

  async getStored(id: string): Promise<StoredMigration | undefined> {
    return (await this.d.store.getJson<StoredMigration>(STORE_KEYS.migration(id)))?.value ?? undefined;
  }

  async get(id: string): Promise<MigrationRecord> {
    const rec = await this.getStored(id);
    if (!rec) throw new NotFoundError(`migration ${id} not found`);
    return publicRecord(rec);
  }

  async list(limit = 50): Promise<MigrationRecord[]> {
    const ids = await this.d.store.listRange<string>(STORE_KEYS.history, limit);
    const recs = await Promise.all(ids.map((id) => this.getStored(id)));
    return recs.filter((r): r is StoredMigration => !!r).map(publicRecord);
  }

  async current(): Promise<MigrationRecord | undefined> {
    const cur = await this.d.store.getJson<{ id: string }>(STORE_KEYS.current);
    if (!cur?.value?.id) return undefined;
    const rec = await this.getStored(cur.value.id);
    return rec && !isTerminal(rec.state) ? publicRecord(rec) : undefined;
  }

  // ---------- submit, abort ----------

  async submit(req: MigrationRequest, who: string): Promise<MigrationRecord> {
    if (!this.lease) throw new ConflictError('this controller is not the leader (another controller runs migrations)');
    if (this.running || (await this.current())) {
      throw new ConflictError(`migration ${this.running?.rec.id ?? (await this.current())?.id} is running; one migration at a time`);
    }
    const id = `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}-${randomBytes(3).toString('hex')}`;
    const rec: StoredMigration = {
      id, name: req.name, checksum: checksumOf(req.sql), type: req.type, dryRun: req.dryRun, noRollback: req.noRollback,
      timeoutSeconds: req.timeoutSeconds, switchDelaySeconds: req.switchDelaySeconds,
      state: 'queued', progress: 0, steps: [], errors: [], warnings: [], requestedBy: who, createdAt: now(), sql: req.sql,
    };
    await this.save(rec);
    await this.d.store.setJson(STORE_KEYS.current, { id }, { fencingToken: this.lease.token });
    await this.d.store.appendCapped(STORE_KEYS.history, id, this.d.cfg.controller.historyLimit);
    this.launch(rec);
    return publicRecord(rec);
  }

  async abort(id: string): Promise<MigrationRecord> {
    const rec = await this.getStored(id);
    if (!rec) throw new NotFoundError(`migration ${id} not found`);
    if (isTerminal(rec.state)) throw new ConflictError(`migration ${id} already ended: ${rec.state}`);
    const r = this.running;
    if (!r || r.rec.id !== id) throw new ConflictError(`migration ${id} is not running on this controller`);
    r.rec.abortRequested = true;
    await this.save(r.rec);
    r.abort.abort(new Error('abort requested'));
    await r.applier?.cancel();
    return publicRecord(r.rec);
  }

  private launch(rec: StoredMigration, resume = false): void {
    const abort = new AbortController();
    this.running = { rec, syncs: [], abort };
    let timer: NodeJS.Timeout | undefined;
    if (rec.timeoutSeconds) {
      timer = setTimeout(() => {
        rec.warnings.push(`timeout of ${rec.timeoutSeconds}s reached: aborting`);
        rec.abortRequested = true;
        abort.abort(new Error(`timeout of ${rec.timeoutSeconds}s`));
        void this.running?.applier?.cancel();
      }, rec.timeoutSeconds * 1000);
      timer.unref();
    }
    const p = this.execute(rec, resume).finally(() => {
      if (timer) clearTimeout(timer);
      this.running = undefined;
    });
    this.done.set(rec.id, p);
  }

  // ---------- the flows ----------

  private async execute(rec: StoredMigration, resume: boolean): Promise<void> {
    const started = Date.now();
    rec.state = 'running';
    rec.startedAt ??= now();
    try {
      await this.save(rec);
      if (rec.type === 'safe') await this.safeFlow(rec, resume);
      else if (rec.type === 'maintenance') await this.maintenanceFlow(rec);
      else await this.riskyFlow(rec);
      await this.finish(rec, 'completed', rec.outcome ?? 'applied');
    } catch (err) {
      if (err instanceof FlowEnd) {
        await this.finish(rec, err.state, err.outcome);
      } else {
        const aborted = rec.abortRequested || err instanceof ApplyCancelled;
        const msg = errMsg(err);
        rec.errors.push(msg);
        const reason = this.running?.abort.signal.reason;
        await this.finish(rec, aborted ? 'aborted' : 'failed', aborted ? `aborted (${reason ? errMsg(reason) : 'abort requested'}): ${msg}` : msg);
      }
    }
    const m = controllerMetrics();
    const final: MigrationState = (rec as MigrationRecord).state;
    m.duration.observe((Date.now() - started) / 1000);
    if (final !== 'completed') m.errors.inc();
  }

  private async finish(rec: StoredMigration, state: StoredMigration['state'], outcome: string): Promise<void> {
    rec.state = state;
    rec.outcome = outcome;
    rec.finishedAt = now();
    if (state === 'completed') rec.progress = 1;
    for (const s of rec.steps) if (s.state === 'running') { s.state = 'failed'; s.finishedAt = now(); }
    try {
      await this.save(rec);
      await this.d.store.setJson(STORE_KEYS.current, { id: null }, { fencingToken: this.lease?.token });
    } catch (err) {
      logger().error({ err: errMsg(err), id: rec.id }, 'could not record the end of a migration');
    }
    await this.d.audit.write({ who: 'controller', via: 'controller', action: 'migration.finished', target: rec.id, outcome: state, detail: { name: rec.name, type: rec.type, reason: outcome } });
    logger().info({ id: rec.id, name: rec.name, state, outcome }, 'migration finished');
  }

  private checkAbort(rec: StoredMigration): void {
    const r = this.running;
    if (rec.abortRequested || r?.abort.signal.aborted || this.stopped) {
      const reason = r?.abort.signal.reason ? errMsg(r.abort.signal.reason) : 'abort requested';
      throw new FlowEnd('aborted', `aborted: ${reason}`);
    }
  }

  /** Runs one step: its start is persisted before it runs, its end before the next. */
  private async step<T>(rec: StoredMigration, name: string, fn: (s: StepRecord) => Promise<T>): Promise<T> {
    this.checkAbort(rec);
    const s: StepRecord = { name, state: 'running', startedAt: now() };
    rec.steps.push(s);
    await this.save(rec);
    const t0 = Date.now();
    try {
      const out = await fn(s);
      s.state = s.state === 'running' ? 'done' : s.state;
      return out;
    } catch (err) {
      // a flow that ends early but well (skip, dry run) leaves its step done
      s.state = err instanceof FlowEnd && err.state === 'completed' ? 'done' : 'failed';
      s.detail ??= errMsg(err);
      throw err;
    } finally {
      s.finishedAt = now();
      s.durationMs = Date.now() - t0;
      const flow = FLOW_STEPS[rec.type];
      const idx = flow.indexOf(name);
      if (idx >= 0 && s.state !== 'failed') rec.progress = Math.max(rec.progress, (idx + 1) / flow.length);
      await this.save(rec);
    }
  }

  private async skipStep(rec: StoredMigration, name: string, detail: string): Promise<void> {
    rec.steps.push({ name, state: 'skipped', startedAt: now(), finishedAt: now(), durationMs: 0, detail });
    await this.save(rec);
  }

  /** validate: parse, classify, compare with --type, consult the ledger. */
  private async validate(rec: StoredMigration, side: Side, resume = false): Promise<{ statements: SqlStatement[]; mapping?: SchemaMapping }> {
    return this.step(rec, 'validate', async (s) => {
      let statements: SqlStatement[];
      try {
        statements = await splitStatements(rec.sql, rec.name);
      } catch (err) {
        if (err instanceof SqlSyntaxError) throw new FlowEnd('failed', `invalid SQL: ${err.message}; nothing applied`);
        throw err;
      }
      if (statements.length === 0) throw new FlowEnd('failed', `${rec.name}: no SQL statements; nothing applied`);
      // the ledger first: an applied file no longer matches the live catalog (its column exists)
      const c = await connectSide(this.sideUrl(side));
      try {
        const l = await ledgerStatus(c, rec.name, rec.checksum);
        if (l.status === 'applied') {
          // our own earlier run, interrupted after its commit (recovery)
          if (l.row.migrationId === rec.id) throw new FlowEnd('completed', `applied on ${l.row.side} at ${l.row.finishedAt} (committed before the controller restarted)`);
          throw new FlowEnd('completed', `skipped: ${rec.name} was already applied on ${l.row.side} at ${l.row.finishedAt} with the same checksum`);
        }
        if (l.status === 'changed') {
          throw new FlowEnd('failed', `refused: ${rec.name} was applied at ${l.row.finishedAt} with checksum ${l.row.checksum.slice(0, 12)}…, this file has ${rec.checksum.slice(0, 12)}… (a changed migration needs a new name); nothing applied`);
        }
      } finally {
        await c.end().catch(() => undefined);
      }
      if (resume && rec.classification && rec.statements) {
        // classified before the restart; the live catalog now shows the statements that already ran
        s.detail = `${rec.classification}, classified before the restart; resuming after statement ${rec.statements.committed}`;
        return { statements };
      }
      const report = await this.d.classifier.classify(rec.sql, { fileName: rec.name, databaseUrl: this.sideUrl(side) });
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
      s.detail = `${report.classification} (${report.riskLevel}), ${statements.length} statement(s), runs ${describeMode(runMode(statements))}`;
      if (report.tables?.length) rec.estimates = { ...(rec.estimates ?? {}), tables: report.tables };
      return { statements, mapping: report.mapping };
    });
  }

  private planFor(rec: StoredMigration, side: Side, statements: SqlStatement[]): string[] {
    const idle = otherSide(side);
    const mode = describeMode(runMode(statements));
    const rp = rec.noRollback ? 'no rollback point (--no-rollback)' : `rollback point: pg_dump of ${side} into ${this.d.cfg.controller.backupDir}`;
    switch (rec.type) {
      case 'safe': return [rp, `apply ${statements.length} statement(s) on ${side} (active) ${mode}, lock_timeout ${this.d.cfg.controller.lockTimeoutMs}ms, up to ${this.d.cfg.controller.lockRetries} retries`, 'record in pgflip.migrations'];
      case 'maintenance': return [rp, `hold traffic at the proxies (limit ${this.d.cfg.controller.holdLimitSeconds}s)`, `apply ${statements.length} statement(s) on ${side} ${mode}`, 'resume traffic'];
      default: return [rp, `prepare ${idle} (schema of ${side})`, `copy ${side} → ${idle} under one snapshot, then stream changes`, `apply ${statements.length} statement(s) on ${idle}`, 'catch up and verify row counts and checksums',
        rec.switchDelaySeconds ? `wait ${rec.switchDelaySeconds}s` : 'no switch delay', `flip all proxies to ${idle}; fence ${side}; start reverse sync ${idle} → ${side}`,
        rec.noRollback ? 'no automatic rollback (--no-rollback)' : `watch ${this.d.cfg.controller.watchWindowSeconds}s (error rate > ${this.d.cfg.controller.errorRateThreshold * 100}%, p95 > ${this.d.cfg.controller.latencyFactor}× baseline, ${this.d.cfg.controller.healthFailureLimit} failed health checks, ${idle} unreachable → roll back)`,
        'finalize: stop reverse sync, clean up'];
    }
  }

  private async dryRunEnd(rec: StoredMigration, side: Side, statements: SqlStatement[]): Promise<never> {
    rec.plan = this.planFor(rec, side, statements);
    for (const name of FLOW_STEPS[rec.type].slice(1)) await this.skipStep(rec, name, 'dry run');
    throw new FlowEnd('completed', `dry run: ${rec.name} is ${rec.classification}; nothing changed`);
  }

  private async rollbackPoint(rec: StoredMigration, side: Side): Promise<void> {
    if (rec.noRollback) { await this.skipStep(rec, 'rollback point', '--no-rollback'); return; }
    await this.step(rec, 'rollback point', async (s) => {
      const p = await this.d.rollbackPoints.create(rec.id, side, this.sideUrl(side));
      rec.rollbackPoint = p.id;
      s.detail = `${p.id} (${p.bytes} bytes, ${side})`;
    });
  }

  private async apply(rec: StoredMigration, side: Side, statements: SqlStatement[], resumeFrom?: number): Promise<void> {
    const applier = new Applier(this.sideUrl(side), statements, {
      lockTimeoutMs: this.d.cfg.controller.lockTimeoutMs,
      lockRetries: this.d.cfg.controller.lockRetries,
      resumeFrom,
      ledger: { name: rec.name, checksum: rec.checksum, class: rec.classification ?? rec.type, side, migrationId: rec.id, startedAt: rec.startedAt ?? now() },
      onProgress: async (p: StatementProgress) => { rec.statements = p; await this.save(rec); },
      onRetry: async (attempt, err, st) => {
        rec.warnings.push(`lock timeout on statement ${st.index} (line ${st.line}), retry ${attempt} of ${this.d.cfg.controller.lockRetries}`);
        logger().warn({ id: rec.id, attempt, sqlstate: err.code }, 'lock timeout, retrying');
        await this.save(rec);
      },
    });
    if (this.running) this.running.applier = applier;
    try {
      rec.statements = await applier.run();
    } catch (err) {
      if (err instanceof ApplyError) rec.statements = { total: err.total, committed: err.committed, mode: applier.mode };
      throw err;
    } finally {
      if (this.running) this.running.applier = undefined;
    }
  }

  private async safeFlow(rec: StoredMigration, resume: boolean): Promise<void> {
    const { active } = await this.activeSide();
    rec.side ??= active;
    rec.startSide ??= active;
    const side = rec.side;
    const { statements } = await this.validate(rec, side, resume);
    if (rec.dryRun) await this.dryRunEnd(rec, side, statements);
    if (!rec.rollbackPoint && !(resume && rec.noRollback)) await this.rollbackPoint(rec, side);
    const resumeFrom = resume && rec.statements?.mode === 'statements' ? rec.statements.committed : undefined;
    await this.step(rec, 'apply', async (s) => {
      await this.apply(rec, side, statements, resumeFrom);
      s.detail = `${rec.statements?.committed}/${statements.length} statement(s) on ${side}, ${describeMode(runMode(statements))}`;
    });
    // the ledger row commits with the migration itself (apply.ts); this step records that fact
    await this.step(rec, 'ledger', async (s) => { s.detail = `pgflip.migrations: ${rec.name} on ${side}`; });
    rec.outcome = `applied on ${side} (active)`;
  }

  private async maintenanceFlow(rec: StoredMigration): Promise<void> {
    const { active } = await this.activeSide();
    rec.side ??= active;
    rec.startSide ??= active;
    const side = rec.side;
    const { statements } = await this.validate(rec, side);
    if (rec.dryRun) await this.dryRunEnd(rec, side, statements);
    await this.rollbackPoint(rec, side);
    const holdMs = this.d.cfg.controller.holdLimitSeconds * 1000;
    if (!this.d.flipper) throw new Error('maintenance needs the flip coordinator (state store) to hold traffic at the proxies');
    let holdStep: StepRecord | undefined;
    const outcome = await this.step(rec, 'hold traffic', async (s) => {
      holdStep = s;
      return this.d.flipper!.hold({
        deadlineMs: Math.min(holdMs, 10_000),
        during: async () => {
          s.detail = 'all proxies hold their sessions';
          s.state = 'done';
          s.finishedAt = now();
          await this.step(rec, 'apply', async (a) => {
            await this.apply(rec, side, statements);
            a.detail = `${rec.statements?.committed}/${statements.length} statement(s) on ${side} while traffic was held`;
          });
        },
      });
    });
    if (!outcome.committed) {
      if (holdStep) holdStep.detail = `hold ended without commit: ${outcome.reason}`;
      const applyStep = rec.steps.find((x) => x.name === 'apply');
      if (applyStep?.state === 'failed') throw new FlowEnd('failed', `${applyStep.detail}; traffic resumed on ${side}`);
      throw new FlowEnd('failed', `could not hold traffic: ${outcome.reason ?? 'the proxies did not pause'}; nothing applied, traffic resumed on ${side}`);
    }
    await this.step(rec, 'resume traffic', async (s) => { s.detail = `proxies resumed on ${side} (epoch ${outcome.epoch}${outcome.pauseMs !== undefined ? `, held ${Math.round(outcome.pauseMs)} ms` : ''})`; });
    rec.outcome = `applied on ${side} with traffic held`;
  }

  private async riskyFlow(rec: StoredMigration): Promise<void> {
    const { active, epoch } = await this.activeSide();
    rec.startSide ??= active;
    rec.startEpoch ??= epoch;
    const source = rec.startSide;
    const target = otherSide(source);
    rec.side = target;
    const { statements, mapping } = await this.validate(rec, source);
    const sync = this.d.sync;
    if (!sync || !this.d.flipper) throw new Error('risky migrations need the sync engine and the flip coordinator, which this controller was started without');
    const fwd = sync.forward({ migrationId: rec.id, source, target, sql: rec.sql, mapping: mapping ?? noMapping() });
    this.running?.syncs.push(fwd);
    const problems = await fwd.checkPrerequisites();
    if (problems.length) {
      rec.errors.push(...problems);
      throw new FlowEnd('failed', `prerequisites not met: ${problems.join('; ')}; nothing changed`);
    }
    if (rec.dryRun) {
      if (fwd.estimate) rec.estimates = { ...(rec.estimates ?? {}), ...(await fwd.estimate()) };
      await this.dryRunEnd(rec, source, statements);
    }
    let flipped = false;
    try {
      await this.rollbackPoint(rec, source);
      await this.step(rec, 'prepare idle side', async (s) => {
        // slots an earlier migration left (a rollback with a dead side) would block rebuilding the idle side
        await sync.leftovers().catch((err) => rec.warnings.push(errMsg(err)));
        await fwd.prepareTarget();
        s.detail = `${target} has the schema of ${source}`;
      });
      await this.step(rec, 'copy', async (s) => {
        await fwd.initialCopy((p) => { rec.copy = { fraction: p.copyFraction ?? 0, rows: p.rowsCopied }; this.saveSoon(rec); });
        rec.copy = { fraction: 1, rows: fwd.progress().rowsCopied };
        s.detail = `${rec.copy.rows ?? '?'} rows copied ${source} → ${target}`;
      });
      await this.step(rec, 'migrate idle side', async (s) => {
        await fwd.migrateTarget();
        await fwd.startStreaming();
        const [a, b] = await Promise.all([connectSide(this.sideUrl(source)), connectSide(this.sideUrl(target))]);
        try {
          await copyLedger(a, b);
          await b.query(`INSERT INTO pgflip.migrations (name, checksum, class, side, migration_id, started_at) VALUES ($1, $2, $3, $4, $5, $6)`,
            [rec.name, rec.checksum, rec.classification ?? 'risky', target, rec.id, rec.startedAt]);
        } finally { await Promise.all([a.end(), b.end()]).catch(() => undefined); }
        s.detail = `${statements.length} statement(s) applied on ${target}; streaming changes`;
      });
      await this.step(rec, 'catch up', async (s) => {
        const p = await fwd.catchUp({ maxLagMs: 1000, timeoutMs: 10 * 60_000 });
        rec.lag = { seconds: p.lagSeconds ?? 0, bytes: p.lagBytes ?? 0 };
        s.detail = `lag ${rec.lag.seconds.toFixed(2)} s, ${rec.lag.bytes} bytes`;
      });
      // Verified while writes continue, so that the pause does not grow with the data: a table
      // written meanwhile can differ for a moment and is compared again after a catch-up; what
      // still differs is compared once more while writes are held, where it must match.
      let pending: string[] = [];
      await this.step(rec, 'verify', async (s) => {
        let r = await fwd.verify();
        for (let attempt = 0; r.unequal.length && attempt < VERIFY_RETRIES; attempt++) {
          await fwd.catchUp({ maxLagMs: 0, timeoutMs: 10 * 60_000 });
          r = { ...(await fwd.verify(r.unequal)), tables: r.tables };
        }
        pending = r.unequal;
        s.detail = pending.length
          ? `${r.tables - pending.length} of ${r.tables} table(s) match; ${pending.join(', ')} changed while compared: compared again while writes are held`
          : `row counts and checksums of ${r.tables} table(s) match`;
      });
      if (rec.switchDelaySeconds > 0) {
        await this.step(rec, 'switch delay', async (s) => {
          await abortableSleep(rec.switchDelaySeconds * 1000, this.running?.abort.signal);
          s.detail = `${rec.switchDelaySeconds}s`;
        });
      } else await this.skipStep(rec, 'switch delay', 'no --switch-delay');
      const rev = sync.reverse({ migrationId: rec.id, source: target, target: source, mapping: mapping ?? noMapping() });
      this.running?.syncs.push(rev);
      const outcome = await this.step(rec, 'flip', async (s) => {
        // The reverse slot is created before the pause, not in it (slot creation waits for a
        // consistent point), when that is safe: until the flip only the forward apply writes to
        // the new side, and the reverse stream skips its transactions by their replication
        // origin. Without the origin (no superuser on the new side) it is created inside the
        // pause, once the forward stream has stopped.
        const earlySlot = fwd.tagsOrigin();
        if (earlySlot) await rev.prepareTarget();
        // what the pause is made of, for the step's detail
        const held = new PhaseTimer();
        const o = await this.d.flipper!.flip({
          target,
          deadlineMs: Math.min(this.d.cfg.controller.holdLimitSeconds * 1000, 10_000),
          onAbort: async () => { await this.d.fence?.unfence(source); await rev.stop().catch(() => undefined); },
          beforeCommit: async () => {
            await held.time('final catch-up', () => fwd.catchUp({ maxLagMs: 0, timeoutMs: this.d.cfg.controller.holdLimitSeconds * 1000 }));
            // the tables that differed while writes ran: now the sides must be equal, or the flip aborts
            await held.time('verify', () => this.step(rec, 'final verify', async (v) => {
              if (!pending.length) { v.detail = 'every table matched before the pause'; return; }
              const r = await fwd.verify(pending);
              if (!r.ok) throw new Error(`verification failed: ${r.problems.join('; ')}`);
              v.detail = `${pending.join(', ')}: row counts and checksums match (writes held)`;
            }));
            await fwd.stop();
            await held.time('fence', async () => { await this.d.fence?.fence(source); });
            await held.time('reverse sync', async () => { if (!earlySlot) await rev.prepareTarget(); await rev.startStreaming(); });
          },
        });
        if (!o.committed) throw new Error(`flip aborted: ${o.reason ?? 'unknown'}; traffic stayed on ${source}`);
        const pause = o.pauseMs !== undefined ? `, pause ${Math.round(o.pauseMs)} ms: ${held.summary()}` : '';
        s.detail = `all proxies on ${target} (epoch ${o.epoch}${pause}); ${source} fenced, reverse sync running`;
        return o;
      });
      flipped = true;
      void outcome;
      let verdict: WatchVerdict = { ok: true, reason: 'no watch window' };
      await this.step(rec, 'watch', async (s) => {
        verdict = await watchWindow({ orchestrator: this, rec, side: target, signal: this.running?.abort.signal });
        s.detail = verdict.reason;
      });
      const v = verdict as WatchVerdict;
      if (!v.ok && !rec.noRollback) {
        await this.rollBackFlip(rec, source, target, rev, v.reason);
      }
      await this.step(rec, 'finalize', async (s) => {
        await rev.stop();
        await rev.cleanup();
        await fwd.cleanup();
        s.detail = v.ok ? 'reverse sync stopped, replication slots dropped' : `kept ${target} despite: ${v.reason} (--no-rollback)`;
      });
      rec.outcome = v.ok ? `switched to ${target}` : `switched to ${target}; watch failed (${v.reason}) but --no-rollback kept it`;
    } catch (err) {
      if (err instanceof FlowEnd && err.state === 'rolled_back') throw err;
      // before the flip: nothing changed for the application; discard the idle side's sync state
      if (!flipped) {
        for (const sp of this.running?.syncs ?? []) { await sp.stop().catch(() => undefined); await sp.cleanup().catch(() => undefined); }
      }
      throw err;
    }
  }

  private async rollBackFlip(rec: StoredMigration, source: Side, target: Side, rev: SyncPort, reason: string): Promise<never> {
    await this.step(rec, 'roll back', async (s) => {
      const o = await this.d.flipper!.flip({
        target: source,
        deadlineMs: 10_000,
        onAbort: async () => { await this.d.fence?.fence(source); },
        beforeCommit: async () => {
          // the new side may be dead: then what reverse sync applied so far is what the old side has
          await rev.catchUp({ maxLagMs: 0, timeoutMs: this.d.cfg.controller.holdLimitSeconds * 1000 })
            .catch((err) => rec.warnings.push(`final reverse catch-up failed (${errMsg(err)}): writes acknowledged on ${target} after its last synced change are not on ${source}`));
          await rev.stop();
          await advanceSequencesToData(this.sideUrl(source));
          await this.d.fence?.unfence(source);
        },
      });
      if (!o.committed) throw new Error(`rollback flip aborted: ${o.reason}; traffic is still on ${target}`);
      await rev.cleanup().catch(() => undefined);
      s.detail = `traffic back on ${source} (epoch ${o.epoch}); writes made on ${target} were synced back`;
    });
    throw new FlowEnd('rolled_back', `rolled back to ${source}: ${reason}`);
  }

  // ---------- manual switch ----------

  async switchTo(target: Side): Promise<{ active: Side; epoch: number; pauseMs?: number; changed: boolean }> {
    if (!this.lease) throw new ConflictError('this controller is not the leader');
    if (this.running) throw new ConflictError(`migration ${this.running.rec.id} is running; abort it first`);
    if (this.recovering) throw new ConflictError('the controller is finishing a migration left by its predecessor; try again shortly');
    if (!this.d.flipper) throw new Error('no flip coordinator configured');
    const { active, epoch } = await this.activeSide();
    if (active === target) return { active, epoch, changed: false };
    const o = await this.d.flipper.flip({
      target, deadlineMs: 10_000,
      beforeCommit: async () => { await this.d.fence?.unfence(target); await this.d.fence?.fence(active); },
      onAbort: async () => { await this.d.fence?.unfence(active); },
    });
    if (!o.committed) {
      throw new Error(`switch to ${target} aborted: ${o.reason ?? 'unknown'}; traffic stays on ${active}`);
    }
    return { active: target, epoch: o.epoch, pauseMs: o.pauseMs, changed: true };
  }

  // ---------- recovery after a restart ----------

  private async recover(): Promise<void> {
    // a flip (of a migration or a manual switch) left pausing by a dead controller: release the proxies first
    const flip = await this.d.store.currentFlip();
    if (flip?.state === 'pausing') await this.d.store.abortFlip(flip.id, 'controller restarted');
    await this.unfenceActive();
    const cur = await this.d.store.getJson<{ id: string | null }>(STORE_KEYS.current);
    const id = cur?.value?.id;
    if (!id) return;
    const rec = await this.getStored(id);
    if (!rec || isTerminal(rec.state)) return;
    logger().warn({ id, state: rec.state, step: rec.steps.at(-1)?.name }, 'resuming an unfinished migration after a restart');
    await this.d.audit.write({ who: 'controller', via: 'controller', action: 'migration.recover', target: id, outcome: 'started', detail: { lastStep: rec.steps.at(-1)?.name } });
    for (const s of rec.steps) if (s.state === 'running') { s.state = 'failed'; s.detail = 'interrupted: the controller stopped'; s.finishedAt = now(); }
    rec.warnings.push(`the controller restarted during ${rec.steps.at(-1)?.name ?? 'start-up'}`);
    if (rec.type === 'safe' || rec.dryRun) {
      // safe: the transaction either committed (ledger row) or not; statement mode resumes after the last committed statement
      this.launch(rec, true);
      return;
    }
    const applied = rec.side ? await this.appliedBy(rec, rec.side).catch(() => false) : false;
    if (rec.type === 'maintenance') {
      rec.state = applied ? 'completed' : 'rolled_back';
      await this.finish(rec, rec.state, applied
        ? `applied on ${rec.side}; the controller restarted before recording the end (the proxies resumed)`
        : 'the controller stopped while traffic was held; nothing applied (the transaction rolled back) and the proxies resumed');
      return;
    }
    // risky: before the flip nothing changed for the application → discard; after it, go back to the old side
    const { active } = await this.activeSide();
    const source = rec.startSide ?? active;
    if (active !== source) {
      // --no-rollback, or the watch had passed: the migration stands; finish it forward
      if (rec.noRollback || rec.steps.some((x) => (x.name === 'watch' && x.state === 'done') || x.name === 'finalize')) {
        await this.dropSyncLeftovers(rec);
        await this.finish(rec, 'completed', `switched to ${active}; the controller restarted during ${rec.steps.at(-1)?.name} and finished it`);
        return;
      }
      // After the flip the reverse slot on the new side holds every write made there since the
      // flip, including those made while no controller ran: carry them back before flipping back.
      await this.recoverReverse(rec, source, active);
      return;
    }
    await this.dropSyncLeftovers(rec);
    await this.finish(rec, 'rolled_back', `the controller restarted during ${rec.steps.at(-1)?.name}; the idle side's sync state was discarded, ${source} unchanged`);
  }

  /** Drop the slots and publications a migration left on both sides; a failure becomes a warning. */
  private async dropSyncLeftovers(rec: StoredMigration): Promise<void> {
    await this.d.sync?.leftovers(rec.id).catch((err) => rec.warnings.push(`could not drop the sync slots: ${errMsg(err)}`));
  }

  /**
   * The side serving traffic must take writes. A flip fences the side it leaves inside its
   * pause, before the commit: a controller that died between the two left the active side
   * fenced, with nobody to lift the fence.
   */
  private async unfenceActive(): Promise<void> {
    if (!this.d.fence) return;
    try {
      const { active } = await this.activeSide();
      if (!(await this.d.fence.isFenced(active))) return;
      await this.d.fence.unfence(active);
      logger().warn({ side: active }, 'the active side was fenced (a flip interrupted after fencing it): fence lifted');
      await this.d.audit.write({ who: 'controller', via: 'controller', action: 'fence.lift', target: active, outcome: 'done', detail: { reason: 'the active side was found fenced at start-up' } });
    } catch (err) {
      logger().error({ err: errMsg(err) }, 'could not check or lift a fence on the active side');
    }
  }

  /**
   * Resume the reverse sync of a migration that had flipped when the controller stopped, let it
   * catch up while writes still run (the backlog of the outage, outside any pause), then roll
   * back through it. Where the reverse stream cannot be resumed or catch up, traffic stays on
   * the new side: flipping back would lose the writes made there.
   */
  private async recoverReverse(rec: StoredMigration, source: Side, target: Side): Promise<void> {
    let rev: SyncPort | undefined;
    try {
      await this.step(rec, 'reverse catch-up', async (s) => {
        // the mapping, as the run computed it: the file classified against the old side's catalog
        const { mapping } = await this.d.classifier.classify(rec.sql, { fileName: rec.name, databaseUrl: this.sideUrl(source) });
        rev = this.d.sync!.reverse({ migrationId: rec.id, source: target, target: source, mapping: mapping ?? noMapping() });
        await rev.startStreaming();
        const p = await rev.catchUp({ timeoutMs: 10 * 60_000 });
        s.detail = `writes made on ${target} since the flip applied on ${source} (lag ${(p.lagSeconds ?? 0).toFixed(2)} s)`;
      });
    } catch (err) {
      await rev?.stop().catch(() => undefined);
      await this.finish(rec, 'failed', `the controller restarted after the flip and could not resume reverse sync (${errMsg(err)}): traffic stays on ${target}, where the migration is applied; flipping back now would lose the writes made there`);
      return;
    }
    const warnings = rec.warnings.length;
    try {
      await this.rollBackFlip(rec, source, target, rev!, 'the controller restarted after the flip');
    } catch (err) {
      await rev!.stop().catch(() => undefined);
      const caughtUp = !rec.warnings.slice(warnings).some((w) => w.startsWith('final reverse catch-up failed'));
      await this.dropSyncLeftovers(rec);
      if (err instanceof FlowEnd) await this.finish(rec, err.state, caughtUp ? `${err.outcome}; the writes made on ${target} since the flip were synced back first` : err.outcome);
      else await this.finish(rec, 'failed', `the controller restarted after the flip and could not roll back: ${errMsg(err)}`);
    }
  }

  private async appliedBy(rec: StoredMigration, side: Side): Promise<boolean> {
    const c = await connectSide(this.sideUrl(side));
    try {
      const l = await ledgerStatus(c, rec.name, rec.checksum);
      return l.status === 'applied' && l.row.migrationId === rec.id;
    } finally { await c.end().catch(() => undefined); }
  }
}

function describeMode(m: ReturnType<typeof runMode>): string {
  return m === 'transaction' ? 'in one transaction' : m === 'statements' ? 'statement by statement (holds statements that cannot run in a transaction)' : 'with the file\'s own BEGIN/COMMIT';
}

export function publicRecord(rec: StoredMigration): MigrationRecord {
  const { sql: _sql, ...pub } = rec;
  return pub;
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

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason ?? new Error('aborted')); }, { once: true });
  });
}

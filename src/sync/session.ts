/**
 * SyncSession: one direction of data sync between two databases (docs/sync.md).
 *
 *   checkPrerequisites → prepareTarget → initialCopy → migrateTarget →
 *   startStreaming → catchUp → verify → stop → cleanup
 *
 * Reverse sync after a flip is a session from the new side to the old one with
 * the inverse mapping, started with createSlot() (no copy) while writes are held.
 * A restarted process resumes a stream with the same slotName (the target's
 * pgflip.sync_state row says what was applied), or removes leftovers with
 * SyncSession.cleanupLeftovers().
 */
import type { Client } from 'pg';
import { syncClient } from './connection';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { emptyMapping, SchemaMapping } from '../classifier/mapping';
import { loadParser, parseFile } from '../classifier/parser';
import type { SchemaDumpSetting } from '../config';
import { logger as rootLogger, redactUrl } from '../observability/logger';
import { AppliedBatch, ChangeApplier, ApplyStats } from './apply';
import { RelationPlan, STATE_TABLE, STATE_TABLE_DDL } from './apply-sql';
import { TableCatalog, readCatalog, TableInfo } from './catalog';
import { cleanupByPrefix, CleanupReport, ORIGIN_PREFIX, originName } from './cleanup';
import { CopyWorkers, defaultCopyWorkers, splitIntoParts, TableCopyResult } from './copy';
import { formatLsn, Lsn, parseLsn } from './lsn';
import { lagGauges, LagGauges } from './metrics';
import { messageSize, PgoutputMessage } from './pgoutput';
import { checkPlanAgainstTarget, MappingIndex, SyncPlanError } from './plan';
import { checkSource, Problem, selectTables, SyncPrerequisiteError } from './prerequisites';
import { ReplicationConnection } from './replication';
import { dumpSchema, replaySchema, SchemaTool } from './schema';
import { createDatabaseLikeSql, databaseShape } from './database';
import { copyRoles } from './roles';
import { syncSequences, SequenceSyncResult } from './sequences';
import { release as releaseConfirmation, requireConfirmation } from './synchronous';
import { assertSlotName, qi, ql, qtable, tableKey } from './sql';
import { verifyTable, VerifyResult } from './verify';
import { withClient } from '../util/pg';
import { sleep } from '../util/sleep';

export type SyncPhase = 'prerequisites' | 'schema' | 'copy' | 'indexes' | 'migrate' | 'stream' | 'catchup' | 'verify' | 'cleanup';

export interface SyncProgress {
  phase: SyncPhase;
  table?: string;
  rows?: number;
  bytes?: number;
  /** 0..100 */
  percent?: number;
  done?: boolean;
  /** copy: the table's size on the source */
  tableBytes?: number;
  message?: string;
}

export interface SyncSessionOptions {
  /** database URL of the side changes come from */
  source: string;
  /** database URL of the side they go to */
  target: string;
  /** old schema → new schema; default: every table 1:1 */
  mapping?: SchemaMapping;
  /** the migration run by migrateTarget() when it gets no argument */
  migrationSql?: string;
  /** `schema.table` names to sync (default: every user table of the source) */
  tables?: string[];
  /** replication slot name; also names the publication, origin and state row */
  slotName: string;
  /** label of the lag metrics */
  direction?: 'forward' | 'reverse';
  logger?: Logger;
  onProgress?: (p: SyncProgress) => void;
  onApplied?: (b: AppliedBatch) => void;
  /** a failure of the running stream (also rejects a pending catchUp) */
  onError?: (err: Error) => void;
  /** metrics registry (default: prom-client's global one) */
  registry?: Registry;
  /** parallel copy workers (default: defaultCopyWorkers, from where the two servers run) */
  parallel?: number;
  /** tables larger than this are copied in parallel parts of about this size (default 8 MiB) */
  chunkBytes?: number;
  /** decoded changes held in memory before the stream is paused (default 32 MiB) */
  maxQueueBytes?: number;
  /** source changes grouped into one target transaction at most (default 2000) */
  maxGroupChanges?: number;
  /** a target transaction holding several source transactions commits after this long (default 100 ms) */
  maxGroupMs?: number;
  /** the source's commits may be made to wait for this stream (requireConfirmation): acknowledge each commit at once */
  synchronous?: boolean;
  /** the schema copy without owners and grants */
  noOwner?: boolean;
  /** how the source's schema is read (src/sync/schema.ts); default auto */
  schemaDump?: SchemaDumpSetting;
}

export interface CopySummary {
  slotLsn: string;
  tables: TableCopyResult[];
  rows: number;
  bytes: number;
  seconds: number;
  /** seconds spent building indexes and constraints after the load */
  postDataSeconds: number;
}

export interface CatchUpResult {
  /** the source position reached */
  lsn: string;
  seconds: number;
  sequences: SequenceSyncResult;
}

/**
 * Run a migration file on a database: as one transaction, or statement by statement
 * when it holds statements that refuse a transaction block (CONCURRENTLY, VACUUM, …).
 * The error names the line (and column) and the SQLSTATE.
 */
export async function applyMigration(url: string, sql: string): Promise<void> {
  try {
    await withClient(url, (c) => c.query(sql));
  } catch (err) {
    const e = err as Error & { code?: string; position?: string };
    if (e.code === '25001') return applyStatementByStatement(url, sql);
    let where = '';
    let line: number | undefined;
    let column: number | undefined;
    if (e.position) {
      const pos = Number(e.position) - 1;
      const before = sql.slice(0, pos);
      line = before.split('\n').length;
      column = pos - before.lastIndexOf('\n');
      where = ` at line ${line}, column ${column}`;
    }
    throw new SyncMigrationError(`migration failed on the target${where}: ${e.message}${e.code ? ` (SQLSTATE ${e.code})` : ''}`, e.code, line, column);
  }
}

async function applyStatementByStatement(url: string, sql: string): Promise<void> {
  await loadParser();
  const parsed = parseFile(sql);
  if (parsed.failures.length) throw new SyncMigrationError(`migration failed on the target: ${parsed.failures[0].message}`);
  await withClient(url, async (c) => {
    for (const st of parsed.statements) {
      try {
        await c.query(st.text);
      } catch (err) {
        const e = err as Error & { code?: string };
        throw new SyncMigrationError(`migration failed on the target at line ${st.line}: ${e.message}${e.code ? ` (SQLSTATE ${e.code})` : ''}`, e.code, st.line);
      }
    }
  });
}

export class SyncMigrationError extends Error {
  override name = 'SyncMigrationError';
  constructor(message: string, readonly code?: string, readonly line?: number, readonly column?: number) {
    super(message);
  }
}

export class SyncStateError extends Error {
  override name = 'SyncStateError';
}


/** Both sides fixed at one instant by pin(), compared later (SyncSession.pinnable). */
export interface PinnedSides {
  pin(): Promise<void>;
  compare(only?: string[]): Promise<VerifyResult>;
  close(): Promise<void>;
}

async function endAll(...clients: Client[]): Promise<void> {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
}

export class SyncSession {
  readonly slotName: string;
  readonly direction: 'forward' | 'reverse';
  private readonly log: Logger;
  private readonly index: MappingIndex;
  private readonly gauges: LagGauges;
  private sourceCatalogCache?: TableCatalog;
  private targetCatalogCache?: TableCatalog;
  private rep?: ReplicationConnection;
  private applier?: ChangeApplier;
  private applyClient?: Client;
  private monitor?: Client;
  /** the target connection catchUp() moves sequences on */
  private seqClient?: Client;
  private timer?: NodeJS.Timeout;
  private stopping = false;
  private lagBytes = 0;
  private failure?: Error;

  constructor(private readonly o: SyncSessionOptions) {
    assertSlotName(o.slotName);
    this.slotName = o.slotName;
    this.direction = o.direction ?? 'forward';
    this.log = (o.logger ?? rootLogger()).child({ component: 'sync', direction: this.direction, slot: o.slotName });
    this.index = new MappingIndex(o.mapping ?? emptyMapping());
    this.gauges = lagGauges(o.registry);
  }

  /** The publication shares the slot's name (a separate namespace in PostgreSQL). */
  get publicationName(): string {
    return this.slotName;
  }

  /** The running stream's failure, if it failed. */
  get error(): Error | undefined {
    return this.failure;
  }

  get stats(): ApplyStats | undefined {
    return this.applier?.stats;
  }

  private progress(p: SyncProgress): void {
    this.o.onProgress?.(p);
  }

  private async sourceCatalog(refresh = false): Promise<TableCatalog> {
    if (!this.sourceCatalogCache || refresh) this.sourceCatalogCache = await withClient(this.o.source, readCatalog);
    return this.sourceCatalogCache;
  }

  private async targetCatalog(refresh = false): Promise<TableCatalog> {
    if (!this.targetCatalogCache || refresh) this.targetCatalogCache = await withClient(this.o.target, readCatalog);
    return this.targetCatalogCache;
  }

  /** Tables copied: the selection, including tables the migration drops (their rows keep FKs valid until it runs). */
  private async copiedTables(): Promise<TableInfo[]> {
    const { tables, problems } = selectTables(await this.sourceCatalog(), this.o.tables);
    if (problems.length) throw new SyncStateError(problems.join('; '));
    return tables.filter((t) => t.kind === 'r');
  }

  /** Tables streamed: the selection minus those the migration drops. */
  private async streamedTables(): Promise<TableInfo[]> {
    return (await this.copiedTables()).filter((t) => !this.index.isDropped(t));
  }

  // ---- 1. prerequisites ----

  async checkPrerequisites(): Promise<void> {
    this.progress({ phase: 'prerequisites' });
    const problems: Problem[] = [];
    const { tables, problems: selection } = selectTables(await this.sourceCatalog(true), this.o.tables);
    problems.push(...selection.map((message) => ({ check: 'target' as const, message })));
    const streamed = tables.filter((t) => !this.index.isDropped(t));
    problems.push(...(await withClient(this.o.source, (c) => checkSource(c, streamed))));
    try {
      await withClient(this.o.target, (c) => c.query('SELECT 1'));
    } catch (err) {
      problems.push({ check: 'target', message: `target ${redactUrl(this.o.target)} is not reachable: ${(err as Error).message}` });
    }
    if (problems.length) throw new SyncPrerequisiteError(problems);
  }

  // ---- 2. schema and initial copy ----

  /**
   * Load the source's schema (pre-data: no indexes or constraints yet) onto the
   * target. With dropExisting the target database is dropped and created again
   * first (an idle side being rebuilt); otherwise it must not hold the tables.
   */
  async prepareTarget(opts: { dropExisting?: boolean } = {}): Promise<SchemaTool> {
    this.progress({ phase: 'schema', message: 'pre-data' });
    if (opts.dropExisting) await this.recreateTargetDatabase();
    else {
      const source = await this.sourceCatalog();
      const clash = [...(await this.targetCatalog(true)).keys()].filter((k) => source.has(k));
      if (clash.length) {
        throw new SyncStateError(`target already has ${clash.slice(0, 5).join(', ')}${clash.length > 5 ? ` and ${clash.length - 5} more` : ''}; pass prepareTarget({ dropExisting: true }) to rebuild the target database`);
      }
    }
    if (!this.o.noOwner) await this.copyRoles();
    const { sql, tool } = await dumpSchema(this.o.source, 'pre-data', { noOwner: this.o.noOwner, tool: this.o.schemaDump });
    this.log.info({ tool: tool.tool, reason: tool.reason }, 'sync: source schema read');
    this.progress({ phase: 'schema', message: `pre-data read with ${tool.tool === 'node' ? 'the Node path' : 'pg_dump'}: ${tool.reason}` });
    try {
      await replaySchema(this.o.target, sql, {}, 'pre-data');
    } catch (err) {
      throw new SyncStateError(`loading the source schema onto the target failed: ${(err as Error).message}`);
    }
    this.targetCatalogCache = undefined;
    return tool;
  }

  /** Roles are cluster-wide: the source's objects may be owned by or granted to roles the target lacks. */
  private async copyRoles(): Promise<void> {
    const report = await withClient(this.o.source, (src) => withClient(this.o.target, (dst) => copyRoles(src, dst)));
    if (report.created.length) this.log.info({ created: report.created, memberships: report.memberships.length }, 'sync: roles copied to the target');
    if (report.withoutPassword.length) this.log.warn({ roles: report.withoutPassword }, 'sync: roles created without a password: the source connection may not read pg_authid');
    for (const s of report.skippedAttributes) this.log.warn(s, 'sync: role attribute not copied');
  }

  private async recreateTargetDatabase(): Promise<void> {
    const url = new URL(this.o.target);
    const db = decodeURIComponent(url.pathname.replace(/^\//, ''));
    const shape = await withClient(this.o.source, databaseShape);
    url.pathname = '/postgres';
    await withClient(url.toString(), async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${qi(db)} WITH (FORCE)`);
      await c.query(createDatabaseLikeSql(db, shape));
    });
    this.log.info({ database: db }, 'sync: target database recreated');
  }

  private async ensurePublication(c: Client): Promise<void> {
    const { rows } = await c.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [this.publicationName]);
    if (rows.length) return;
    const tables = await this.streamedTables();
    await c.query(`CREATE PUBLICATION ${qi(this.publicationName)}${tables.length ? ` FOR TABLE ${tables.map((t) => `ONLY ${qtable(t)}`).join(', ')}` : ''}`);
  }

  /**
   * Create the publication and the slot with an exported snapshot, copy every
   * table under that snapshot, then build indexes and constraints (post-data).
   */
  async initialCopy(): Promise<CopySummary> {
    const started = Date.now();
    // Fixed start-up cost overlaps: the walsender connection and the copy connections open
    // while the catalog is read and the publication and slot are created, and each copy
    // worker starts as soon as its own connections are ready. The connection that reads the
    // catalog becomes the first worker's source connection.
    const connecting = ReplicationConnection.connect(this.o.source);
    connecting.catch(() => undefined); // awaited below, or closed in finally
    const parallel = this.o.parallel ?? defaultCopyWorkers(this.o.source, this.o.target);
    const chunkBytes = this.o.chunkBytes ?? 8 * 1024 * 1024;
    const catalogClient = syncClient(this.o.source);
    catalogClient.on('error', () => undefined); // failures surface through the queries
    let workers: CopyWorkers | undefined;
    let rep: ReplicationConnection | undefined;
    let results: TableCopyResult[];
    let slotLsn: Lsn;
    try {
      await catalogClient.connect();
      this.sourceCatalogCache ??= await readCatalog(catalogClient);
      const tables = await this.copiedTables();
      let published!: (c: Client) => void;
      let notPublished!: (e: Error) => void;
      const firstSource = new Promise<Client>((resolve, reject) => { published = resolve; notPublished = reject; });
      // no more connection pairs than parts to copy
      workers = new CopyWorkers(this.o.source, this.o.target, Math.min(parallel, splitIntoParts(tables, chunkBytes, true, parallel).length), firstSource);
      try {
        // The publication must exist before the slot: pgoutput reads it as of each change's position.
        await this.ensurePublication(catalogClient);
        published(catalogClient);
      } catch (err) {
        notPublished(err as Error);
        throw err;
      }
      rep = await connecting;
      const slot = await rep.createSlot(this.slotName, true);
      slotLsn = slot.lsn;
      this.log.info({ lsn: formatLsn(slot.lsn), tables: tables.length }, 'sync: slot created, copying under its snapshot');
      results = await workers.copy(slot.snapshot!, {
        tables, chunkBytes,
        binary: Math.floor(rep.serverVersion / 10000) === Math.floor((await workers.targetVersion()) / 10000),
        sourceVersion: rep.serverVersion,
        onProgress: (p) => this.progress({ phase: 'copy', ...p }),
      });
    } finally {
      await Promise.all([
        workers?.close(),
        catalogClient.end().catch(() => undefined),
        (rep ? Promise.resolve(rep) : connecting).then((r) => r.close(), () => undefined),
      ]);
    }
    const copied = Date.now();
    this.progress({ phase: 'indexes', message: 'post-data' });
    const { sql: post } = await dumpSchema(this.o.source, 'post-data', { noOwner: this.o.noOwner, tool: this.o.schemaDump });
    try {
      await replaySchema(this.o.target, post, { maintenance_work_mem: '256MB' }, 'post-data');
    } catch (err) {
      throw new SyncStateError(`building indexes and constraints on the target failed: ${(err as Error).message}`);
    }
    const summary: CopySummary = {
      slotLsn: formatLsn(slotLsn),
      tables: results,
      rows: results.reduce((s, r) => s + r.rows, 0),
      bytes: results.reduce((s, r) => s + r.bytes, 0),
      seconds: (copied - started) / 1000,
      postDataSeconds: (Date.now() - copied) / 1000,
    };
    this.log.info({ rows: summary.rows, bytes: summary.bytes, seconds: summary.seconds, postDataSeconds: summary.postDataSeconds }, 'sync: initial copy done');
    return summary;
  }

  /**
   * Create the publication and a slot without copying: the stream starts at
   * the current position. For reverse sync, called while writes are held so
   * the two sides are equal at that position.
   */
  async createSlot(): Promise<string> {
    await withClient(this.o.source, (c) => this.ensurePublication(c));
    const rep = await ReplicationConnection.connect(this.o.source);
    try {
      const slot = await rep.createSlot(this.slotName, false);
      this.log.info({ lsn: formatLsn(slot.lsn) }, 'sync: slot created');
      return formatLsn(slot.lsn);
    } finally {
      await rep.close();
    }
  }

  // ---- 3. migrate the target ----

  /**
   * Run the migration on the target. It runs as one transaction; a file with
   * statements that cannot (CONCURRENTLY, VACUUM, …) runs statement by
   * statement. A failure stops with the database's error; the
   * source is never touched.
   */
  async migrateTarget(sql = this.o.migrationSql): Promise<void> {
    if (sql === undefined) throw new SyncStateError('migrateTarget: no migration SQL (pass it or set migrationSql)');
    this.progress({ phase: 'migrate' });
    await applyMigration(this.o.target, sql);
    this.targetCatalogCache = undefined;
    this.log.info('sync: migration applied on the target');
  }

  // ---- 4. stream ----

  /** Start applying the slot's changes (resuming from the target's stored LSN, if any). */
  async startStreaming(): Promise<void> {
    if (this.rep) return;
    this.stopping = false;
    this.failure = undefined;
    const monitor = syncClient(this.o.source);
    monitor.on('error', (err) => { if (!this.stopping) this.fail(err); });
    await monitor.connect();
    this.monitor = monitor;
    const { rows: slots } = await monitor.query('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [this.slotName]);
    if (!slots.length) throw new SyncStateError(`slot ${this.slotName} does not exist on the source: run initialCopy() or createSlot() first`);

    const target = syncClient(this.o.target);
    target.on('error', (err) => { if (!this.stopping) this.fail(err); });
    await target.connect();
    this.applyClient = target;
    // Acknowledged positions must be durable on the target, whatever its default. The forward
    // apply's own commits never wait for a synchronous standby: the one a flip names on its
    // target is the reverse stream, which skips them (synchronous.ts).
    await target.query(`SET standard_conforming_strings = on; SET synchronous_commit = ${this.direction === 'forward' ? 'local' : 'on'}`);
    try {
      // Replica role: the target's own triggers and FK checks do not fire for replayed rows.
      await target.query('SET session_replication_role = replica');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'sync: cannot set session_replication_role (not superuser); target triggers will fire for applied rows');
    }
    await target.query(STATE_TABLE_DDL);
    await this.setupOrigin(target);
    const { rows: state } = await target.query(`SELECT applied_lsn::text AS lsn FROM ${STATE_TABLE} WHERE slot_name = $1`, [this.slotName]);
    const resumeLsn = state.length ? parseLsn(state[0].lsn) : 0n;
    await this.targetCatalog(true);

    const seqClient = syncClient(this.o.target);
    seqClient.on('error', () => undefined); // failures surface through its queries
    await seqClient.connect();
    this.seqClient = seqClient;
    const rep = await ReplicationConnection.connect(this.o.source, this.slotName);
    this.rep = rep;
    const applier = new ChangeApplier({
      target, slotName: this.slotName, log: this.log, resumeLsn,
      resolve: (m) => this.resolveRelation(m),
      ack: (lsn, reply) => rep.sendStatus(lsn, reply),
      pause: () => rep.pause(),
      resume: () => rep.resume(),
      skipOriginPrefix: ORIGIN_PREFIX,
      maxQueueBytes: this.o.maxQueueBytes ?? 32 * 1024 * 1024,
      maxGroupChanges: this.o.maxGroupChanges ?? 2000,
      maxGroupMs: this.o.maxGroupMs ?? 100,
      maxStatementBytes: 1024 * 1024,
      // a source commit waiting for this stream's confirmation (synchronous) waits for the acknowledgement, not a timer
      ackIntervalMs: this.o.synchronous ? 0 : undefined,
      onApplied: this.o.onApplied,
      onError: (err) => this.fail(err),
    });
    this.applier = applier;
    rep.start(this.slotName, this.publicationName, resumeLsn, {
      message: (m) => applier.push(m, messageSize(m)),
      keepalive: (walEnd, reply) => applier.keepalive(walEnd, reply),
      end: (err) => { if (err && !this.stopping) this.fail(err); },
    });
    this.timer = setInterval(() => void this.tick(), 1000);
    this.timer.unref();
    this.log.info({ from: formatLsn(resumeLsn) }, 'sync: streaming');
    this.progress({ phase: 'stream', message: `streaming from ${formatLsn(resumeLsn)}` });
  }

  /**
   * Whether the running stream tags the transactions it applies with pgflip's replication
   * origin (it needs a superuser on the target): then a stream in the other direction, even
   * one whose slot exists while this one still applies, skips them.
   */
  tagsOrigin = false;

  private async setupOrigin(target: Client): Promise<void> {
    // Tags applied transactions so a stream in the other direction skips them (no ping-pong).
    const name = originName(this.slotName);
    this.tagsOrigin = false;
    try {
      await target.query(`SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)`, [name]);
      await target.query('SELECT pg_replication_origin_session_setup($1)', [name]);
      this.tagsOrigin = true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'sync: replication origin unavailable; do not run both directions at once');
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.log.error({ err: err.message }, 'sync: stream failed');
    // commits on the source that wait for this stream would wait for good
    void this.releaseConfirmation().catch((e) => this.log.error({ err: (e as Error).message }, 'sync: commits on the source still wait for the failed stream'));
    this.o.onError?.(err);
  }

  /** the source's commits wait for this stream (synchronous.ts) */
  private confirming = false;

  /**
   * Commits on the source wait until this stream has applied them on the target (synchronous
   * replication of the stream, synchronous.ts). Returns why not, when it cannot be done.
   */
  async requireConfirmation(): Promise<string | undefined> {
    if (!this.rep) throw new SyncStateError('requireConfirmation: the stream is not running');
    const r = await withClient(this.o.source, (c) => requireConfirmation(c, this.slotName));
    this.confirming = r.enabled;
    if (r.enabled) this.log.info('sync: commits on the source wait for this stream');
    return r.reason;
  }

  /** The source's commits no longer wait for this stream. */
  async releaseConfirmation(): Promise<void> {
    if (!this.confirming) return;
    await withClient(this.o.source, (c) => releaseConfirmation(c, this.slotName));
    this.confirming = false;
    this.log.info('sync: commits on the source no longer wait for this stream');
  }

  private async tick(): Promise<void> {
    const applier = this.applier;
    const monitor = this.monitor;
    if (!applier || !monitor || this.stopping) return;
    try {
      const { rows } = await monitor.query('SELECT pg_current_wal_insert_lsn()::text AS lsn');
      const current = parseLsn(rows[0].lsn);
      this.lagBytes = Number(current > applier.confirmedLsn ? current - applier.confirmedLsn : 0n);
      this.gauges.bytes.set({ direction: this.direction }, this.lagBytes);
      this.gauges.seconds.set({ direction: this.direction }, applier.lagSeconds());
      // Ask for a keepalive, so an idle stream confirms the positions it passed.
      this.rep?.sendStatus(applier.confirmedLsn, true);
    } catch (err) {
      if (!this.stopping) this.log.warn({ err: (err as Error).message }, 'sync: lag probe failed');
    }
  }

  /** Current lag: seconds since the oldest unapplied commit, WAL bytes behind the source. */
  lag(): { seconds: number; bytes: number } {
    return { seconds: this.applier?.lagSeconds() ?? 0, bytes: this.lagBytes };
  }

  private async resolveRelation(m: Extract<PgoutputMessage, { tag: 'relation' }>): Promise<RelationPlan> {
    const source = { schema: m.schema, name: m.name };
    const { rows } = await this.monitor!.query(
      'SELECT format_type(t.oid, t.typmod) AS type FROM unnest($1::oid[], $2::int[]) WITH ORDINALITY AS t(oid, typmod, ord) ORDER BY t.ord',
      [m.columns.map((c) => c.typeOid), m.columns.map((c) => c.typmod)]);
    const plan = this.index.plan(source, m.columns.map((c) => c.name));
    const full = m.replicaIdentity === 'f';
    const keyIdx = m.columns.map((c, i) => (full || c.isKey ? i : -1)).filter((i) => i >= 0);
    if (!plan.dropped) {
      let problems = checkPlanAgainstTarget(plan, await this.targetCatalog());
      if (problems.length) problems = checkPlanAgainstTarget(plan, await this.targetCatalog(true));
      if (!full && !keyIdx.length) problems.push(`${tableKey(source)}: no replica identity columns in the change stream`);
      for (const i of keyIdx) {
        if (!full && plan.columns[i].target === undefined) problems.push(`${tableKey(source)}: key column ${plan.columns[i].source} is dropped by the mapping, so changes cannot be matched`);
      }
      if (problems.length) throw new SyncPlanError(`sync plan does not fit the target: ${problems.join('; ')}`);
    }
    const targetInfo = this.targetCatalogCache?.get(tableKey(plan.target));
    const written = new Set(plan.columns.map((c) => c.target));
    const overriding = !!targetInfo?.columns.some((c) => c.identity === 'a' && written.has(c.name));
    return { relid: m.relid, plan, sourceTypes: rows.map((r) => r.type as string), keyIdx, full, overriding };
  }

  // ---- 5. catch-up ----

  /**
   * Wait until the target has applied everything up to the source's current
   * position, then move the target's sequences past the source's. Meant for
   * the flip pause, when writes are held; with writes running it returns once
   * the position read at the call is reached.
   */
  async catchUp(opts: { timeoutMs?: number } = {}): Promise<CatchUpResult> {
    const applier = this.applier;
    const monitor = this.monitor;
    if (!applier || !monitor || !this.rep) throw new SyncStateError('catchUp: the stream is not running (call startStreaming first)');
    const started = Date.now();
    const deadline = started + (opts.timeoutMs ?? 120_000);
    this.progress({ phase: 'catchup' });
    // The insert position, not pg_current_wal_lsn(): with asynchronous commit the last
    // commits may not be written yet, and the goal must lie past them.
    const { rows } = await monitor.query('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    const goal = parseLsn(rows[0].lsn);
    let nudged = false;
    while (applier.confirmedLsn < goal) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) {
        throw new SyncStateError(`catchUp: target still ${Number(goal - applier.confirmedLsn)} bytes behind ${formatLsn(goal)} after ${opts.timeoutMs ?? 120_000} ms`);
      }
      if (!nudged && Date.now() - started > 2000) {
        // An idle source may end its WAL mid-record for the decoder; a flushed no-op moves it on.
        nudged = true;
        await monitor.query("SET synchronous_commit = on; SELECT pg_logical_emit_message(true, 'pgflip_catchup', '')").catch(() => undefined);
      }
      this.rep.sendStatus(applier.confirmedLsn, true);
      // short: inside a flip's pause every millisecond here is held traffic
      await sleep(5);
    }
    if (this.failure) throw this.failure;
    const caughtUp = Date.now();
    // on a connection opened with the stream: inside a flip's pause a new one costs a backend start
    const sequences = this.seqClient ? await syncSequences(monitor, this.seqClient) : await withClient(this.o.target, (t) => syncSequences(monitor, t));
    this.log.debug({ applyMs: caughtUp - started, sequencesMs: Date.now() - caughtUp }, 'sync: caught up');
    if (sequences.missing.length) this.log.warn({ missing: sequences.missing }, 'sync: source sequences without a target counterpart');
    this.gauges.seconds.set({ direction: this.direction }, 0);
    this.gauges.bytes.set({ direction: this.direction }, 0);
    return { lsn: formatLsn(goal), seconds: (Date.now() - started) / 1000, sequences };
  }

  // ---- 6. verify ----

  /**
   * Row counts and checksums of the mapped columns, table by table: all streamed tables, or
   * those named (`schema.table` of the source). Exact only while writes are held or stopped;
   * with writes running, a table written meanwhile can differ for a moment: verifyConsistent()
   * compares one instant instead.
   */
  async verify(only?: string[]): Promise<VerifyResult> {
    const [src, tgt] = await this.verifyClients();
    try {
      return await this.compare(src, tgt, only);
    } finally {
      await endAll(src, tgt);
    }
  }

  /**
   * Verification at one instant while writes go on, exact: the source at a temporary slot's
   * exported snapshot, the target with the forward apply held at exactly that slot's LSN
   * (every source transaction committed before it applied, none after) and pinned there by a
   * snapshot of its own. The apply is held only until that snapshot is taken, so the lag does
   * not grow while tables are compared. A table that differs here differs.
   */
  async verifyConsistent(only?: string[], opts: { timeoutMs?: number } = {}): Promise<VerifyResult & { lsn: string }> {
    const applier = this.applier;
    if (!applier || !this.rep) throw new SyncStateError('verifyConsistent: the stream is not running (call startStreaming first)');
    const [src, tgt] = await this.verifyClients();
    let rep: ReplicationConnection | undefined;
    try {
      rep = await ReplicationConnection.connect(this.o.source);
      // Nothing new is applied from here, so nothing past the slot's LSN, read next, can be.
      applier.hold();
      const slot = await rep.createSlot(`${this.slotName}_v`, true, { temporary: true });
      await src.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await src.query(`SET TRANSACTION SNAPSHOT ${ql(slot.snapshot!)}`);
      await this.waitHeldAt(applier, slot.lsn, opts.timeoutMs ?? 120_000);
      await tgt.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await tgt.query('SELECT 1'); // the snapshot is taken at the first statement
      applier.release();
      // the imported snapshot outlives the exporting connection; the temporary slot goes with it
      await rep.close();
      rep = undefined;
      this.log.info({ lsn: formatLsn(slot.lsn) }, 'sync: verifying at one instant');
      return { ...(await this.compare(src, tgt, only)), lsn: formatLsn(slot.lsn) };
    } finally {
      applier.release();
      await Promise.all([rep?.close(), endAll(src, tgt)]);
    }
  }

  /**
   * Two connections, opened now, that pin() later fixes at one instant of both sides (for the
   * flip: once the final catch-up is done and writes are held, two statements); compare()
   * then verifies that instant while traffic runs again.
   */
  async pinnable(): Promise<PinnedSides> {
    const [src, tgt] = await this.verifyClients();
    let pinned = false;
    return {
      pin: async () => {
        await Promise.all([src, tgt].map((c) => c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1')));
        pinned = true;
      },
      compare: async (only) => {
        if (!pinned) throw new SyncStateError('compare: pin() was not called');
        return this.compare(src, tgt, only);
      },
      close: () => endAll(src, tgt),
    };
  }

  private async verifyClients(): Promise<[Client, Client]> {
    const src = syncClient(this.o.source);
    const tgt = syncClient(this.o.target);
    for (const c of [src, tgt]) c.on('error', () => undefined); // failures surface through the queries
    try {
      await Promise.all([src.connect(), tgt.connect()]);
    } catch (err) {
      await endAll(src, tgt);
      throw err;
    }
    return [src, tgt];
  }

  private async compare(src: Client, tgt: Client, only?: string[]): Promise<VerifyResult> {
    const tables = (await this.streamedTables()).filter((t) => !only || only.includes(tableKey(t)));
    const results = [];
    for (const t of tables) {
      const plan = this.index.plan(t, t.columns.filter((c) => !c.generated).map((c) => c.name));
      const r = await verifyTable(src, tgt, plan, t.keyColumns);
      this.progress({ phase: 'verify', table: r.table, done: true, message: r.equal ? 'equal' : 'different' });
      results.push(r);
    }
    return { equal: results.every((r) => r.equal), tables: results };
  }

  /** Until the apply holds at `lsn`; asks the walsender for keepalives, which prove an idle stream passed it. */
  private async waitHeldAt(applier: ChangeApplier, lsn: Lsn, timeoutMs: number): Promise<void> {
    let held = false;
    const holding = applier.holdAt(lsn).then(() => { held = true; });
    const deadline = Date.now() + timeoutMs;
    while (!held) {
      if (this.failure ?? applier.failed) throw this.failure ?? applier.failed;
      if (Date.now() > deadline) throw new SyncStateError(`verify: the apply did not reach ${formatLsn(lsn)} within ${timeoutMs} ms (${formatLsn(applier.confirmedLsn)} confirmed)`);
      this.rep?.sendStatus(applier.confirmedLsn, true);
      await Promise.race([holding, sleep(20)]);
    }
    if (this.failure ?? applier.failed) throw this.failure ?? applier.failed;
  }

  // ---- 7. stop and cleanup ----

  /** Stop streaming. Unacknowledged changes stay in the slot; a later startStreaming resumes. */
  async stop(): Promise<void> {
    // before the stream goes: commits on the source must not wait for a stream that is gone
    // (a source that is unreachable has no commits waiting)
    await this.releaseConfirmation().catch((e) => this.log.error({ err: (e as Error).message }, 'sync: could not stop commits on the source waiting for this stream'));
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.rep?.close();
    this.rep = undefined;
    const applier = this.applier;
    if (applier) {
      applier.stop();
      for (let i = 0; i < 500 && !applier.drained; i++) await sleep(10);
    }
    this.applier = undefined;
    await this.applyClient?.end().catch(() => undefined);
    this.applyClient = undefined;
    await this.monitor?.end().catch(() => undefined);
    this.monitor = undefined;
    await this.seqClient?.end().catch(() => undefined);
    this.seqClient = undefined;
  }

  /** Stop, then drop the slot and publication on the source and the origin and state row on the target. */
  async cleanup(): Promise<{ source: CleanupReport; target: CleanupReport }> {
    await this.stop();
    this.progress({ phase: 'cleanup' });
    const source = await withClient(this.o.source, (c) => cleanupByPrefix(c, this.slotName, true));
    const target = await withClient(this.o.target, (c) => cleanupByPrefix(c, this.slotName, true));
    this.gauges.seconds.set({ direction: this.direction }, 0);
    this.gauges.bytes.set({ direction: this.direction }, 0);
    this.log.info({ source, target }, 'sync: cleaned up');
    return { source, target };
  }

  /** For a restarted process: remove every slot, publication, origin and state row named `prefix…` on `url`'s database. */
  static async cleanupLeftovers(url: string, prefix: string): Promise<CleanupReport> {
    return withClient(url, (c) => cleanupByPrefix(c, prefix, false));
  }
}

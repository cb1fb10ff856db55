/**
 * Applies decoded pgoutput changes to the target, mapped through the table
 * plans, in commit order on one connection.
 *
 * - Each source transaction lands whole in one target transaction. When the
 *   stream runs ahead of the target, consecutive source transactions share a
 *   target transaction (never split one): fewer commits, same atomicity.
 * - The applied end LSN is upserted into pgflip.sync_state in that same
 *   transaction, and the source is acknowledged only after COMMIT returns.
 * - Changes become executions of statements prepared once per (table, kind,
 *   column set) on the apply connection, with the values as text parameters
 *   (the statements' text: apply-sql.ts): no SQL text is built per change, and
 *   the target neither parses nor plans per row. Consecutive inserts into a table (deletes by key) go as multi-row
 *   statements of 64, 32, … 1 rows.
 * - Pipelined: the executions of a batch go in one round trip (see
 *   statement-batch.ts) without waiting for the reply, so the next batch is
 *   built, and sent, while the target executes the current one. Each target
 *   transaction stores its position only if the previous one stored its own
 *   (STATE_UPSERT), so a transaction pipelined behind one that failed, even at
 *   COMMIT, fails too: nothing is applied past a failure.
 * - Unchanged TOAST values ('u') are left out of UPDATE SET lists.
 * - The source is told what is durable at most every 100 ms (and whenever it
 *   asks), not after every commit: status updates wake the walsender.
 */
import { Client } from 'pg';
import type { Logger } from 'pino';
import { RelationPlan, RelationSql, STATE_UPSERT, truncateSql } from './apply-sql';
import { formatLsn, Lsn, maxLsn } from './lsn';
import { PgoutputMessage, RelationColumn, Tuple } from './pgoutput';
import { tableKey } from './sql';
import { affectedRows, BatchError, Execution, TargetStatement, StatementBatch } from './statement-batch';

export interface AppliedBatch {
  /** end LSN of the last source transaction in this target transaction */
  lsn: Lsn;
  transactions: number;
  changes: number;
  /** commit time (ms) of each source transaction in the batch */
  commitTimes: number[];
  /** when each of them arrived from the source (ms): commit → arrival is the source's share of the lag */
  receivedTimes: number[];
  appliedAt: number;
}

export interface ApplyStats {
  transactions: number;
  changes: number;
  /** target transactions committed */
  batches: number;
  /** round trips to the target */
  roundTrips: number;
  /** statements prepared on the target */
  statementsPrepared: number;
  /** updates/deletes that found no row on the target (logged; a sign of divergence) */
  missingRows: number;
  skippedTransactions: number;
}

export class SyncApplyError extends Error {
  override name = 'SyncApplyError';
  constructor(message: string, readonly code?: string, readonly lsn?: string) {
    super(message);
  }
}

type Item = { kind: 'msg'; m: PgoutputMessage; size: number } | { kind: 'keepalive'; walEnd: Lsn };

interface Expectation { kind: 'update' | 'delete'; rows: number; table: string }

interface Exec extends Execution { exp?: Expectation }

interface GroupEntry { endLsn: Lsn; commitTime: number; receivedAt: number }

interface InFlight {
  batch: StatementBatch;
  execs: Exec[];
  /** this round trip ends a target transaction */
  commit?: { group: GroupEntry[]; changes: number; lsn: Lsn };
  /** positions (keepalives, skipped transactions) confirmed once this round trip has committed */
  confirmTo: Lsn;
}

export interface ChangeApplierOptions {
  target: Client;
  slotName: string;
  log: Logger;
  /** resolve a Relation message into a plan (reads catalogs; may throw a clear error) */
  resolve(m: Extract<PgoutputMessage, { tag: 'relation' }>): Promise<RelationPlan>;
  /** tell the source everything up to lsn is durable on the target */
  ack(lsn: Lsn, replyRequested: boolean): void;
  pause(): void;
  resume(): void;
  /** transactions with an origin whose name starts with this are skipped (loop prevention) */
  skipOriginPrefix?: string;
  /** the stored applied LSN: transactions committed before it were applied already */
  resumeLsn: Lsn;
  maxQueueBytes: number;
  maxGroupChanges: number;
  /** a target transaction holding several source transactions commits after this long */
  maxGroupMs: number;
  /** decoded bytes buffered before a round trip is sent mid-transaction */
  maxStatementBytes: number;
  /** round trips in flight at once (default 2) */
  maxInFlight?: number;
  /** acknowledgements to the source at most this often (default 100 ms); replies the source asks for go at once */
  ackIntervalMs?: number;
  onApplied?: (b: AppliedBatch) => void;
  onError(err: Error): void;
}

/** Multi-row statement sizes: any run of rows goes as at most one statement per size below 64. */
const ROW_CHUNKS = [64, 32, 16, 8, 4, 2, 1];
const MAX_PARAMS = 65535;
/** Beyond this many statement variants of one table (TOAST column subsets), new ones go unnamed. */
const MAX_STATEMENTS_PER_TABLE = 256;
const NO_VALUES: (string | null)[] = [];

interface UpdateShape {
  /** undefined: no column the target keeps is changed */
  stmt?: TargetStatement;
  setNeed: number[];
  identNeed: number[];
}

/** Per relation: its plan, its SQL (apply-sql.ts) and the statements prepared for it, on first use. */
class RelationStatements {
  readonly sql: RelationSql;
  private readonly stmts = new Map<string, TargetStatement>();
  /** UPDATE statements by column set (which values are present, whether the key can change) */
  readonly updates = new Map<string, UpdateShape>();
  private updateExpectation?: Expectation;
  private readonly deleteExpectations = new Map<number, Expectation>();

  constructor(readonly rp: RelationPlan, readonly signature: string, private readonly names: () => string) {
    this.sql = new RelationSql(rp);
  }

  /** What an update or delete of `rows` rows expects: one shared object per kind and size. */
  expectation(kind: 'update' | 'delete', rows: number): Expectation {
    if (kind === 'update') return (this.updateExpectation ??= { kind, rows: 1, table: this.sql.table });
    let e = this.deleteExpectations.get(rows);
    if (!e) this.deleteExpectations.set(rows, (e = { kind, rows, table: this.sql.table }));
    return e;
  }

  /** The statement under `key`, prepared with `text()` on first use. */
  statement(key: string, text: () => string): TargetStatement {
    return this.stmts.get(key) ?? this.add(key, text());
  }

  private add(key: string, text: string): TargetStatement {
    const unnamed = this.stmts.size >= MAX_STATEMENTS_PER_TABLE;
    const s = { name: unnamed ? '' : this.names(), text, parsed: false };
    if (!unnamed) this.stmts.set(key, s);
    return s;
  }

  addUpdate(key: string, values: Tuple, ident: Tuple, keyUnchanged: boolean): UpdateShape {
    const u = this.sql.update(values, ident, keyUnchanged);
    const shape = { stmt: u.text === undefined ? undefined : this.add(key, u.text), setNeed: u.setNeed, identNeed: u.identNeed };
    if (shape.stmt?.name !== '') this.updates.set(key, shape);
    return shape;
  }
}

/** Columns whose value is present (not an unchanged TOAST value) as a '0'/'1' mask, '' when all are. */
function presentMask(t: Tuple): string {
  let all = true;
  for (let i = 0; i < t.length; i++) if (t[i] === undefined) { all = false; break; }
  if (all) return '';
  let m = '';
  for (let i = 0; i < t.length; i++) m += t[i] === undefined ? '0' : '1';
  return m;
}

function pushValues(out: (string | null)[], t: Tuple, need: number[]): void {
  for (let k = 0; k < need.length; k++) out.push(t[need[k]] ?? null);
}

function relationSignature(m: Extract<PgoutputMessage, { tag: 'relation' }>): string {
  return `${m.schema}.${m.name}|${m.replicaIdentity}|${m.columns.map((c: RelationColumn) => `${c.name}:${c.typeOid}:${c.typmod}:${c.isKey ? 1 : 0}`).join(',')}`;
}

export class ChangeApplier {
  readonly stats: ApplyStats = { transactions: 0, changes: 0, batches: 0, roundTrips: 0, statementsPrepared: 0, missingRows: 0, skippedTransactions: 0 };
  /** everything up to here is applied (or had nothing to apply) */
  confirmedLsn: Lsn;
  appliedLsn: Lsn;
  failed?: Error;

  private readonly relations = new Map<number, RelationStatements>();
  private readonly queue: Item[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private paused = false;
  private pumping = false;
  private stopRequested = false;
  private readonly maxInFlight: number;
  private statementCount = 0;

  // commit and arrival times of received source transactions not yet committed on the target (lag)
  private readonly pendingCommitTimes: number[] = [];
  private readonly pendingReceived: number[] = [];
  private pendingHead = 0;

  // the source transaction being read
  private inSourceTxn = false;
  private skipTxn = false;
  private txnChanges = 0;

  // the target transaction being built
  private targetTxnOpen = false;
  private group: GroupEntry[] = [];
  private groupChanges = 0;
  private groupStarted = 0;
  /** positions confirmed once the open target transaction commits */
  private groupConfirmTo: Lsn = 0n;
  private execs: Exec[] = [];
  private execBytes = 0;
  /** a run of inserts into (deletes by key from) one table, sent as multi-row statements */
  private rows?: { rs: RelationStatements; kind: 'insert' | 'delete'; tuples: Tuple[] };

  // round trips sent and not answered yet, oldest first
  private readonly inFlight: InFlight[] = [];
  /** BEGIN sent and its COMMIT not sent yet */
  private serverTxnOpen = false;
  /** the position the last target transaction sent stores in sync_state */
  private storedLsn: Lsn;
  private wakeups: (() => void)[] = [];
  /** a hold at a source transaction boundary (see hold and holdAt) */
  private barrier?: { lsn: Lsn; reached: boolean; waiters: (() => void)[] };
  private lastAck = 0;
  private ackTimer?: NodeJS.Timeout;

  private readonly begin: TargetStatement = { name: 'pgflip_begin', text: 'BEGIN', parsed: false };
  private readonly commit: TargetStatement = { name: 'pgflip_commit', text: 'COMMIT', parsed: false };
  private readonly state: TargetStatement = { name: 'pgflip_state', text: STATE_UPSERT, parsed: false };

  constructor(private readonly o: ChangeApplierOptions) {
    this.confirmedLsn = o.resumeLsn;
    this.appliedLsn = o.resumeLsn;
    this.storedLsn = o.resumeLsn;
    this.maxInFlight = Math.max(1, o.maxInFlight ?? 2);
  }

  // ---- input side (called synchronously from the socket handler) ----

  push(m: PgoutputMessage, size: number): void {
    if (m.tag === 'begin') {
      this.pendingCommitTimes.push(m.commitTime);
      this.pendingReceived.push(Date.now());
    }
    this.enqueue({ kind: 'msg', m, size });
  }

  keepalive(walEnd: Lsn, reply: boolean): void {
    // Answered at once with what is durable already: a reply must not wait behind queued changes.
    if (reply && !this.failed) this.o.ack(this.confirmedLsn, false);
    this.enqueue({ kind: 'keepalive', walEnd });
  }

  private enqueue(item: Item): void {
    if (this.failed || this.stopRequested) return;
    this.queue.push(item);
    if (item.kind === 'msg') this.queuedBytes += item.size;
    if (!this.paused && this.queuedBytes > this.o.maxQueueBytes) {
      this.paused = true;
      this.o.pause();
    }
    if (!this.pumping) void this.pump();
  }

  /** Seconds since the oldest received, not yet applied source commit (0 when idle). */
  lagSeconds(now = Date.now()): number {
    let oldest: number | undefined;
    for (const f of this.inFlight) {
      if (f.commit) { oldest = f.commit.group[0]?.commitTime; break; }
    }
    oldest ??= this.group[0]?.commitTime ?? this.pendingCommitTimes[this.pendingHead];
    return oldest === undefined ? 0 : Math.max(0, (now - oldest) / 1000);
  }

  get idle(): boolean {
    return this.queueHead >= this.queue.length && !this.inSourceTxn && !this.targetTxnOpen && !this.pumping && !this.inFlight.length;
  }

  // ---- apply side ----

  private async pump(): Promise<void> {
    if (this.pumping || this.failed) return;
    this.pumping = true;
    try {
      for (;;) {
        if (this.failed || this.stopRequested) break;
        if (this.queueHead < this.queue.length) {
          if (this.barrier && this.holdsBefore(this.queue[this.queueHead])) {
            if (await this.settleAtBarrier()) break;
            continue;
          }
          const item = this.queue[this.queueHead++];
          if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
            this.queue.splice(0, this.queueHead);
            this.queueHead = 0;
          }
          if (item.kind === 'msg') {
            this.queuedBytes -= item.size;
            const wait = this.handle(item.m, item.size);
            if (wait) await wait;
          } else {
            this.handleKeepalive(item.walEnd);
          }
          if (this.paused && this.queuedBytes < this.o.maxQueueBytes / 4) {
            this.paused = false;
            this.o.resume();
          }
          continue;
        }
        // The stream has run dry. Commit a finished group as soon as the target can take it
        // (while it is busy, more transactions join the group); else send what is built.
        if (!this.inSourceTxn && this.group.length) {
          if (!this.canSend()) break; // a round trip's completion runs the pump again
          await this.commitGroup();
          continue;
        }
        if ((this.execs.length || this.rows) && !this.inFlight.length) {
          await this.send();
          continue;
        }
        // Ran dry at a boundary already confirmed past the barrier: everything before it is applied.
        if (this.barrier && !this.inSourceTxn && !this.inFlight.length && this.confirmedLsn >= this.barrier.lsn) this.reachBarrier();
        break;
      }
    } catch (err) {
      this.fail(err as Error);
    }
    try {
      if (this.stopRequested || this.failed) await this.rollbackOpen();
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Apply nothing that begins from now on: the source transactions already begun are finished,
   * the next one waits. A position to hold at, known only later (a snapshot's), is then given
   * to holdAt(); release() lets everything go on.
   */
  hold(): void {
    this.barrier ??= { lsn: 0n, reached: false, waiters: [] };
  }

  /**
   * Apply every source transaction that commits before `lsn` and none that commits at or after
   * it (what a snapshot exported at `lsn` shows), then hold there. Resolves once those are
   * committed on the target. Call hold() first when `lsn` is read after now: transactions the
   * stream delivers meanwhile must not be applied past it.
   */
  holdAt(lsn: Lsn): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    const b = this.barrier ??= { lsn, reached: false, waiters: [] };
    if (lsn < this.appliedLsn) return Promise.reject(new SyncApplyError(`cannot hold at ${formatLsn(lsn)}: transactions up to ${formatLsn(this.appliedLsn)} are applied already`));
    b.lsn = lsn;
    b.reached = false;
    const done = new Promise<void>((resolve) => b.waiters.push(resolve));
    if (!this.pumping) void this.pump();
    return done;
  }

  /** End a hold: the transactions held back are applied. */
  release(): void {
    this.releaseWaiters();
    this.barrier = undefined;
    if (!this.pumping && !this.stopRequested) void this.pump();
  }

  /** Is `item` the first the hold keeps back: a transaction committing at or past it, or proof the stream passed it? */
  private holdsBefore(item: Item): boolean {
    const b = this.barrier!;
    if (item.kind === 'msg') return item.m.tag === 'begin' && item.m.finalLsn >= b.lsn;
    // outside a source transaction the walsender has sent everything up to walEnd
    return !this.inSourceTxn && item.walEnd >= b.lsn && b.lsn > 0n;
  }

  /** At the hold: commit what is built, wait for the round trips; true when the pump should stop. */
  private async settleAtBarrier(): Promise<boolean> {
    if (this.group.length) {
      if (!this.canSend()) return true; // a round trip's completion runs the pump again
      await this.commitGroup();
      return false;
    }
    if (this.inFlight.length) return true;
    this.reachBarrier();
    return true;
  }

  /** A failure or a stop ends every wait for a hold; the waiter looks at `failed`. */
  private releaseWaiters(): void {
    const w = this.barrier?.waiters ?? [];
    if (this.barrier) this.barrier.waiters = [];
    for (const f of w) f();
  }

  private reachBarrier(): void {
    const b = this.barrier!;
    if (b.reached || b.lsn === 0n) return;
    b.reached = true;
    const w = b.waiters;
    b.waiters = [];
    for (const f of w) f();
  }

  /** Stop applying: a partly applied source transaction is rolled back (it was never acknowledged). */
  stop(): void {
    this.stopRequested = true;
    this.releaseWaiters();
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    this.queue.length = 0;
    this.queueHead = 0;
    if (!this.pumping) {
      this.pumping = true;
      void this.rollbackOpen().finally(() => { this.pumping = false; });
    }
  }

  /** No apply work in flight (after stop()). */
  get drained(): boolean {
    return !this.pumping && !this.inFlight.length;
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    this.queue.length = 0;
    this.queueHead = 0;
    this.wake();
    this.releaseWaiters();
    if (!this.pumping) {
      this.pumping = true;
      void this.rollbackOpen().finally(() => { this.pumping = false; });
    }
    this.o.onError(err);
  }

  /** Wait for the round trips in flight, then roll back a target transaction left open. */
  private async rollbackOpen(): Promise<void> {
    while (this.inFlight.length) await this.nextCompletion();
    this.execs = [];
    this.execBytes = 0;
    this.rows = undefined;
    this.group = [];
    this.groupChanges = 0;
    this.targetTxnOpen = false;
    if (!this.serverTxnOpen && !this.failed) return;
    this.serverTxnOpen = false;
    await this.o.target.query('ROLLBACK').catch(() => undefined);
  }

  private nextCompletion(): Promise<void> {
    return new Promise((resolve) => this.wakeups.push(resolve));
  }

  private wake(): void {
    const w = this.wakeups;
    this.wakeups = [];
    for (const f of w) f();
  }

  /** Handle one message; returns a promise only when it has to wait (catalog lookup, full pipeline). */
  private handle(m: PgoutputMessage, size: number): Promise<void> | undefined {
    switch (m.tag) {
      case 'begin':
        this.inSourceTxn = true;
        this.txnChanges = 0;
        // Already applied before a restart: its commit lies before the stored LSN.
        this.skipTxn = m.finalLsn < this.o.resumeLsn;
        return undefined;
      case 'origin':
        if (this.o.skipOriginPrefix && m.name.startsWith(this.o.skipOriginPrefix)) this.skipTxn = true;
        return undefined;
      case 'relation':
        return this.handleRelation(m);
      case 'type':
      case 'message':
        return undefined;
      case 'commit':
        return this.handleCommit(m);
      default:
        if (this.skipTxn) return undefined;
        return this.handleChange(m, size);
    }
  }

  private handleRelation(m: Extract<PgoutputMessage, { tag: 'relation' }>): Promise<void> | undefined {
    // pgoutput sends a Relation again after any invalidation of the table (VACUUM, ANALYZE):
    // an identical one keeps the plan and the prepared statements.
    const signature = relationSignature(m);
    if (this.relations.get(m.relid)?.signature === signature) return undefined;
    return this.o.resolve(m).then((rp) => {
      this.relations.set(m.relid, new RelationStatements(rp, signature, () => `pgflip_s${++this.statementCount}`));
    });
  }

  private relation(relid: number): RelationStatements {
    const rs = this.relations.get(relid);
    if (!rs) throw new SyncApplyError(`change for relation ${relid} arrived before its Relation message`);
    return rs;
  }

  private handleChange(m: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' | 'truncate' }>, size: number): Promise<void> | undefined {
    if (m.tag === 'truncate') {
      const targets = m.relids.map((r) => this.relation(r)).filter((rs) => !rs.rp.plan.dropped).map((rs) => rs.sql.qtable);
      if (!targets.length) return undefined;
      this.openTargetTxn();
      this.addExec({ stmt: { name: '', text: truncateSql(targets, m.restartIdentity), parsed: false }, values: NO_VALUES });
    } else {
      const rs = this.relation(m.relid);
      if (rs.rp.plan.dropped) return undefined;
      this.openTargetTxn();
      if (m.tag === 'insert') this.addRow(rs, 'insert', m.newTuple);
      else if (m.tag === 'update') this.addUpdate(rs, m.newTuple, m.keyTuple ?? m.oldTuple, !!m.oldTuple);
      else if (rs.rp.full) this.addFullDelete(rs, (m.keyTuple ?? m.oldTuple)!);
      else this.addRow(rs, 'delete', (m.keyTuple ?? m.oldTuple)!);
    }
    this.txnChanges++;
    this.stats.changes++;
    this.execBytes += size;
    return this.execBytes > this.o.maxStatementBytes ? this.send() : undefined;
  }

  private handleCommit(m: Extract<PgoutputMessage, { tag: 'commit' }>): Promise<void> | undefined {
    this.inSourceTxn = false;
    const commitTime = this.pendingCommitTimes[this.pendingHead];
    const receivedAt = this.pendingReceived[this.pendingHead++] ?? Date.now();
    this.trimPending();
    if (this.skipTxn) {
      this.skipTxn = false;
      this.stats.skippedTransactions++;
      this.confirm(m.endLsn);
      return undefined;
    }
    this.stats.transactions++;
    if (!this.targetTxnOpen) {
      // Nothing of this transaction applies to the target (e.g. only dropped tables).
      this.confirm(m.endLsn);
      return undefined;
    }
    if (!this.group.length) this.groupStarted = Date.now();
    this.group.push({ endLsn: m.endLsn, commitTime: commitTime ?? m.commitTime, receivedAt });
    this.groupChanges += this.txnChanges;
    // Group while the stream runs ahead or the target is busy, but bounded: big groups add
    // latency to their first transaction. Otherwise the pump commits when the stream runs dry.
    if (this.groupChanges >= this.o.maxGroupChanges || Date.now() - this.groupStarted >= this.o.maxGroupMs) return this.commitGroup();
    return undefined;
  }

  private handleKeepalive(walEnd: Lsn): void {
    // Inside a transaction walEnd may lie past changes still to come.
    if (this.inSourceTxn) return;
    // Outside one, the walsender has sent everything up to walEnd: all of it is queued before this.
    this.confirm(walEnd);
  }

  /**
   * Everything up to `lsn` is received and needs nothing beyond what is already
   * built: confirmed now, or when the target transaction holding the rest commits.
   */
  private confirm(lsn: Lsn): void {
    if (this.targetTxnOpen) this.groupConfirmTo = maxLsn(this.groupConfirmTo, lsn);
    else if (this.inFlight.length) {
      const last = this.inFlight[this.inFlight.length - 1];
      last.confirmTo = maxLsn(last.confirmTo, lsn);
    } else if (lsn > this.confirmedLsn) {
      this.confirmedLsn = lsn;
      this.acknowledge();
    }
  }

  /**
   * Tell the source what is durable, at most every ackIntervalMs: every status
   * update wakes the walsender, and one per commit costs it CPU the decoding needs.
   */
  private acknowledge(): void {
    if (this.ackTimer) return; // the pending one sends the newest position
    const wait = this.lastAck + (this.o.ackIntervalMs ?? 100) - Date.now();
    const send = () => {
      this.ackTimer = undefined;
      this.lastAck = Date.now();
      if (!this.failed) this.o.ack(this.confirmedLsn, false);
    };
    if (wait <= 0) send();
    else {
      this.ackTimer = setTimeout(send, wait);
      this.ackTimer.unref();
    }
  }

  private trimPending(): void {
    if (this.pendingHead > 4096 && this.pendingHead * 2 > this.pendingCommitTimes.length) {
      this.pendingCommitTimes.splice(0, this.pendingHead);
      this.pendingReceived.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
  }

  private openTargetTxn(): void {
    if (this.targetTxnOpen) return;
    this.targetTxnOpen = true;
    this.execs.push({ stmt: this.begin, values: NO_VALUES });
  }

  private commitGroup(): Promise<void> | undefined {
    const last = this.group[this.group.length - 1];
    if (!last) return undefined;
    this.flushRows();
    this.execs.push(
      { stmt: this.state, values: [this.o.slotName, formatLsn(last.endLsn), String(last.commitTime / 1000), formatLsn(this.storedLsn)] },
      { stmt: this.commit, values: NO_VALUES },
    );
    this.storedLsn = last.endLsn;
    const commit = { group: this.group, changes: this.groupChanges, lsn: last.endLsn };
    const confirmTo = this.groupConfirmTo;
    this.targetTxnOpen = false;
    this.group = [];
    this.groupChanges = 0;
    this.groupConfirmTo = 0n;
    return this.send(commit, confirmTo);
  }

  /** May a round trip go now? Not past the in-flight limit. */
  private canSend(): boolean {
    return this.inFlight.length < this.maxInFlight;
  }

  /** Send the built executions in one round trip, without waiting for the reply (unless the pipeline is full). */
  private async send(commit?: InFlight['commit'], confirmTo: Lsn = 0n): Promise<void> {
    this.flushRows();
    while (!this.canSend()) {
      if (this.failed) return;
      await this.nextCompletion();
    }
    if (this.failed || !this.execs.length) return;
    const execs = this.execs;
    this.execs = [];
    this.execBytes = 0;
    if (execs[0].stmt === this.begin) this.serverTxnOpen = true;
    if (commit) this.serverTxnOpen = false;
    const batch = new StatementBatch(execs);
    const entry: InFlight = { batch, execs, commit, confirmTo };
    this.inFlight.push(entry);
    this.stats.roundTrips++;
    this.o.target.query(batch);
    batch.done.then((tags) => this.completed(entry, tags), (err: BatchError) => this.sendFailed(entry, err));
  }

  private completed(entry: InFlight, tags: string[]): void {
    this.inFlight.shift();
    this.stats.statementsPrepared += entry.batch.prepared;
    if (this.failed) return this.wake();
    entry.execs.forEach((e, i) => {
      const exp = e.exp;
      if (!exp) return;
      const got = affectedRows(tags[i]);
      if (got < exp.rows) {
        this.stats.missingRows += exp.rows - got;
        this.o.log.warn({ table: exp.table, kind: exp.kind, expected: exp.rows, affected: got }, 'sync: rows to change were not found on the target');
      }
    });
    const before = this.confirmedLsn;
    const c = entry.commit;
    if (c) {
      // COMMIT of a failed transaction answers ROLLBACK: then nothing was applied.
      if (tags[tags.length - 1] !== 'COMMIT') {
        this.fail(new SyncApplyError(`apply on the target failed: the target transaction ending at ${formatLsn(c.lsn)} was rolled back (${tags[tags.length - 1] ?? 'no reply'})`, undefined, formatLsn(c.lsn)));
        return;
      }
      this.appliedLsn = c.lsn;
      this.confirmedLsn = maxLsn(this.confirmedLsn, c.lsn);
      this.stats.batches++;
    }
    this.confirmedLsn = maxLsn(this.confirmedLsn, entry.confirmTo);
    if (this.confirmedLsn !== before) this.acknowledge();
    if (c) this.o.onApplied?.({ lsn: c.lsn, transactions: c.group.length, changes: c.changes, commitTimes: c.group.map((g) => g.commitTime), receivedTimes: c.group.map((g) => g.receivedAt), appliedAt: Date.now() });
    this.wake();
    if (!this.pumping) void this.pump();
  }

  private sendFailed(entry: InFlight, err: BatchError): void {
    this.inFlight.shift();
    if (this.failed) return this.wake();
    const cause = (err.error ?? err) as Error & { code?: string };
    const stmt = entry.execs[err.index]?.stmt.text;
    const lsn = entry.commit ? formatLsn(entry.commit.lsn) : undefined;
    this.fail(new SyncApplyError(
      `apply on the target failed: ${cause.message}${cause.code ? ` (SQLSTATE ${cause.code})` : ''}${stmt ? ` in: ${stmt.length > 300 ? `${stmt.slice(0, 300)}…` : stmt}` : ''}`,
      cause.code, lsn));
  }

  private addExec(e: Exec): void {
    this.flushRows();
    this.execs.push(e);
  }

  // ---- changes → executions ----

  private addRow(rs: RelationStatements, kind: 'insert' | 'delete', t: Tuple): void {
    const r = this.rows;
    if (r && r.rs === rs && r.kind === kind) r.tuples.push(t);
    else {
      this.flushRows();
      this.rows = { rs, kind, tuples: [t] };
    }
  }

  /** The pending run of rows as multi-row executions: 64-row statements, then one each of 32 … 1 as needed. */
  private flushRows(): void {
    const r = this.rows;
    if (!r) return;
    this.rows = undefined;
    const { rs, kind, tuples } = r;
    const need = kind === 'insert' ? rs.sql.insertNeed : rs.sql.keyNeed;
    let at = 0;
    for (const size of ROW_CHUNKS) {
      if (size > 1 && size * need.length > MAX_PARAMS) continue;
      while (tuples.length - at >= size) {
        const values: (string | null)[] = [];
        for (let k = 0; k < size; k++) pushValues(values, tuples[at + k], need);
        at += size;
        const stmt = kind === 'insert' ? rs.statement(`I${size}`, () => rs.sql.insert(size)) : rs.statement(`D${size}`, () => rs.sql.deleteByKey(size));
        this.execs.push(kind === 'insert' ? { stmt, values } : { stmt, values, exp: rs.expectation('delete', size) });
      }
    }
  }

  private addUpdate(rs: RelationStatements, newTuple: Tuple, ident: Tuple | undefined, identIsOldRow: boolean): void {
    const rp = rs.rp;
    const cols = rp.plan.columns;
    // With REPLICA IDENTITY FULL the old row carries values the new one marks unchanged.
    const values = identIsOldRow && ident ? newTuple.map((v, i) => (v === undefined ? ident[i] : v)) : newTuple;
    // Without an old key the key did not change: leaving it out of SET also keeps
    // GENERATED ALWAYS identity keys writable.
    const keyUnchanged = !ident && !rp.full;
    const mask = presentMask(values);
    if (mask) {
      for (const [i, reads] of rs.sql.usingReads) {
        if (cols[i].target === undefined || values[i] === undefined) continue;
        const missing = reads.find((j) => values[j] === undefined);
        if (missing !== undefined) {
          throw new SyncApplyError(`${tableKey(rp.plan.source)}: USING expression of ${cols[i].target} reads ${cols[missing].source}, whose unchanged TOAST value the change stream does not carry; set REPLICA IDENTITY FULL on the source table`);
        }
      }
    }
    const identTuple = ident ?? newTuple;
    if (!rp.full && rp.keyIdx.some((i) => identTuple[i] === undefined)) {
      throw new SyncApplyError(`${tableKey(rp.plan.source)}: update without the key value`);
    }
    // (the usual case, every value present and no FULL identity, needs no key built)
    const key = !mask && !rp.full ? (keyUnchanged ? 'Un|' : 'Uk|') : `U${keyUnchanged ? 'n' : 'k'}${mask}|${rp.full ? presentMask(identTuple) : ''}`;
    const shape = rs.updates.get(key) ?? rs.addUpdate(key, values, identTuple, keyUnchanged);
    if (!shape.stmt) return; // nothing the target keeps changed
    const params: (string | null)[] = [];
    pushValues(params, values, shape.setNeed);
    pushValues(params, identTuple, shape.identNeed);
    this.addExec({ stmt: shape.stmt, values: params, exp: rs.expectation('update', 1) });
  }

  private addFullDelete(rs: RelationStatements, ident: Tuple): void {
    const stmt = rs.statement(`Df${presentMask(ident)}`, () => rs.sql.fullDelete(ident));
    const values: (string | null)[] = [];
    pushValues(values, ident, rs.sql.fullDeleteNeed(ident));
    this.addExec({ stmt, values, exp: rs.expectation('delete', 1) });
  }
}

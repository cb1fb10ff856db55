/**
 * Applies decoded pgoutput changes to the target, mapped through the table
 * plans, in commit order on one connection.
 *
 * - Each source transaction lands whole in one target transaction. When the
 *   stream runs ahead of the target, consecutive source transactions share a
 *   target transaction (never split one): fewer commits, same atomicity.
 * - The applied end LSN is upserted into pgflip.sync_state in that same
 *   transaction, and the source is acknowledged only after COMMIT returns.
 * - Statements go as multi-statement simple queries with SQL literals: one
 *   round trip per batch instead of one per row; consecutive inserts into a
 *   table become one multi-row INSERT, deletes one `IN (...)`.
 * - Unchanged TOAST values ('u') are left out of UPDATE SET lists.
 */
import { Client } from 'pg';
import type { Logger } from 'pino';
import { HELPER_SCHEMA } from './catalog';
import { formatLsn, Lsn, maxLsn } from './lsn';
import { PgoutputMessage, Tuple } from './pgoutput';
import { ColumnPlan, TablePlan } from './plan';
import { qi, ql, qtable, tableKey } from './sql';

/** A source relation (from a pgoutput Relation message) ready for apply. */
export interface RelationPlan {
  relid: number;
  plan: TablePlan;
  /** source column types (format_type), for USING expressions and casts */
  sourceTypes: string[];
  /** source column indices that identify a row; every column for REPLICA IDENTITY FULL */
  keyIdx: number[];
  full: boolean;
  /** the target has GENERATED ALWAYS identity columns that sync writes */
  overriding: boolean;
}

export interface AppliedBatch {
  /** end LSN of the last source transaction in this target transaction */
  lsn: Lsn;
  transactions: number;
  changes: number;
  /** commit time (ms) of each source transaction in the batch */
  commitTimes: number[];
  appliedAt: number;
}

export interface ApplyStats {
  transactions: number;
  changes: number;
  batches: number;
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

type Item = { kind: 'msg'; m: PgoutputMessage; size: number } | { kind: 'keepalive'; walEnd: Lsn; reply: boolean };

interface Expectation { kind: 'update' | 'delete'; rows: number; table: string }

export interface ApplierOptions {
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
  maxStatementBytes: number;
  onApplied?: (b: AppliedBatch) => void;
  onError(err: Error): void;
}

const literal = (v: string | null | undefined): string => (v === null || v === undefined ? 'NULL' : ql(v));

export const STATE_TABLE = `${qi(HELPER_SCHEMA)}.sync_state`;

export const STATE_TABLE_DDL = `
CREATE SCHEMA IF NOT EXISTS ${qi(HELPER_SCHEMA)};
CREATE TABLE IF NOT EXISTS ${STATE_TABLE} (
  slot_name text PRIMARY KEY,
  applied_lsn pg_lsn NOT NULL,
  source_commit_time timestamptz,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

export class Applier {
  readonly stats: ApplyStats = { transactions: 0, changes: 0, batches: 0, missingRows: 0, skippedTransactions: 0 };
  /** everything up to here is applied (or had nothing to apply) */
  confirmedLsn: Lsn;
  appliedLsn: Lsn;
  failed?: Error;

  private readonly relations = new Map<number, RelationPlan>();
  private readonly queue: Item[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private paused = false;
  private pumping = false;
  private stopRequested = false;

  // commit times of received source transactions not yet committed on the target (lag)
  private readonly pendingCommitTimes: number[] = [];
  private pendingHead = 0;

  // state of the transaction being applied
  private inSourceTxn = false;
  private skipTxn = false;
  private txnChanges = 0;
  private targetTxnOpen = false;
  private group: { endLsn: Lsn; commitTime: number }[] = [];
  private groupChanges = 0;
  private groupStarted = 0;
  private statements: string[] = [];
  private expectations: (Expectation | undefined)[] = [];
  private statementBytes = 0;
  private batch?: { key: string; head: string; rows: string[]; kind: 'insert' | 'delete'; table: string; tail: string };

  constructor(private readonly o: ApplierOptions) {
    this.confirmedLsn = o.resumeLsn;
    this.appliedLsn = o.resumeLsn;
  }

  // ---- input side (called synchronously from the socket handler) ----

  push(m: PgoutputMessage, size: number): void {
    if (m.tag === 'begin') this.pendingCommitTimes.push(m.commitTime);
    this.enqueue({ kind: 'msg', m, size });
  }

  keepalive(walEnd: Lsn, reply: boolean): void {
    this.enqueue({ kind: 'keepalive', walEnd, reply });
  }

  private enqueue(item: Item): void {
    if (this.failed) return;
    this.queue.push(item);
    if (item.kind === 'msg') this.queuedBytes += item.size;
    if (!this.paused && this.queuedBytes > this.o.maxQueueBytes) {
      this.paused = true;
      this.o.pause();
    }
    void this.pump();
  }

  /** Seconds since the oldest received, not yet applied source commit (0 when idle). */
  lagSeconds(now = Date.now()): number {
    const oldest = this.group[0]?.commitTime ?? this.pendingCommitTimes[this.pendingHead];
    return oldest === undefined ? 0 : Math.max(0, (now - oldest) / 1000);
  }

  get idle(): boolean {
    return this.queueHead >= this.queue.length && !this.inSourceTxn && !this.targetTxnOpen && !this.pumping;
  }

  // ---- apply side ----

  private async pump(): Promise<void> {
    if (this.pumping || this.failed) return;
    this.pumping = true;
    try {
      while (this.queueHead < this.queue.length && !this.failed && !this.stopRequested) {
        const item = this.queue[this.queueHead++];
        if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
          this.queue.splice(0, this.queueHead);
          this.queueHead = 0;
        }
        if (item.kind === 'msg') {
          this.queuedBytes -= item.size;
          await this.handle(item.m);
        } else {
          await this.handleKeepalive(item.walEnd, item.reply);
        }
        if (this.paused && this.queuedBytes < this.o.maxQueueBytes / 4) {
          this.paused = false;
          this.o.resume();
        }
      }
      if (this.stopRequested) await this.rollbackOpen();
    } catch (err) {
      this.failed = err as Error;
      await this.rollbackOpen();
      this.o.onError(err as Error);
    } finally {
      this.pumping = false;
    }
  }

  /** Stop applying: a partly applied source transaction is rolled back (it was never acknowledged). */
  stop(): void {
    this.stopRequested = true;
    this.queue.length = 0;
    this.queueHead = 0;
    if (!this.pumping) {
      this.pumping = true;
      void this.rollbackOpen().finally(() => { this.pumping = false; });
    }
  }

  /** No apply work in flight (after stop()). */
  get drained(): boolean {
    return !this.pumping;
  }

  private async rollbackOpen(): Promise<void> {
    if (!this.targetTxnOpen) return;
    this.targetTxnOpen = false;
    this.statements = [];
    this.expectations = [];
    this.batch = undefined;
    this.group = [];
    this.groupChanges = 0;
    await this.o.target.query('ROLLBACK').catch(() => undefined);
  }

  private get queueEmpty(): boolean {
    return this.queueHead >= this.queue.length;
  }

  private async handle(m: PgoutputMessage): Promise<void> {
    switch (m.tag) {
      case 'begin':
        this.inSourceTxn = true;
        this.txnChanges = 0;
        // Already applied before a restart: its commit lies before the stored LSN.
        this.skipTxn = m.finalLsn < this.o.resumeLsn;
        return;
      case 'origin':
        if (this.o.skipOriginPrefix && m.name.startsWith(this.o.skipOriginPrefix)) this.skipTxn = true;
        return;
      case 'relation':
        this.relations.set(m.relid, await this.o.resolve(m));
        return;
      case 'type':
      case 'message':
        return;
      case 'commit':
        return this.handleCommit(m);
      default:
        if (this.skipTxn) return;
        return this.handleChange(m);
    }
  }

  private relation(relid: number): RelationPlan {
    const rp = this.relations.get(relid);
    if (!rp) throw new SyncApplyError(`change for relation ${relid} arrived before its Relation message`);
    return rp;
  }

  private async handleChange(m: Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' | 'truncate' }>): Promise<void> {
    if (m.tag === 'truncate') {
      const targets = m.relids.map((r) => this.relation(r)).filter((rp) => !rp.plan.dropped).map((rp) => qtable(rp.plan.target));
      if (!targets.length) return;
      this.openTargetTxn();
      this.addStatement(`TRUNCATE ONLY ${targets.join(', ')}${m.restartIdentity ? ' RESTART IDENTITY' : ''}`);
    } else {
      const rp = this.relation(m.relid);
      if (rp.plan.dropped) return;
      this.openTargetTxn();
      if (m.tag === 'insert') this.addInsert(rp, m.newTuple);
      else if (m.tag === 'update') this.addUpdate(rp, m.newTuple, m.keyTuple ?? m.oldTuple, !!m.oldTuple);
      else this.addDelete(rp, (m.keyTuple ?? m.oldTuple)!);
    }
    this.txnChanges++;
    this.stats.changes++;
    if (this.statementBytes > this.o.maxStatementBytes) await this.send();
  }

  private async handleCommit(m: Extract<PgoutputMessage, { tag: 'commit' }>): Promise<void> {
    this.inSourceTxn = false;
    const commitTime = this.pendingCommitTimes[this.pendingHead++];
    this.trimPending();
    if (this.skipTxn) {
      this.skipTxn = false;
      this.stats.skippedTransactions++;
      if (!this.targetTxnOpen) this.confirmedLsn = maxLsn(this.confirmedLsn, m.endLsn);
      return;
    }
    this.stats.transactions++;
    if (!this.targetTxnOpen) {
      // Nothing of this transaction applies to the target (e.g. only dropped tables).
      this.confirmedLsn = maxLsn(this.confirmedLsn, m.endLsn);
      return;
    }
    if (!this.group.length) this.groupStarted = Date.now();
    this.group.push({ endLsn: m.endLsn, commitTime: commitTime ?? m.commitTime });
    this.groupChanges += this.txnChanges;
    // Group while the stream runs ahead, but bounded: big groups add latency to their first transaction.
    if (this.queueEmpty || this.groupChanges >= this.o.maxGroupChanges || Date.now() - this.groupStarted >= this.o.maxGroupMs) {
      await this.commitGroup();
    }
  }

  private async handleKeepalive(walEnd: Lsn, reply: boolean): Promise<void> {
    if (this.inSourceTxn) return;
    if (this.targetTxnOpen) {
      // More changes are queued behind this keepalive: keep grouping (a walsender that
      // keeps catching up sends one after nearly every commit).
      if (!this.queueEmpty) return;
      await this.commitGroup();
    }
    const before = this.confirmedLsn;
    // Outside a transaction the walsender has sent everything up to walEnd.
    this.confirmedLsn = maxLsn(this.confirmedLsn, walEnd);
    if (reply || this.confirmedLsn !== before) this.o.ack(this.confirmedLsn, false);
  }

  private trimPending(): void {
    if (this.pendingHead > 4096 && this.pendingHead * 2 > this.pendingCommitTimes.length) {
      this.pendingCommitTimes.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
  }

  private openTargetTxn(): void {
    if (this.targetTxnOpen) return;
    this.targetTxnOpen = true;
    this.statements.push('BEGIN');
    this.expectations.push(undefined);
  }

  private async commitGroup(): Promise<void> {
    const last = this.group[this.group.length - 1];
    if (!last) return;
    this.finishBatch();
    this.statements.push(
      `INSERT INTO ${STATE_TABLE} (slot_name, applied_lsn, source_commit_time, applied_at) VALUES (${ql(this.o.slotName)}, ${ql(formatLsn(last.endLsn))}, to_timestamp(${last.commitTime / 1000}), now()) ` +
      'ON CONFLICT (slot_name) DO UPDATE SET applied_lsn = EXCLUDED.applied_lsn, source_commit_time = EXCLUDED.source_commit_time, applied_at = EXCLUDED.applied_at',
      'COMMIT',
    );
    this.expectations.push(undefined, undefined);
    await this.send();
    this.targetTxnOpen = false;
    const group = this.group;
    const changes = this.groupChanges;
    this.group = [];
    this.groupChanges = 0;
    this.appliedLsn = last.endLsn;
    this.confirmedLsn = maxLsn(this.confirmedLsn, last.endLsn);
    this.stats.batches++;
    this.o.ack(this.confirmedLsn, false);
    this.o.onApplied?.({ lsn: last.endLsn, transactions: group.length, changes, commitTimes: group.map((g) => g.commitTime), appliedAt: Date.now() });
  }

  /** Send the buffered statements in one round trip and check affected row counts. */
  private async send(): Promise<void> {
    this.finishBatch();
    if (!this.statements.length) return;
    const sql = this.statements.join(';\n');
    const expectations = this.expectations;
    this.statements = [];
    this.expectations = [];
    this.statementBytes = 0;
    let res;
    try {
      res = await this.o.target.query(sql);
    } catch (err) {
      const e = err as Error & { code?: string; position?: string };
      const at = e.position ? sql.slice(Math.max(0, Number(e.position) - 60), Number(e.position) + 60).replace(/\s+/g, ' ') : '';
      throw new SyncApplyError(`apply on the target failed: ${e.message}${e.code ? ` (SQLSTATE ${e.code})` : ''}${at ? ` near: ${at}` : ''}`, e.code);
    }
    const results = Array.isArray(res) ? res : [res];
    expectations.forEach((exp, i) => {
      const got = results[i]?.rowCount ?? 0;
      if (exp && got < exp.rows) {
        this.stats.missingRows += exp.rows - got;
        this.o.log.warn({ table: exp.table, kind: exp.kind, expected: exp.rows, affected: got }, 'sync: rows to change were not found on the target');
      }
    });
  }

  private addStatement(sql: string, exp?: Expectation): void {
    this.finishBatch();
    this.statements.push(sql);
    this.expectations.push(exp);
    this.statementBytes += sql.length;
  }

  private finishBatch(): void {
    const b = this.batch;
    if (!b) return;
    this.batch = undefined;
    this.statements.push(b.head + b.rows.join(', ') + b.tail);
    this.expectations.push(b.kind === 'delete' ? { kind: 'delete', rows: b.rows.length, table: b.table } : undefined);
  }

  private addToBatch(key: string, kind: 'insert' | 'delete', table: string, head: string, tail: string, row: string): void {
    if (this.batch && this.batch.key !== key) this.finishBatch();
    if (this.batch && this.batch.rows.length >= 1000) this.finishBatch();
    this.batch ??= { key, kind, table, head, tail, rows: [] };
    this.batch.rows.push(row);
    this.statementBytes += row.length + 2;
  }

  /** SQL for the target value of source column i. */
  private value(rp: RelationPlan, i: number, tuple: Tuple): string {
    const c: ColumnPlan = rp.plan.columns[i];
    if (c.using) {
      const row = tuple.map((v, j) => `${literal(v)}::${rp.sourceTypes[j]}`).join(', ');
      const names = rp.plan.columns.map((x) => qi(x.source)).join(', ');
      return `(SELECT (${c.using})::${c.newType} FROM (VALUES (${row})) AS ${qi(rp.plan.source.name)}(${names}))`;
    }
    if (c.newType) return `${literal(tuple[i])}::${rp.sourceTypes[i]}::${c.newType}`;
    return literal(tuple[i]);
  }

  private addInsert(rp: RelationPlan, t: Tuple): void {
    const cols: number[] = [];
    rp.plan.columns.forEach((c, i) => { if (c.target !== undefined) cols.push(i); });
    const key = `I${rp.relid}`;
    const head = `INSERT INTO ${qtable(rp.plan.target)} (${cols.map((i) => qi(rp.plan.columns[i].target!)).join(', ')})${rp.overriding ? ' OVERRIDING SYSTEM VALUE' : ''} VALUES `;
    this.addToBatch(key, 'insert', tableKey(rp.plan.target), head, '', `(${cols.map((i) => this.value(rp, i, t)).join(', ')})`);
  }

  /** WHERE clause matching the row identified by `ident` (a key or old tuple). */
  private where(rp: RelationPlan, ident: Tuple): string {
    const target = qtable(rp.plan.target);
    if (rp.full) {
      const conds = rp.keyIdx
        .filter((i) => rp.plan.columns[i].target !== undefined && ident[i] !== undefined)
        .map((i) => `${qi(rp.plan.columns[i].target!)} IS NOT DISTINCT FROM ${this.value(rp, i, ident)}`);
      return `ctid = (SELECT ctid FROM ${target} WHERE ${conds.join(' AND ')} LIMIT 1)`;
    }
    return rp.keyIdx.map((i) => `${qi(rp.plan.columns[i].target!)} = ${this.value(rp, i, ident)}`).join(' AND ');
  }

  private addUpdate(rp: RelationPlan, newTuple: Tuple, ident: Tuple | undefined, identIsOldRow: boolean): void {
    // With REPLICA IDENTITY FULL the old row carries values the new one marks unchanged.
    const values = identIsOldRow && ident ? newTuple.map((v, i) => (v === undefined ? ident[i] : v)) : newTuple;
    const sets: string[] = [];
    // Without an old key the key did not change: leaving it out of SET also keeps
    // GENERATED ALWAYS identity keys writable.
    const keyUnchanged = !ident && !rp.full ? new Set(rp.keyIdx) : undefined;
    rp.plan.columns.forEach((c, i) => {
      if (c.target === undefined || values[i] === undefined || keyUnchanged?.has(i)) return;
      if (c.using) {
        const missing = rp.plan.columns.find((x, j) => values[j] === undefined && new RegExp(`\\b${x.source.replace(/[^\w]/g, '\\$&')}\\b`).test(c.using!));
        if (missing) {
          throw new SyncApplyError(`${tableKey(rp.plan.source)}: USING expression of ${c.target} reads ${missing.source}, whose unchanged TOAST value the change stream does not carry; set REPLICA IDENTITY FULL on the source table`);
        }
      }
      sets.push(`${qi(c.target)} = ${this.value(rp, i, values)}`);
    });
    if (!sets.length) return;
    const identTuple = ident ?? newTuple;
    if (!rp.full && rp.keyIdx.some((i) => identTuple[i] === undefined)) {
      throw new SyncApplyError(`${tableKey(rp.plan.source)}: update without the key value`);
    }
    this.addStatement(`UPDATE ${qtable(rp.plan.target)} SET ${sets.join(', ')} WHERE ${this.where(rp, identTuple)}`,
      { kind: 'update', rows: 1, table: tableKey(rp.plan.target) });
  }

  private addDelete(rp: RelationPlan, ident: Tuple): void {
    const target = qtable(rp.plan.target);
    if (rp.full) {
      this.addStatement(`DELETE FROM ${target} WHERE ${this.where(rp, ident)}`, { kind: 'delete', rows: 1, table: tableKey(rp.plan.target) });
      return;
    }
    const keys = rp.keyIdx.map((i) => this.value(rp, i, ident));
    const cols = rp.keyIdx.map((i) => qi(rp.plan.columns[i].target!));
    const single = cols.length === 1;
    this.addToBatch(`D${rp.relid}`, 'delete', tableKey(rp.plan.target),
      `DELETE FROM ${target} WHERE ${single ? cols[0] : `(${cols.join(', ')})`} IN (`, ')', single ? keys[0] : `(${keys.join(', ')})`);
  }
}

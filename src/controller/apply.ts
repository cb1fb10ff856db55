/**
 * Runs a migration's statements on one side:
 * - one transaction with lock_timeout, retried from the start on a lock
 *   timeout (55P03); the ledger row commits with it, so "applied" is atomic;
 * - statement by statement when the file holds statements that cannot run in
 *   a transaction; each is retried on 55P03 unless a retry could leave debris
 *   (CREATE INDEX CONCURRENTLY leaves an invalid index behind);
 * - as written when the file has its own BEGIN/COMMIT.
 * A failure says which statement failed and which statements are committed.
 */
import { Client, DatabaseError } from 'pg';
import { connectClient, withClient } from '../util/pg';
import { CONTROLLER_APP } from './db';
import { ensureLedger, LedgerEntry, recordLedger } from './ledger';
import { describeStatement, RunMode, runMode, SqlStatement } from './statements';
import type { StatementProgress } from './types';
import { sleep } from '../util/sleep';

export interface ApplyOptions {
  lockTimeoutMs: number;
  lockRetries: number;
  /** first backoff after a lock timeout; doubles per attempt */
  retryDelayMs?: number;
  ledger: LedgerEntry;
  /** statements already committed by an earlier, interrupted run (statement mode) */
  resumeFrom?: number;
  onProgress?: (p: StatementProgress) => Promise<void> | void;
  onRetry?: (attempt: number, err: DatabaseError, st: SqlStatement) => Promise<void> | void;
}

export class ApplyError extends Error {
  constructor(
    message: string,
    readonly committed: number,
    readonly total: number,
    readonly statement?: SqlStatement,
    readonly sqlstate?: string,
  ) {
    super(message);
    this.name = 'ApplyError';
  }
}

export class ApplyCancelled extends Error {}

const LOCK_TIMEOUT = '55P03';
const pgMessage = (e: unknown): string => {
  const d = e as DatabaseError;
  return d.code ? `${d.message} [SQLSTATE ${d.code}]${d.detail ? ` (${d.detail})` : ''}` : (e as Error).message;
};

/** One run of a file against one database; cancel() interrupts the running statement. */
export class Applier {
  private client: Client | undefined;
  private pid: number | undefined;
  private cancelled = false;

  constructor(private readonly url: string, private readonly statements: SqlStatement[], private readonly opts: ApplyOptions) {}

  get mode(): RunMode { return runMode(this.statements); }

  async cancel(): Promise<void> {
    this.cancelled = true;
    if (!this.pid) return;
    await withClient(this.url, (c) => c.query('SELECT pg_cancel_backend($1)', [this.pid]), CONTROLLER_APP).catch(() => undefined); // it may have finished
  }

  async run(): Promise<StatementProgress> {
    const c = await connectClient(this.url, CONTROLLER_APP);
    this.client = c;
    this.pid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    try {
      await ensureLedger(c);
      switch (this.mode) {
        case 'transaction': return await this.inOneTransaction(c);
        case 'statements': return await this.oneByOne(c);
        default: return await this.asWritten(c);
      }
    } finally {
      this.client = undefined;
      this.pid = undefined;
      await c.end().catch(() => undefined);
    }
  }

  private check(): void {
    if (this.cancelled) throw new ApplyCancelled('cancelled');
  }

  private async progress(p: StatementProgress): Promise<void> {
    await this.opts.onProgress?.(p);
  }

  private backoff(attempt: number): Promise<void> {
    const base = this.opts.retryDelayMs ?? 200;
    return sleep(Math.min(5000, base * 2 ** attempt) * (0.75 + Math.random() / 2));
  }

  private async inOneTransaction(c: Client): Promise<StatementProgress> {
    const total = this.statements.length;
    for (let attempt = 0; ; attempt++) {
      let current: SqlStatement | undefined;
      try {
        this.check();
        await c.query('BEGIN');
        await c.query(`SET LOCAL lock_timeout = ${Number(this.opts.lockTimeoutMs)}`);
        for (const st of this.statements) {
          current = st;
          this.check();
          await c.query(st.sql);
        }
        current = undefined;
        await recordLedger(c, this.opts.ledger);
        await c.query('COMMIT');
        const p: StatementProgress = { total, committed: total, mode: 'transaction' };
        await this.progress(p);
        return p;
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        if (this.cancelled) throw new ApplyCancelled('cancelled; the transaction was rolled back, nothing applied');
        const e = err as DatabaseError;
        if (e.code === LOCK_TIMEOUT && current && attempt < this.opts.lockRetries) {
          await this.opts.onRetry?.(attempt + 1, e, current);
          await this.backoff(attempt);
          continue;
        }
        const where = current ? describeStatement(current) : 'recording the ledger entry';
        const retried = e.code === LOCK_TIMEOUT ? ` after ${attempt + 1} attempts` : '';
        throw new ApplyError(`${where} failed${retried}: ${pgMessage(e)}; nothing applied (the transaction was rolled back)`, 0, total, current, e.code);
      }
    }
  }

  private async oneByOne(c: Client): Promise<StatementProgress> {
    const total = this.statements.length;
    let committed = this.opts.resumeFrom ?? 0;
    await c.query(`SET lock_timeout = ${Number(this.opts.lockTimeoutMs)}`);
    for (const st of this.statements.slice(committed)) {
      for (let attempt = 0; ; attempt++) {
        try {
          this.check();
          await c.query(st.sql);
          break;
        } catch (err) {
          if (err instanceof ApplyCancelled) throw new ApplyCancelled(`cancelled after ${committed} of ${total} statements`);
          const e = err as DatabaseError;
          const leavesDebris = st.kind === 'IndexStmt' && st.noTransaction;
          if (!this.cancelled && e.code === LOCK_TIMEOUT && !leavesDebris && attempt < this.opts.lockRetries) {
            await this.opts.onRetry?.(attempt + 1, e, st);
            await this.backoff(attempt);
            continue;
          }
          throw new ApplyError(
            `${describeStatement(st)} failed: ${pgMessage(e)}; statements 1-${committed} of ${total} ran and are committed, ${st.index}-${total} did not run`
              .replace('statements 1-0 of', 'no statement of'),
            committed, total, st, e.code,
          );
        }
      }
      committed++;
      await this.progress({ total, committed, mode: 'statements' });
    }
    await recordLedger(c, this.opts.ledger);
    return { total, committed, mode: 'statements' };
  }

  private async asWritten(c: Client): Promise<StatementProgress> {
    const total = this.statements.length;
    let committed = 0;
    let inBlock: number[] = [];
    await c.query(`SET lock_timeout = ${Number(this.opts.lockTimeoutMs)}`);
    for (const st of this.statements) {
      try {
        this.check();
        await c.query(st.sql);
      } catch (err) {
        const wasInBlock = inBlock.length > 0;
        if (wasInBlock) await c.query('ROLLBACK').catch(() => undefined);
        if (err instanceof ApplyCancelled) throw new ApplyCancelled(`cancelled after ${committed} of ${total} statements committed`);
        const rolledBack = wasInBlock ? `; the open transaction (statements ${inBlock[0]}-${st.index}) was rolled back` : '';
        throw new ApplyError(`${describeStatement(st)} failed: ${pgMessage(err)}; ${committed} of ${total} statements are committed${rolledBack}`, committed, total, st, (err as DatabaseError).code);
      }
      if (st.txControl === 'begin') inBlock = [st.index];
      else if (st.txControl === 'commit' || st.txControl === 'rollback') {
        if (st.txControl === 'commit') committed += inBlock.length + 1;
        else committed += 1;
        inBlock = [];
      } else if (inBlock.length) inBlock.push(st.index);
      else committed++;
      await this.progress({ total, committed, mode: 'own-transactions' });
    }
    if (inBlock.length) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw new ApplyError(`the file opens a transaction at statement ${inBlock[0]} and never commits it; it was rolled back`, committed, total);
    }
    await recordLedger(c, this.opts.ledger);
    return { total, committed, mode: 'own-transactions' };
  }
}

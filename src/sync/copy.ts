/**
 * Initial copy under the slot's exported snapshot. Every worker imports the
 * same snapshot, so all tables (and all parts of a table) show one instant:
 * exactly the state the change stream continues from.
 *
 * Large tables are split into block (ctid) ranges copied in parallel. Block
 * ranges work for any key type and are read with TID range scans (PostgreSQL
 * 14+) instead of index range scans that would sort by key; the parts do not
 * overlap because a snapshot fixes every row's ctid.
 */
import os from 'node:os';
import type { Client } from 'pg';
import { syncClient } from './connection';
import { TableInfo } from './catalog';
import { relayCopy } from './copy-relay';
import { qi, ql, qtable, tableKey } from './sql';

export interface TableCopyProgress {
  table: string;
  rows: number;
  bytes: number;
  /** estimate from bytes streamed vs the table's size and parts finished; 100 when done */
  percent: number;
  done: boolean;
  /** the table's size on the source (pg_table_size), the denominator of `percent` */
  tableBytes: number;
}

export interface CopyOptions {
  tables: TableInfo[];
  /** tables larger than this are split into parts of about this size */
  chunkBytes: number;
  /** binary COPY: only between servers of the same major version */
  binary: boolean;
  sourceVersion: number;
  onProgress?: (p: TableCopyProgress) => void;
}

export interface TableCopyResult {
  table: string;
  rows: number;
  bytes: number;
  seconds: number;
}

interface Part {
  table: TableInfo;
  /** block range [from, to); `to` undefined = to the end */
  blocks?: { from: number; to?: number };
}

interface TableState {
  table: TableInfo;
  parts: number;
  partsDone: number;
  rows: number;
  bytes: number;
  started: number;
  finished: number;
  lastReport: number;
}

const BLOCK_SIZE = 8192;

/**
 * Parts to copy, largest tables first. A table above `chunkBytes` is split into
 * block ranges of about that size, their number rounded up to a multiple of the
 * workers so that the last round keeps every worker busy.
 */
export function splitIntoParts(tables: TableInfo[], chunkBytes: number, tidRangeScans: boolean, workers = 1): Part[] {
  const parts: Part[] = [];
  // Largest first, so the tail of the run is not one big table copied alone.
  for (const table of [...tables].sort((a, b) => b.bytes - a.bytes)) {
    if (table.kind !== 'r') continue;
    // One worker gains nothing from ranges, and plain COPY reads a whole table faster than a query.
    if (!tidRangeScans || workers < 2 || table.bytes <= chunkBytes) {
      parts.push({ table });
      continue;
    }
    const blocks = Math.ceil(table.bytes / BLOCK_SIZE);
    const count = Math.min(blocks, Math.ceil(Math.ceil(table.bytes / chunkBytes) / workers) * workers);
    const step = Math.ceil(blocks / count);
    for (let from = 0; from < blocks; from += step) {
      // The last part is open-ended: the table may have grown past the size read earlier.
      parts.push({ table, blocks: { from, to: from + step >= blocks ? undefined : from + step } });
    }
  }
  return parts;
}

/** Default for the copy workers where the servers' cores are unknown. */
export const DEFAULT_COPY_WORKERS = 4;

/** Whether a connection URL points at this host (loopback or a Unix socket). */
export function isLocalUrl(url: string): boolean {
  let u: URL;
  try { u = new URL(url); } catch { return false; }
  // libpq's host parameter (?host=/run/postgresql) overrides the authority; a leading / is a socket directory
  const host = (u.searchParams.get('host') ?? decodeURIComponent(u.hostname)).replace(/^\[|\]$/g, '');
  return host === '' || host.startsWith('/') || host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/**
 * How many copy workers to run. Each keeps two server processes busy (COPY TO on the
 * source, COPY FROM on the target) and the relay in this process. When both servers run
 * on this host they share its cores, and workers beyond half of them only contend: on 2
 * cores one plain COPY per table beats four range copies (docs/sync.md, Benchmark).
 * Elsewhere the servers' cores are not known here, so the default is DEFAULT_COPY_WORKERS.
 */
export function defaultCopyWorkers(sourceUrl: string, targetUrl: string, cores = os.availableParallelism()): number {
  if (isLocalUrl(sourceUrl) && isLocalUrl(targetUrl)) return Math.max(1, Math.min(DEFAULT_COPY_WORKERS, Math.floor(cores / 2)));
  return DEFAULT_COPY_WORKERS;
}

interface Pair { src: Client; tgt: Client }

/**
 * Connection pairs (source, target) for the copy. They start connecting before
 * the slot exists, so that connection start-up overlaps slot creation, and each
 * pair starts copying as soon as it is ready: a slow connection delays no one.
 * A source connection waits in a REPEATABLE READ transaction that has not taken
 * a snapshot yet, then imports the slot's.
 */
export class CopyWorkers {
  private readonly clients: Client[] = [];
  private readonly pairs: Promise<Pair>[];

  /**
   * @param firstSource an open source connection (the caller's, which it closes) to use for
   *   the first pair once it resolves, instead of opening one more
   */
  constructor(private readonly sourceUrl: string, private readonly targetUrl: string, count: number, firstSource?: Promise<Client>) {
    this.pairs = Array.from({ length: Math.max(1, count) }, (_, i) => this.openPair(i === 0 ? firstSource : undefined));
    for (const p of this.pairs) p.catch(() => undefined); // awaited by copy(), or closed
  }

  private async connect(url: string): Promise<Client> {
    const c = syncClient(url);
    c.on('error', () => undefined); // failures surface through the copy queries
    this.clients.push(c);
    await c.connect();
    return c;
  }

  private async openPair(firstSource?: Promise<Client>): Promise<Pair> {
    const [src, tgt] = await Promise.all([firstSource ?? this.connect(this.sourceUrl), this.connect(this.targetUrl)]);
    // A crash during the copy means copying again, so the load need not wait for WAL flushes.
    await Promise.all([
      src.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'),
      tgt.query('SET synchronous_commit = off'),
    ]);
    return { src, tgt };
  }

  /** The target's server_version_num (from the first pair). */
  async targetVersion(): Promise<number> {
    const { tgt } = await this.pairs[0];
    return Number((await tgt.query('SHOW server_version_num')).rows[0].server_version_num);
  }

  /** Close the connections this opened (a borrowed first source connection stays with its owner). */
  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.end().catch(() => undefined)));
  }

  /** Copy every part under `snapshot`, each worker taking the next part when it finishes one. */
  async copy(snapshot: string, o: CopyOptions): Promise<TableCopyResult[]> {
    const parts = splitIntoParts(o.tables, o.chunkBytes, o.sourceVersion >= 140000, this.pairs.length);
    const states = new Map<string, TableState>();
    for (const p of parts) {
      const k = tableKey(p.table);
      const s = states.get(k) ?? { table: p.table, parts: 0, partsDone: 0, rows: 0, bytes: 0, started: 0, finished: 0, lastReport: 0 };
      s.parts++;
      states.set(k, s);
    }
    const report = (s: TableState, force = false) => {
      const now = Date.now();
      if (!force && now - s.lastReport < 250) return;
      s.lastReport = now;
      const done = s.partsDone === s.parts;
      const byBytes = s.table.bytes > 0 ? (s.bytes / s.table.bytes) * 100 : 0;
      const byParts = (s.partsDone / s.parts) * 100;
      const percent = done ? 100 : Math.min(99, Math.max(byBytes, byParts));
      o.onProgress?.({ table: tableKey(s.table), rows: s.rows, bytes: s.bytes, percent: Math.round(percent * 10) / 10, done, tableBytes: s.table.bytes });
    };
    // every table announced before the first byte: a listener knows the whole size from the start
    for (const s of states.values()) report(s, true);

    let next = 0;
    let failure: Error | undefined;
    const fmt = o.binary ? ' WITH (FORMAT binary)' : '';
    await Promise.all(this.pairs.map(async (pair) => {
      const { src, tgt } = await pair;
      if (failure || next >= parts.length) return; // the others took every part meanwhile
      await src.query(`SET TRANSACTION SNAPSHOT ${ql(snapshot)}`);
      while (!failure && next < parts.length) {
        const part = parts[next++];
        const s = states.get(tableKey(part.table))!;
        if (!s.started) s.started = Date.now();
        const cols = part.table.columns.filter((c) => !c.generated).map((c) => qi(c.name)).join(', ');
        const where = part.blocks
          ? ` WHERE ctid >= '(${part.blocks.from},0)'::tid${part.blocks.to === undefined ? '' : ` AND ctid < '(${part.blocks.to},0)'::tid`}`
          : '';
        // A whole table is read with plain COPY (no executor per row); a block range needs a query.
        // a table without copyable columns (none, or only generated ones) still has rows: no column list
        const list = cols ? ` (${cols})` : '';
        const sourceSql = part.blocks
          ? `COPY (SELECT ${cols} FROM ONLY ${qtable(part.table)}${where}) TO STDOUT${fmt}`
          : `COPY ${qtable(part.table)}${list} TO STDOUT${fmt}`;
        let partBytes = 0;
        try {
          const r = await relayCopy(src, tgt, sourceSql, `COPY ${qtable(part.table)}${list} FROM STDIN${fmt}`, (n) => {
            s.bytes += n - partBytes;
            partBytes = n;
            report(s);
          });
          s.rows += r.rows;
        } catch (err) {
          failure ??= new Error(`copy of ${tableKey(part.table)} failed: ${(err as Error).message}`);
          throw failure;
        }
        s.partsDone++;
        if (s.partsDone === s.parts) s.finished = Date.now();
        report(s, s.partsDone === s.parts);
      }
    }));
    await Promise.all(this.pairs.map(async (pair) => (await pair).src.query('COMMIT')));
    return [...states.values()].map((s) => ({
      table: tableKey(s.table), rows: s.rows, bytes: s.bytes, seconds: s.started ? ((s.finished || Date.now()) - s.started) / 1000 : 0,
    }));
  }
}

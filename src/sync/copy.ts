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
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { Logger } from 'pino';
import { TableInfo } from './catalog';
import { qi, ql, qtable, tableKey } from './sql';

export interface TableCopyProgress {
  table: string;
  rows: number;
  bytes: number;
  /** estimate from bytes streamed vs the table's size and parts finished; 100 when done */
  percent: number;
  done: boolean;
}

export interface CopyOptions {
  sourceUrl: string;
  targetUrl: string;
  snapshot: string;
  tables: TableInfo[];
  parallel: number;
  /** tables larger than this are split into parts of about this size */
  chunkBytes: number;
  /** binary COPY: only between servers of the same major version */
  binary: boolean;
  sourceVersion: number;
  log: Logger;
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

export function splitIntoParts(tables: TableInfo[], chunkBytes: number, tidRangeScans: boolean): Part[] {
  const parts: Part[] = [];
  // Largest first, so the tail of the run is not one big table copied alone.
  for (const table of [...tables].sort((a, b) => b.bytes - a.bytes)) {
    if (table.kind !== 'r') continue;
    if (!tidRangeScans || table.bytes <= chunkBytes) {
      parts.push({ table });
      continue;
    }
    const blocks = Math.ceil(table.bytes / BLOCK_SIZE);
    const step = Math.max(1, Math.floor(chunkBytes / BLOCK_SIZE));
    for (let from = 0; from < blocks; from += step) {
      // The last part is open-ended: the table may have grown past the size read earlier.
      parts.push({ table, blocks: { from, to: from + step >= blocks ? undefined : from + step } });
    }
  }
  return parts;
}

export async function copyTables(o: CopyOptions): Promise<TableCopyResult[]> {
  const parts = splitIntoParts(o.tables, o.chunkBytes, o.sourceVersion >= 140000);
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
    o.onProgress?.({ table: tableKey(s.table), rows: s.rows, bytes: s.bytes, percent: Math.round(percent * 10) / 10, done });
  };

  const workers = Math.max(1, Math.min(o.parallel, parts.length));
  const clients: Client[] = [];
  const open = async (url: string) => {
    const c = new Client({ connectionString: url });
    c.on('error', () => undefined); // failures surface through the copy streams
    clients.push(c);
    await c.connect();
    return c;
  };
  let next = 0;
  let failure: Error | undefined;
  try {
    // Import the snapshot in every worker before any copying starts.
    const pairs = await Promise.all(Array.from({ length: workers }, async () => {
      const src = await open(o.sourceUrl);
      await src.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await src.query(`SET TRANSACTION SNAPSHOT ${ql(o.snapshot)}`);
      const tgt = await open(o.targetUrl);
      // A crash during the copy means copying again, so the load need not wait for WAL flushes.
      await tgt.query('SET synchronous_commit = off');
      return { src, tgt };
    }));
    const fmt = o.binary ? ' WITH (FORMAT binary)' : '';
    await Promise.all(pairs.map(async ({ src, tgt }) => {
      while (!failure && next < parts.length) {
        const part = parts[next++];
        const s = states.get(tableKey(part.table))!;
        if (!s.started) s.started = Date.now();
        const cols = part.table.columns.filter((c) => !c.generated).map((c) => qi(c.name)).join(', ');
        const where = part.blocks
          ? ` WHERE ctid >= '(${part.blocks.from},0)'::tid${part.blocks.to === undefined ? '' : ` AND ctid < '(${part.blocks.to},0)'::tid`}`
          : '';
        const reader = src.query(copyTo(`COPY (SELECT ${cols} FROM ONLY ${qtable(part.table)}${where}) TO STDOUT${fmt}`));
        const writer = tgt.query(copyFrom(`COPY ${qtable(part.table)} (${cols}) FROM STDIN${fmt}`));
        const counter = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            s.bytes += chunk.length;
            report(s);
            cb(null, chunk);
          },
        });
        try {
          await pipeline(reader, counter, writer);
        } catch (err) {
          failure ??= new Error(`copy of ${tableKey(part.table)} failed: ${(err as Error).message}`);
          throw failure;
        }
        s.rows += writer.rowCount;
        s.partsDone++;
        if (s.partsDone === s.parts) s.finished = Date.now();
        report(s, s.partsDone === s.parts);
      }
    }));
    await Promise.all(pairs.map(({ src }) => src.query('COMMIT')));
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
  return [...states.values()].map((s) => ({
    table: tableKey(s.table), rows: s.rows, bytes: s.bytes, seconds: s.started ? ((s.finished || Date.now()) - s.started) / 1000 : 0,
  }));
}

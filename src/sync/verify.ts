/**
 * Verification: per table, the row count and an order-independent
 * checksum of the mapped columns, computed on each side in SQL — the source
 * through the mapping's expressions, the target from its own columns. On a
 * mismatch the rows are bucketed by a hash of their key; the first bucket that
 * differs is fetched from both sides and compared row by row to name a key.
 */
import { Client } from 'pg';
import { columnExpression, mappedColumns, TablePlan } from './plan';
import { qi, qtable, tableKey } from './sql';

export interface TableVerification {
  table: string;
  target: string;
  sourceRows: number;
  targetRows: number;
  equal: boolean;
  /** the first key found whose row differs; absent when equal or the table has no key */
  firstDifference?: { key: string; source: 'missing' | 'present'; target: 'missing' | 'present' };
}

export interface VerifyResult {
  equal: boolean;
  tables: TableVerification[];
}

interface Side {
  from: string;
  rowExpr: string;
  keyExpr?: string;
}

const BUCKETS = 1024;

function sides(plan: TablePlan, keyColumns: string[]): { source: Side; target: Side } {
  const cols = mappedColumns(plan);
  const byName = new Map(cols.map((c) => [c.source, c]));
  const keys = keyColumns.map((k) => byName.get(k)).filter((c): c is NonNullable<typeof c> => !!c);
  const hasKey = keys.length > 0 && keys.length === keyColumns.length;
  return {
    source: {
      from: `ONLY ${qtable(plan.source)} AS ${qi(plan.source.name)}`,
      rowExpr: `ROW(${cols.map(columnExpression).join(', ')})::text`,
      keyExpr: hasKey ? `ROW(${keys.map(columnExpression).join(', ')})::text` : undefined,
    },
    target: {
      from: `ONLY ${qtable(plan.target)} AS t`,
      rowExpr: `ROW(${cols.map((c) => `t.${qi(c.target)}`).join(', ')})::text`,
      keyExpr: hasKey ? `ROW(${keys.map((c) => `t.${qi(c.target)}`).join(', ')})::text` : undefined,
    },
  };
}

async function aggregate(c: Client, s: Side): Promise<{ n: number; h: string }> {
  const { rows } = await c.query(`SELECT count(*)::float8 AS n, coalesce(sum(hashtextextended(${s.rowExpr}, 0)::numeric), 0)::text AS h FROM ${s.from}`);
  return { n: Number(rows[0].n), h: rows[0].h };
}

async function buckets(c: Client, s: Side): Promise<Map<number, string>> {
  const { rows } = await c.query(
    `SELECT abs(hashtext(${s.keyExpr}) % ${BUCKETS}) AS b, count(*)::text || ':' || sum(hashtextextended(${s.rowExpr}, 0)::numeric)::text AS h FROM ${s.from} GROUP BY 1`);
  return new Map(rows.map((r) => [Number(r.b), r.h as string]));
}

async function bucketRows(c: Client, s: Side, bucket: number): Promise<Map<string, string>> {
  const { rows } = await c.query(`SELECT ${s.keyExpr} AS k, md5(${s.rowExpr}) AS h FROM ${s.from} WHERE abs(hashtext(${s.keyExpr}) % ${BUCKETS}) = $1`, [bucket]);
  return new Map(rows.map((r) => [r.k as string, r.h as string]));
}

async function firstDifference(src: Client, tgt: Client, s: { source: Side; target: Side }): Promise<TableVerification['firstDifference']> {
  const [a, b] = await Promise.all([buckets(src, s.source), buckets(tgt, s.target)]);
  const differing = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).sort((x, y) => x - y);
  for (const bucket of differing) {
    const [ra, rb] = await Promise.all([bucketRows(src, s.source, bucket), bucketRows(tgt, s.target, bucket)]);
    const keys = [...new Set([...ra.keys(), ...rb.keys()])].sort();
    for (const key of keys) {
      if (ra.get(key) !== rb.get(key)) {
        return { key, source: ra.has(key) ? 'present' : 'missing', target: rb.has(key) ? 'present' : 'missing' };
      }
    }
  }
  return undefined;
}

export async function verifyTable(src: Client, tgt: Client, plan: TablePlan, keyColumns: string[]): Promise<TableVerification> {
  const s = sides(plan, keyColumns);
  const [a, b] = await Promise.all([aggregate(src, s.source), aggregate(tgt, s.target)]);
  const result: TableVerification = {
    table: tableKey(plan.source), target: tableKey(plan.target), sourceRows: a.n, targetRows: b.n, equal: a.n === b.n && a.h === b.h,
  };
  if (!result.equal && s.source.keyExpr) result.firstDifference = await firstDifference(src, tgt, s);
  return result;
}

/**
 * Bounded data changes: an UPDATE or DELETE whose WHERE clause picks rows by a unique key —
 * `id = 5`, `id IN (1, 2, 3)`, `id = ANY('{…}')`, `id BETWEEN 1 AND 1000`, `id >= 1 AND id < 1001`,
 * `id IN (SELECT … LIMIT 500)` — touches at most that many rows, whatever the table's size. Such a
 * keyed batch locks a bounded set of rows for milliseconds: it is not a bulk change.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { listName, Node } from './ast';

/** Above this many rows a keyed change is no longer "a batch". */
export const MAX_BOUNDED_ROWS = 10_000;

const constant = (n: Node): boolean => {
  if (n?.A_Const) return !n.A_Const.isnull;
  if (n?.TypeCast) return constant(n.TypeCast.arg);
  return false;
};

const integer = (n: Node): number | undefined => {
  const c = n?.TypeCast ? n.TypeCast.arg?.A_Const : n?.A_Const;
  const v = c?.ival?.ival ?? (c?.ival && Object.keys(c.ival).length === 0 ? 0 : undefined);
  return typeof v === 'number' ? v : undefined;
};

/** `col` or `t.col` → col */
const columnOf = (n: Node): string | undefined => {
  const f = n?.ColumnRef?.fields;
  if (!f || f.some((x: Node) => x.A_Star)) return undefined;
  return listName(f).pop();
};

/** elements of an array constant: `'{1,2,3}'`, `ARRAY[1,2,3]`, `'{…}'::int[]` */
function arrayLength(n: Node): number | undefined {
  const e = n?.TypeCast ? n.TypeCast.arg : n;
  if (e?.A_ArrayExpr) return (e.A_ArrayExpr.elements ?? []).every(constant) ? (e.A_ArrayExpr.elements ?? []).length : undefined;
  const s: string | undefined = e?.A_Const?.sval?.sval;
  if (s === undefined || !/^\{.*\}$/s.test(s.trim())) return undefined;
  const inner = s.trim().slice(1, -1).trim();
  return inner === '' ? 0 : inner.split(',').length;
}

interface Range { lo?: number; hi?: number }

/**
 * At most how many rows the condition can match when `keys` are the table's one-column unique keys,
 * or undefined when it is not bounded by a key.
 */
export function boundedRows(where: Node | undefined, keys: Set<string>): number | undefined {
  if (!where || keys.size === 0) return undefined;
  const isKey = (n: Node) => { const c = columnOf(n); return c !== undefined && keys.has(c); };

  const bool = where.BoolExpr;
  if (bool?.boolop === 'AND_EXPR') {
    // the smallest bound among the conjuncts, and ranges built from `key >= a AND key < b`
    let best: number | undefined;
    const ranges = new Map<string, Range>();
    for (const arg of bool.args ?? []) {
      const b = boundedRows(arg, keys);
      if (b !== undefined) best = best === undefined ? b : Math.min(best, b);
      const e = arg.A_Expr;
      if (e?.kind !== 'AEXPR_OP') continue;
      const op = listName(e.name).pop();
      let col = isKey(e.lexpr) ? columnOf(e.lexpr) : undefined;
      let v = integer(e.rexpr);
      let dir = op;
      if (!col && isKey(e.rexpr)) { col = columnOf(e.rexpr); v = integer(e.lexpr); dir = ({ '<': '>', '<=': '>=', '>': '<', '>=': '<=' } as Record<string, string>)[op ?? '']; }
      if (!col || v === undefined) continue;
      const r = ranges.get(col) ?? {};
      if (dir === '>=') r.lo = Math.max(r.lo ?? -Infinity, v);
      else if (dir === '>') r.lo = Math.max(r.lo ?? -Infinity, v + 1);
      else if (dir === '<=') r.hi = Math.min(r.hi ?? Infinity, v);
      else if (dir === '<') r.hi = Math.min(r.hi ?? Infinity, v - 1);
      ranges.set(col, r);
    }
    for (const r of ranges.values()) {
      if (r.lo !== undefined && r.hi !== undefined) best = Math.min(best ?? Infinity, Math.max(0, r.hi - r.lo + 1));
    }
    return best;
  }
  if (bool?.boolop === 'OR_EXPR') {
    let sum = 0;
    for (const arg of bool.args ?? []) {
      const b = boundedRows(arg, keys);
      if (b === undefined) return undefined;
      sum += b;
    }
    return sum;
  }
  const e = where.A_Expr;
  if (e) {
    const op = listName(e.name).pop();
    if (e.kind === 'AEXPR_OP' && op === '=') {
      if ((isKey(e.lexpr) && constant(e.rexpr)) || (isKey(e.rexpr) && constant(e.lexpr))) return 1;
    }
    if (e.kind === 'AEXPR_IN' && op === '=' && isKey(e.lexpr)) {
      const items: Node[] = e.rexpr?.List?.items ?? [];
      return items.every(constant) ? items.length : undefined;
    }
    if (e.kind === 'AEXPR_OP_ANY' && op === '=' && isKey(e.lexpr)) return arrayLength(e.rexpr);
    if (e.kind === 'AEXPR_BETWEEN' && isKey(e.lexpr)) {
      const [lo, hi] = (e.rexpr?.List?.items ?? []).map(integer);
      return lo !== undefined && hi !== undefined ? Math.max(0, hi - lo + 1) : undefined;
    }
    return undefined;
  }
  // key IN (SELECT … LIMIT n): at most n keys, each one row
  const sub = where.SubLink;
  if (sub?.subLinkType === 'ANY_SUBLINK' && isKey(sub.testexpr)) {
    const sel = sub.subselect?.SelectStmt;
    return sel?.limitOption === 'LIMIT_OPTION_COUNT' ? integer(sel.limitCount) : undefined;
  }
  return undefined;
}

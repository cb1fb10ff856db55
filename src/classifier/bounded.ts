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

/** The table a keyed batch changes: its unique one-column keys, which of them are integers (ranges count rows only there), its name. */
export interface BatchTable { keys: Set<string>; integerKeys: Set<string>; name: string }

/**
 * At most how many rows the condition can match on `table`, or undefined when it is not bounded
 * by a key.
 */
export function boundedRows(where: Node | undefined, table: BatchTable): number | undefined {
  const keys = table.keys;
  if (!where || keys.size === 0) return undefined;
  const isKey = (n: Node) => { const c = columnOf(n); return c !== undefined && keys.has(c); };
  const isIntegerKey = (n: Node) => { const c = columnOf(n); return c !== undefined && table.integerKeys.has(c); };

  const bool = where.BoolExpr;
  if (bool?.boolop === 'AND_EXPR') {
    // the smallest bound among the conjuncts, and ranges built from `key >= a AND key < b`
    let best: number | undefined;
    const ranges = new Map<string, Range>();
    for (const arg of bool.args ?? []) {
      const b = boundedRows(arg, table);
      if (b !== undefined) best = best === undefined ? b : Math.min(best, b);
      const e = arg.A_Expr;
      if (e?.kind !== 'AEXPR_OP') continue;
      const op = listName(e.name).pop();
      let col = isIntegerKey(e.lexpr) ? columnOf(e.lexpr) : undefined;
      let v = integer(e.rexpr);
      let dir = op;
      if (!col && isIntegerKey(e.rexpr)) { col = columnOf(e.rexpr); v = integer(e.lexpr); dir = ({ '<': '>', '<=': '>=', '>': '<', '>=': '<=' } as Record<string, string>)[op ?? '']; }
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
      const b = boundedRows(arg, table);
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
    // a range counts rows only on an integer key (numeric 1 to 2 holds any number of rows)
    if (e.kind === 'AEXPR_BETWEEN' && isIntegerKey(e.lexpr)) {
      const [lo, hi] = (e.rexpr?.List?.items ?? []).map(integer);
      return lo !== undefined && hi !== undefined ? Math.max(0, hi - lo + 1) : undefined;
    }
    return undefined;
  }
  // key IN (SELECT key FROM the same table … LIMIT n): at most n keys, each one row. Only from the
  // table itself: a column the subquery's FROM does not have would be the outer row's (correlated)
  const sub = where.SubLink;
  if (sub?.subLinkType === 'ANY_SUBLINK' && isKey(sub.testexpr) && (sub.operName === undefined || listName(sub.operName).pop() === '=')) {
    const sel = sub.subselect?.SelectStmt;
    const from: Node[] = sel?.fromClause ?? [];
    const rel = from.length === 1 ? from[0].RangeVar : undefined;
    const target = sel?.targetList?.length === 1 ? sel.targetList[0].ResTarget?.val : undefined;
    const fields = target?.ColumnRef ? listName(target.ColumnRef.fields) : [];
    const qualifierOk = fields.length === 1 || (fields.length === 2 && fields[0] === (rel?.alias?.aliasname ?? rel?.relname));
    const self = rel && rel.relname === table.name && fields.length > 0 && qualifierOk && fields[fields.length - 1] === columnOf(sub.testexpr);
    return self && sel.limitOption === 'LIMIT_OPTION_COUNT' ? integer(sel.limitCount) : undefined;
  }
  return undefined;
}

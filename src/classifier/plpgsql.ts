/**
 * What a DO block runs: the SQL statements of its PL/pgSQL body, and the strings it EXECUTEs
 * when they are literals (or concatenations of literals). A computed EXECUTE cannot be seen.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { listName, walk } from './ast';
import { parsePlpgsqlBody, parseSql } from './parser';

export interface InnerSql {
  /** SQL text to classify (absent for a computed EXECUTE) */
  sql?: string;
  /** 1-based line within the body */
  lineno: number;
  /** true for PERFORM, which runs a SELECT */
  perform?: boolean;
}

export interface DoBody { language: string; body?: string; bodyLocation?: number }

export function doBody(n: any): DoBody {
  let language = 'plpgsql';
  let body: string | undefined;
  let bodyLocation: number | undefined;
  for (const a of n.args ?? []) {
    const d = a.DefElem;
    if (d?.defname === 'language') language = String(d.arg?.String?.sval ?? language).toLowerCase();
    if (d?.defname === 'as') { body = d.arg?.String?.sval; bodyLocation = d.location; }
  }
  return { language, body, bodyLocation };
}

/** The string value of a PL/pgSQL expression when it is a literal or a || of literals. */
function literalString(expr: string): string | undefined {
  let stmts;
  try { stmts = parseSql(`SELECT ${expr}`); } catch { return undefined; }
  const target = stmts[0]?.node?.targetList;
  if (!target || target.length !== 1) return undefined;
  const value = (n: any): string | undefined => {
    if (typeof n?.A_Const?.sval?.sval === 'string') return n.A_Const.sval.sval;
    const e = n?.A_Expr;
    if (e?.kind === 'AEXPR_OP' && listName(e.name)[0] === '||') {
      const l = value(e.lexpr);
      const r = value(e.rexpr);
      return l !== undefined && r !== undefined ? l + r : undefined;
    }
    return undefined;
  };
  return value(target[0].ResTarget?.val);
}

/** Statements of a PL/pgSQL body; throws when PostgreSQL's PL/pgSQL parser rejects it. */
export function innerStatements(body: string): InnerSql[] {
  const tree = parsePlpgsqlBody(body);
  const out: InnerSql[] = [];
  walk(tree, (key, v) => {
    if (key === 'PLpgSQL_stmt_execsql') out.push({ sql: v.sqlstmt?.PLpgSQL_expr?.query, lineno: v.lineno ?? 1 });
    else if (key === 'PLpgSQL_stmt_perform') {
      const q: string | undefined = v.expr?.PLpgSQL_expr?.query;
      out.push({ sql: q && !/^\s*select\b/i.test(q) ? `SELECT ${q}` : q, lineno: v.lineno ?? 1, perform: true });
    } else if (key === 'PLpgSQL_stmt_dynexecute') {
      out.push({ sql: literalString(v.query?.PLpgSQL_expr?.query ?? ''), lineno: v.lineno ?? 1 });
    }
  });
  return out.sort((a, b) => a.lineno - b.lineno);
}

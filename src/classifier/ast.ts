/**
 * Small readers over libpg-query's JSON parse tree: names, types, expression text.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { scanTokens } from './parser';

export type Node = any;

/** A relation as written, plus the key used to recognise it again (schema defaults to public). */
export interface RelName { display: string; key: string; schema: string; name: string }

export function relName(rv: Node): RelName | undefined {
  if (!rv?.relname) return undefined;
  const schema: string = rv.schemaname ?? 'public';
  return { display: rv.schemaname ? `${rv.schemaname}.${rv.relname}` : rv.relname, key: `${schema}.${rv.relname}`, schema, name: rv.relname };
}

/** A name given as a list of String nodes (DROP objects, type names). */
export function listName(items: Node[] | undefined): string[] {
  return (items ?? []).map((i: Node) => i?.String?.sval ?? i?.sval).filter((s: unknown): s is string => typeof s === 'string');
}

export function relFromList(parts: string[]): RelName | undefined {
  if (parts.length === 0) return undefined;
  const name = parts[parts.length - 1];
  const schema = parts.length > 1 ? parts[parts.length - 2] : 'public';
  return { display: parts.slice(-2).join('.'), key: `${schema}.${name}`, schema, name };
}

const TYPE_ALIASES: Record<string, string> = {
  int4: 'integer', int: 'integer', int8: 'bigint', int2: 'smallint', float8: 'double precision', float4: 'real',
  bool: 'boolean', 'character varying': 'varchar', character: 'bpchar', char: 'bpchar', decimal: 'numeric',
  timestamptz: 'timestamp with time zone', timestamp: 'timestamp without time zone', timetz: 'time with time zone', time: 'time without time zone',
  'bit varying': 'varbit', serial4: 'serial', serial8: 'bigserial',
};

/** A type as PostgreSQL would name it (aliases resolved) and its numeric modifiers. */
export interface TypeInfo { name: string; mods: number[]; array: boolean }

export function typeInfo(typeName: Node): TypeInfo {
  const parts = listName(typeName?.names);
  const base = (parts[parts.length - 1] ?? '').toLowerCase();
  const mods = (typeName?.typmods ?? []).map((m: Node) => m?.A_Const?.ival?.ival ?? 0);
  return { name: TYPE_ALIASES[base] ?? base, mods, array: Array.isArray(typeName?.arrayBounds) && typeName.arrayBounds.length > 0 };
}

export function typeText(t: TypeInfo): string {
  return `${t.name}${t.mods.length ? `(${t.mods.join(',')})` : ''}${t.array ? '[]' : ''}`;
}

/** Calls visit for every object node in the tree with the key it was found under. */
export function walk(node: Node, visit: (key: string, value: Node) => void): void {
  if (Array.isArray(node)) { for (const n of node) walk(n, visit); return; }
  if (node === null || typeof node !== 'object') return;
  for (const k of Object.keys(node)) {
    const v = node[k];
    if (v !== null && typeof v === 'object') {
      if (!Array.isArray(v)) visit(k, v);
      walk(v, visit);
    }
  }
}

/** Names of the functions an expression calls (last part, lower case). */
export function calledFunctions(node: Node): string[] {
  const out: string[] = [];
  walk(node, (k, v) => { if (k === 'FuncCall') out.push(listName(v.funcname).pop()?.toLowerCase() ?? ''); });
  return out;
}

/** String literals in a tree (used to spot a new enum value in later statements). */
export function stringConstants(node: Node): string[] {
  const out: string[] = [];
  walk(node, (k, v) => { if (k === 'A_Const' && typeof v.sval?.sval === 'string') out.push(v.sval.sval); });
  return out;
}

const STOP_WORDS = new Set(['NOT', 'NULL', 'CONSTRAINT', 'CHECK', 'UNIQUE', 'PRIMARY', 'REFERENCES', 'DEFAULT', 'GENERATED', 'COLLATE', 'DEFERRABLE', 'INITIALLY', 'USING', 'STORED', 'VIRTUAL']);

/**
 * The source text of an expression that follows `keyword` (DEFAULT, USING, TYPE) and contains
 * byte `rel` of `text`: from the token after the last such keyword before `rel` up to the next
 * comma, semicolon or unbalanced parenthesis, or (for defaults and types) the next
 * column-definition keyword at the same depth. Node locations point inside parentheses, so the
 * keyword is what marks where the expression starts.
 */
export function expressionText(text: string, rel: number, keyword: string, stopAtKeywords = true): string | undefined {
  if (rel < 0) return undefined;
  let tokens;
  try { tokens = scanTokens(text); } catch { return undefined; }
  tokens = tokens.filter((t) => t.tokenName !== 'SQL_COMMENT' && t.tokenName !== 'C_COMMENT');
  let from = -1;
  for (let i = 0; i < tokens.length && tokens[i].start <= rel; i++) if (tokens[i].text.toUpperCase() === keyword) from = i + 1;
  if (from < 0) return undefined;
  let depth = 0;
  let first = -1;
  let last = -1;
  for (let i = from; i < tokens.length; i++) {
    const t = tokens[i];
    if (first >= 0 && depth === 0) {
      if (t.text === ',' || t.text === ';' || t.text === ')') break;
      if (stopAtKeywords && STOP_WORDS.has(t.text.toUpperCase()) && t.tokenName !== 'IDENT') break;
    }
    if (t.text === '(' || t.text === '[') depth++;
    if (t.text === ')' || t.text === ']') { if (depth === 0) break; depth--; }
    if (first < 0) first = t.start;
    last = t.end;
  }
  if (first < 0) return undefined;
  return Buffer.from(text, 'utf8').toString('utf8', first, last);
}

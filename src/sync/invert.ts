/**
 * The inverse of a schema mapping, for reverse sync (new side → old side) after
 * a flip. Where a change cannot be undone without losing data, the inverse is
 * still returned (it is what reverse sync would do) together with the reasons,
 * so validation can require --no-rollback.
 */
import { AddedColumn, ColumnTypeChange, SchemaMapping, TableMapping } from '../classifier/mapping';
import { TableCatalog } from './catalog';
import { normaliseTableKey, parseTableName, tableKey } from './sql';

export interface InverseMapping {
  mapping: SchemaMapping;
  /** why rolling back through reverse sync would lose or refuse data; empty = invertible */
  problems: string[];
  /** what reverse sync does not carry back, though nothing breaks */
  warnings: string[];
  invertible: boolean;
}

const ALIASES: Record<string, string> = {
  int: 'integer', int4: 'integer', integer: 'integer', int2: 'smallint', smallint: 'smallint',
  int8: 'bigint', bigint: 'bigint', float4: 'real', real: 'real', float8: 'double precision',
  float: 'double precision', 'double precision': 'double precision', decimal: 'numeric', numeric: 'numeric',
  varchar: 'character varying', 'character varying': 'character varying', text: 'text',
  bool: 'boolean', boolean: 'boolean', timestamptz: 'timestamp with time zone',
  'timestamp with time zone': 'timestamp with time zone', timestamp: 'timestamp without time zone',
  'timestamp without time zone': 'timestamp without time zone', uuid: 'uuid', jsonb: 'jsonb', json: 'json', date: 'date',
};

interface NormType { base: string; args: number[] }

export function normaliseType(text: string): NormType {
  const t = text.trim().toLowerCase().replace(/\s+/g, ' ').replace(/^pg_catalog\./, '');
  const m = /^([a-z_][a-z0-9_ ]*?)\s*(?:\(([\d,\s]+)\))?$/.exec(t);
  if (!m) return { base: t, args: [] };
  const base = ALIASES[m[1]] ?? m[1];
  return { base, args: m[2] ? m[2].split(',').map((x) => Number(x.trim())) : [] };
}

const INT_DIGITS: Record<string, number> = { smallint: 5, integer: 10, bigint: 19 };
const INT_RANK: Record<string, number> = { smallint: 1, integer: 2, bigint: 3 };

/** True when every value of `from` converts to `to` and back unchanged. */
export function isWidening(fromText: string, toText: string): boolean {
  const from = normaliseType(fromText);
  const to = normaliseType(toText);
  const same = from.base === to.base && from.args.join() === to.args.join();
  if (same) return true;
  if (INT_RANK[from.base] && INT_RANK[to.base]) return INT_RANK[to.base] >= INT_RANK[from.base];
  if (INT_RANK[from.base] && to.base === 'numeric') {
    return !to.args.length || to.args[0] - (to.args[1] ?? 0) >= INT_DIGITS[from.base];
  }
  if (from.base === 'real' && to.base === 'double precision') return true;
  if (from.base === 'numeric' && to.base === 'numeric') {
    if (!to.args.length) return true;
    if (!from.args.length) return false;
    const [p1, s1 = 0] = from.args;
    const [p2, s2 = 0] = to.args;
    return s2 >= s1 && p2 - s2 >= p1 - s1;
  }
  const isVarchar = (t: NormType) => t.base === 'character varying' || t.base === 'text';
  if (isVarchar(from) && isVarchar(to)) {
    if (to.base === 'text' || !to.args.length) return true;
    return from.base === 'character varying' && from.args.length === 1 && to.args[0] >= from.args[0];
  }
  return false;
}

/**
 * True when converting `from` to `to` (an assignment cast, as ALTER COLUMN TYPE does) either
 * keeps every value exactly or fails the statement: a narrower integer (out of range is an
 * error) or a shorter varchar (too long is an error). Its inverse is then a widening.
 */
function keepsOrRefuses(fromText: string, toText: string): boolean {
  const from = normaliseType(fromText);
  const to = normaliseType(toText);
  if (INT_RANK[from.base] && INT_RANK[to.base]) return true;
  const isVarchar = (t: NormType) => t.base === 'character varying' || t.base === 'text';
  return isVarchar(from) && isVarchar(to);
}

/** A USING expression that is only the column itself, possibly cast to the new type. */
function isPlainCast(using: string | undefined, oldName: string, newType: string): boolean {
  if (!using) return true;
  const col = `(?:"${oldName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"|${oldName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')})`;
  const u = using.trim().replace(/^\((.*)\)$/s, '$1').trim();
  const cast = new RegExp(`^${col}\\s*(?:::\\s*(.+))?$`, 'i').exec(u) ?? new RegExp(`^cast\\s*\\(\\s*${col}\\s+as\\s+(.+)\\)$`, 'i').exec(u);
  if (!cast) return false;
  if (!cast[1]) return true;
  const a = normaliseType(cast[1]);
  const b = normaliseType(newType);
  return a.base === b.base && a.args.join() === b.args.join();
}

function oldNameOf(t: TableMapping, newName: string): string {
  for (const [o, n] of Object.entries(t.renamedColumns)) if (n === newName) return o;
  return newName;
}

/**
 * Invert `mapping`. `oldCatalog` is the old side's catalog (readCatalog), for
 * the dropped columns' nullability/defaults and the original column types.
 */
export function invertMapping(mapping: SchemaMapping, oldCatalog: TableCatalog): InverseMapping {
  const problems: string[] = [];
  const warnings: string[] = [];
  const tables: TableMapping[] = [];
  for (const t of mapping.tables) {
    const oldKey = normaliseTableKey(t.table);
    const oldName = parseTableName(t.table);
    const newName = t.renamedTo ? parseTableName(t.renamedTo, oldName.schema) : oldName;
    const info = oldCatalog.get(oldKey);
    if (!info) {
      problems.push(`${oldKey}: not in the old side's catalog, so its inverse cannot be checked`);
      continue;
    }
    const column = (name: string) => info.columns.find((c) => c.name === name);
    const inv: TableMapping = {
      table: tableKey(newName),
      renamedTo: t.renamedTo ? tableKey(oldName) : undefined,
      renamedColumns: Object.fromEntries(Object.entries(t.renamedColumns).map(([o, n]) => [n, o])),
      droppedColumns: t.addedColumns.map((a) => a.column),
      addedColumns: [],
      typeChanges: [],
    };
    for (const d of t.droppedColumns) {
      const c = column(d);
      if (!c) { problems.push(`${oldKey}.${d}: dropped column not found in the old side's catalog`); continue; }
      if (c.notNull && !c.hasDefault && !c.generated && !c.identity) {
        problems.push(`${oldKey}.${d}: dropped column is NOT NULL without a default on the old side, so rows inserted after the flip cannot be written back`);
      } else {
        warnings.push(`${oldKey}.${d}: dropped column gets its default (or NULL) in rows inserted after the flip`);
      }
      const added: AddedColumn = { column: d, notNull: c.notNull, generated: c.generated || undefined };
      inv.addedColumns.push(added);
    }
    for (const change of t.typeChanges) {
      const oldCol = oldNameOf(t, change.column);
      const c = column(oldCol);
      if (!c) { problems.push(`${oldKey}.${oldCol}: type-changed column not found in the old side's catalog`); continue; }
      const plain = isPlainCast(change.using, oldCol, change.newType);
      if (plain && isWidening(c.type, change.newType)) {
        if (!isWidening(change.newType, c.type)) {
          warnings.push(`${oldKey}.${oldCol}: a value written after the flip that does not fit ${c.type} cannot go back: a rollback then stops as impossible and traffic stays on the new side`);
        }
      } else if (!plain || !keepsOrRefuses(c.type, change.newType)) {
        problems.push(`${oldKey}.${oldCol}: type change ${c.type} → ${change.newType}${change.using ? ` USING ${change.using}` : ''} can lose data; writing rows back after the flip would overwrite the old side's values`);
      }
      const back: ColumnTypeChange = { column: oldCol, newType: c.type };
      inv.typeChanges.push(back);
    }
    tables.push(inv);
  }
  for (const n of mapping.newTables) warnings.push(`${normaliseTableKey(n)}: new table; rows written to it after the flip are not synced back`);
  return {
    mapping: { tables, newTables: [...mapping.droppedTables], droppedTables: [...mapping.newTables] },
    problems, warnings, invertible: problems.length === 0,
  };
}

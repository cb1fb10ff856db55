/**
 * The schema mapping turned into per-table plans: for each source column, the
 * target column it feeds and the SQL that converts its value. One plan serves
 * the change stream, verification and reverse sync.
 */
import { SchemaMapping, TableMapping } from '../classifier/mapping';
import { TableCatalog } from './catalog';
import { normaliseTableKey, parseTableName, qi, TableName, tableKey } from './sql';

export interface ColumnPlan {
  /** the column's name in the source (old) schema */
  source: string;
  /** its name on the target; undefined when the mapping drops it */
  target?: string;
  /** a type change: the new type, and the USING expression over the old row if any */
  newType?: string;
  using?: string;
}

export interface TablePlan {
  source: TableName;
  target: TableName;
  /** dropped by the migration: its changes are ignored */
  dropped: boolean;
  columns: ColumnPlan[];
}

export class SyncPlanError extends Error {
  override name = 'SyncPlanError';
}

/** Index of a mapping by old table name, so lookups per change are O(1). */
export class MappingIndex {
  private readonly tables = new Map<string, TableMapping>();
  private readonly dropped = new Set<string>();
  private readonly created = new Set<string>();

  constructor(readonly mapping: SchemaMapping) {
    for (const t of mapping.tables) this.tables.set(normaliseTableKey(t.table), t);
    for (const t of mapping.droppedTables) this.dropped.add(normaliseTableKey(t));
    for (const t of mapping.newTables) this.created.add(normaliseTableKey(t));
  }

  isDropped(source: TableName): boolean {
    return this.dropped.has(tableKey(source));
  }

  /** The target name of a source table. */
  targetOf(source: TableName): TableName {
    const m = this.tables.get(tableKey(source));
    return m?.renamedTo ? parseTableName(m.renamedTo, source.schema) : source;
  }

  /** Target table keys that the mapping creates (exist only on the target). */
  newTables(): Set<string> {
    return this.created;
  }

  /** Plan a source table given its columns in source order. */
  plan(source: TableName, sourceColumns: string[]): TablePlan {
    const m = this.tables.get(tableKey(source));
    const dropped = new Set(m?.droppedColumns ?? []);
    const columns = sourceColumns.map((name): ColumnPlan => {
      if (dropped.has(name)) return { source: name };
      const target = m?.renamedColumns[name] ?? name;
      const change = m?.typeChanges.find((c) => c.column === target);
      return { source: name, target, newType: change?.newType, using: change?.using };
    });
    if (m) {
      for (const col of [...Object.keys(m.renamedColumns), ...m.droppedColumns, ...m.typeChanges.map((c) => sourceNameOf(m, c.column))]) {
        if (!sourceColumns.includes(col)) {
          throw new SyncPlanError(`mapping for ${tableKey(source)} names column ${JSON.stringify(col)}, which the source table does not have`);
        }
      }
    }
    return { source, target: this.targetOf(source), dropped: this.isDropped(source), columns };
  }
}

/** The old name of a column given its new one. */
function sourceNameOf(m: TableMapping, newName: string): string {
  for (const [oldName, renamed] of Object.entries(m.renamedColumns)) if (renamed === newName) return oldName;
  return newName;
}

/** SQL for a mapped column over the old row's columns (unqualified names, as USING expressions are written). */
export function columnExpression(c: ColumnPlan): string {
  if (c.using) return `(${c.using})::${c.newType}`;
  if (c.newType) return `${qi(c.source)}::${c.newType}`;
  return qi(c.source);
}

/** Columns the sync writes or compares: mapped ones, in source order. */
export function mappedColumns(plan: TablePlan): (ColumnPlan & { target: string })[] {
  return plan.columns.filter((c): c is ColumnPlan & { target: string } => c.target !== undefined);
}

/**
 * Check a plan against the target's catalog (after the migration ran there):
 * the table and every mapped column exist, and every target column the sync
 * does not write can be filled by the target itself.
 */
export function checkPlanAgainstTarget(plan: TablePlan, target: TableCatalog): string[] {
  if (plan.dropped) return [];
  const t = target.get(tableKey(plan.target));
  const where = `${tableKey(plan.source)} → ${tableKey(plan.target)}`;
  if (!t) return [`${where}: the target has no table ${tableKey(plan.target)}`];
  const problems: string[] = [];
  const written = new Set<string>();
  for (const c of mappedColumns(plan)) {
    const col = t.columns.find((x) => x.name === c.target);
    if (!col) problems.push(`${where}: source column ${c.source} maps to ${c.target}, which the target table does not have`);
    else if (col.generated) problems.push(`${where}: source column ${c.source} maps to generated column ${c.target}`);
    written.add(c.target);
  }
  for (const col of t.columns) {
    if (!written.has(col.name) && col.notNull && !col.hasDefault && !col.generated && !col.identity) {
      problems.push(`${where}: target column ${col.name} is NOT NULL without a default and no source column feeds it, so inserts would fail`);
    }
  }
  return problems;
}

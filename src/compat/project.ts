/**
 * The catalog the new side will have once the migration ran, projected from the old side's
 * and the mapping: what a dry run plans the compatibility schema against, before anything runs.
 */
import type { SchemaMapping } from '../classifier/mapping';
import type { ColumnInfo, TableCatalog } from '../sync';
import { normaliseTableKey, parseTableName, tableKey } from '../sync/sql';

export function projectCatalog(old: TableCatalog, mapping: SchemaMapping): TableCatalog {
  const out: TableCatalog = new Map(old);
  for (const m of mapping.tables) {
    const key = normaliseTableKey(m.table);
    const t = old.get(key);
    if (!t) continue;
    const name = m.renamedTo ? parseTableName(m.renamedTo, t.schema) : t;
    const renamed = (c: string) => m.renamedColumns[c] ?? c;
    const columns: ColumnInfo[] = t.columns.filter((c) => !m.droppedColumns.includes(c.name)).map((c) => {
      const n = renamed(c.name);
      const change = m.typeChanges.find((x) => x.column === n);
      return { ...c, name: n, type: change?.newType ?? c.type };
    });
    for (const a of m.addedColumns) columns.push({ name: a.column, type: 'unknown', notNull: a.notNull, hasDefault: a.default !== undefined, generated: !!a.generated, identity: '' });
    out.delete(key);
    out.set(tableKey(name), { ...t, schema: name.schema, name: name.name, columns, keyColumns: t.keyColumns.map(renamed) });
  }
  return out;
}

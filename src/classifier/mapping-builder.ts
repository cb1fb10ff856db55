/**
 * Builds the SchemaMapping (mapping.ts) from a migration's schema effects, in file order:
 * renames chain (a → b → c maps a to c), a column added and then dropped disappears, and
 * effects on tables created by the same file only show up as new tables.
 */
import type { SchemaEffect } from './extract';
import { emptyMapping, SchemaMapping, TableMapping } from './mapping';
import { scanTokens } from './parser';

export class MappingBuilder {
  private readonly mapping = emptyMapping();
  private readonly tables = new Map<string, TableMapping>();
  /** current key → original key of existing tables that were renamed */
  private readonly origin = new Map<string, string>();

  private table(key: string): TableMapping {
    const original = this.origin.get(key) ?? key;
    let t = this.tables.get(original);
    if (!t) {
      t = { table: original, renamedColumns: {}, droppedColumns: [], addedColumns: [], typeChanges: [] };
      this.tables.set(original, t);
    }
    return t;
  }

  /** `isNew`: the effect's table was created earlier in this file */
  apply(e: SchemaEffect, isNew: boolean): void {
    switch (e.kind) {
      case 'createTable':
        if (!this.mapping.newTables.includes(e.table.key)) this.mapping.newTables.push(e.table.key);
        return;
      case 'dropTable':
        if (isNew) { this.mapping.newTables = this.mapping.newTables.filter((t) => t !== e.table.key); return; }
        this.mapping.droppedTables.push(this.origin.get(e.table.key) ?? e.table.key);
        this.tables.delete(this.origin.get(e.table.key) ?? e.table.key);
        return;
      case 'renameTable':
        if (isNew) {
          this.mapping.newTables = this.mapping.newTables.map((t) => (t === e.table.key ? e.to.key : t));
          return;
        }
        {
          const t = this.table(e.table.key);
          t.renamedTo = e.to.key;
          this.origin.set(e.to.key, t.table);
          this.origin.delete(e.table.key);
        }
        return;
      default:
        break;
    }
    if (isNew || !('table' in e) || !('column' in e)) return;
    const t = this.table(e.table.key);
    const oldNameOf = (col: string) => Object.keys(t.renamedColumns).find((k) => t.renamedColumns[k] === col) ?? col;
    switch (e.kind) {
      case 'addColumn':
        t.addedColumns = t.addedColumns.filter((c) => c.column !== e.column);
        t.addedColumns.push({ column: e.column, ...(e.default !== undefined ? { default: e.default } : {}), notNull: e.notNull, ...(e.generated ? { generated: true } : {}) });
        return;
      case 'dropColumn': {
        if (t.addedColumns.some((c) => c.column === e.column)) { t.addedColumns = t.addedColumns.filter((c) => c.column !== e.column); return; }
        const old = oldNameOf(e.column);
        delete t.renamedColumns[old];
        t.typeChanges = t.typeChanges.filter((c) => c.column !== e.column);
        if (!t.droppedColumns.includes(old)) t.droppedColumns.push(old);
        return;
      }
      case 'renameColumn': {
        const added = t.addedColumns.find((c) => c.column === e.column);
        if (added) { added.column = e.to; return; }
        const old = oldNameOf(e.column);
        t.renamedColumns[old] = e.to;
        for (const c of t.typeChanges) if (c.column === e.column) c.column = e.to;
        return;
      }
      case 'typeChange': {
        if (t.addedColumns.some((c) => c.column === e.column)) return;
        t.typeChanges = t.typeChanges.filter((c) => c.column !== e.column);
        // the sync engine evaluates USING over the source table's row: columns named as renamed earlier in the file get their source names
        const using = e.using === undefined ? undefined : toSourceNames(e.using, oldNameOf);
        t.typeChanges.push({ column: e.column, newType: e.typeText, ...(using !== undefined ? { using } : {}) });
        return;
      }
      default:
        return;
    }
  }

  build(): SchemaMapping {
    const changed = (t: TableMapping) => t.renamedTo !== undefined || Object.keys(t.renamedColumns).length > 0 || t.droppedColumns.length > 0 || t.addedColumns.length > 0 || t.typeChanges.length > 0;
    return { ...this.mapping, tables: [...this.tables.values()].filter(changed) };
  }
}

/**
 * `expr` with each column it names by a name given earlier in the file (a rename) written as
 * the source table's column instead, quoted. Function names (a name followed by `(`) are left.
 * Token offsets are byte offsets, hence the buffer.
 */
export function toSourceNames(expr: string, sourceOf: (current: string) => string): string {
  let tokens: ReturnType<typeof scanTokens>;
  try { tokens = scanTokens(expr); } catch { return expr; }
  const buf = Buffer.from(expr, 'utf8');
  let out = '';
  let at = 0;
  tokens.forEach((tk, i) => {
    const isName = tk.tokenName === 'IDENT' || tk.keywordName === 'UNRESERVED_KEYWORD';
    if (!isName || tokens[i + 1]?.text === '(') return;
    const raw = buf.subarray(tk.start, tk.end).toString('utf8');
    const name = raw.startsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw.toLowerCase();
    const source = sourceOf(name);
    if (source === name) return;
    out += `${buf.subarray(at, tk.start).toString('utf8')}"${source.replace(/"/g, '""')}"`;
    at = tk.end;
  });
  return out + buf.subarray(at).toString('utf8');
}

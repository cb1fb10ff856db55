/**
 * The schema mapping of a risky migration: how a row of the old schema becomes a
 * row of the new one. Produced by the classifier from the migration's statements,
 * consumed by the sync engine (forward: old → new; reverse sync uses the inverse).
 *
 * Names are unquoted identifiers as PostgreSQL stores them (case preserved);
 * tables are qualified `schema.table` (schema `public` when the SQL names none).
 * SQL expressions are PostgreSQL expression text as written in the migration.
 */
export interface ColumnTypeChange {
  column: string;           // name in the new schema
  newType: string;          // type as written, e.g. "bigint", "varchar(64)"
  /** USING expression in terms of the old row's columns; absent = plain cast to newType */
  using?: string;
}

export interface AddedColumn {
  column: string;
  /** DEFAULT expression as written; absent = NULL */
  default?: string;
  notNull: boolean;
  /** generated/identity columns are computed by the target, never written by sync */
  generated?: boolean;
}

export interface TableMapping {
  /** the table's name in the old schema */
  table: string;
  /** set when the table is renamed: its name in the new schema */
  renamedTo?: string;
  /** old column name → new column name */
  renamedColumns: Record<string, string>;
  /** old column names that no longer exist */
  droppedColumns: string[];
  addedColumns: AddedColumn[];
  typeChanges: ColumnTypeChange[];
}

export interface SchemaMapping {
  /** only tables whose shape or name changes; every other table maps 1:1 */
  tables: TableMapping[];
  /** tables created by the migration (no source rows; reverse sync ignores them) */
  newTables: string[];
  /** tables dropped by the migration (forward sync ignores their changes) */
  droppedTables: string[];
}

export const emptyMapping = (): SchemaMapping => ({ tables: [], newTables: [], droppedTables: [] });

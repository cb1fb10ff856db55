/**
 * SQL text helpers for the sync engine: one quoting rule for identifiers and
 * literals, and the `schema.table` names the schema mapping uses.
 *
 * Literals assume standard_conforming_strings=on, which every sync session sets.
 */
export function qi(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function ql(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

export interface TableName {
  schema: string;
  name: string;
}

/** `schema.table` (as the mapping writes it) → parts; a bare name lives in `defaultSchema`. */
export function parseTableName(text: string, defaultSchema = 'public'): TableName {
  const dot = text.indexOf('.');
  return dot < 0 ? { schema: defaultSchema, name: text } : { schema: text.slice(0, dot), name: text.slice(dot + 1) };
}

/** The unquoted `schema.table` key used in maps and messages. */
export function tableKey(t: TableName): string {
  return `${t.schema}.${t.name}`;
}

/** The quoted, qualified name for SQL. */
export function qtable(t: TableName): string {
  return `${qi(t.schema)}.${qi(t.name)}`;
}

/** Same `schema.table` key for a mapping entry whether or not it names the schema. */
export function normaliseTableKey(text: string, defaultSchema = 'public'): string {
  return tableKey(parseTableName(text, defaultSchema));
}

/** Slot, publication and origin names share one shape: PostgreSQL's slot-name rule. */
export function assertSlotName(name: string): void {
  if (!/^[a-z0-9_]{1,63}$/.test(name)) {
    throw new Error(`slotName ${JSON.stringify(name)}: use 1-63 lower-case letters, digits or underscores (a PostgreSQL replication slot name)`);
  }
}

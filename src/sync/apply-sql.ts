/**
 * The SQL that sync apply executes on the target, as pure functions of a
 * relation's plan: no connection, no state, so the text is unit-tested as text
 * (test/sync/apply-sql.test.ts). apply.ts prepares each statement once and
 * executes it with the values as text parameters.
 *
 * Parameters come in blocks: one per row of a multi-row statement, or the SET
 * values followed by the old key of an UPDATE. A block holds the source columns
 * `need` in order: the columns written, or every column when a USING
 * expression reads the row (then each parameter is cast to its source type, so
 * one parameter never gets two types).
 */
import { HELPER_SCHEMA } from './catalog';
import type { Tuple } from './pgoutput';
import type { TablePlan } from './plan';
import { qi, qtable, tableKey } from './sql';

/** A source relation (from a pgoutput Relation message) ready for apply. */
export interface RelationPlan {
  relid: number;
  plan: TablePlan;
  /** source column types (format_type), for USING expressions and casts */
  sourceTypes: string[];
  /** source column indices that identify a row; every column for REPLICA IDENTITY FULL */
  keyIdx: number[];
  full: boolean;
  /** the target has GENERATED ALWAYS identity columns that sync writes */
  overriding: boolean;
}

export const STATE_TABLE = `${qi(HELPER_SCHEMA)}.sync_state`;

export const STATE_TABLE_DDL = `
CREATE SCHEMA IF NOT EXISTS ${qi(HELPER_SCHEMA)};
CREATE TABLE IF NOT EXISTS ${STATE_TABLE} (
  slot_name text PRIMARY KEY,
  applied_lsn pg_lsn NOT NULL,
  source_commit_time timestamptz,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

/**
 * The applied position, stored in the transaction it describes. It moves only
 * from the position the previous target transaction stored ($4): if that one
 * failed (or another process applied meanwhile), this one fails too, so a
 * transaction pipelined behind a failed COMMIT can never commit and leave a gap.
 */
export const STATE_UPSERT = `INSERT INTO ${STATE_TABLE} AS s (slot_name, applied_lsn, source_commit_time, applied_at) VALUES ($1, $2::pg_lsn, to_timestamp($3::float8), now()) ` +
  'ON CONFLICT (slot_name) DO UPDATE SET applied_lsn = CASE WHEN s.applied_lsn = $4::pg_lsn THEN EXCLUDED.applied_lsn ' +
  "ELSE ('pgflip.sync_state of ' || s.slot_name || ' is at ' || s.applied_lsn::text || ', not at ' || $4::pg_lsn::text || ': an earlier transaction failed or another process applied changes')::pg_lsn END, " +
  'source_commit_time = EXCLUDED.source_commit_time, applied_at = EXCLUDED.applied_at';

/** TRUNCATE of the target tables (already quoted) a source TRUNCATE names. */
export function truncateSql(qtables: string[], restartIdentity: boolean): string {
  return `TRUNCATE ONLY ${qtables.join(', ')}${restartIdentity ? ' RESTART IDENTITY' : ''}`;
}

/** An UPDATE for one shape of change, and the parameter blocks it takes. */
export interface UpdateSql {
  /** undefined: no column the target keeps is changed */
  text?: string;
  /** parameters: these columns of the new row, then these of the old key / old row */
  setNeed: number[];
  identNeed: number[];
}

/** The statements of one relation. */
export class RelationSql {
  readonly table: string;
  readonly qtable: string;
  readonly all: number[];
  /** source columns written on the target */
  readonly written: number[];
  /** parameters of an inserted row: the written columns, or every column when a USING expression reads the row */
  readonly insertNeed: number[];
  /** parameters identifying a row (not REPLICA IDENTITY FULL) */
  readonly keyNeed: number[];
  /** per USING column, the source columns its expression reads */
  readonly usingReads = new Map<number, number[]>();

  constructor(readonly rp: RelationPlan) {
    const cols = rp.plan.columns;
    this.table = tableKey(rp.plan.target);
    this.qtable = qtable(rp.plan.target);
    this.all = cols.map((_, i) => i);
    this.written = this.all.filter((i) => cols[i].target !== undefined);
    this.insertNeed = this.written.some((i) => cols[i].using) ? this.all : this.written;
    this.keyNeed = rp.keyIdx.some((i) => cols[i].using) ? this.all : rp.keyIdx;
    cols.forEach((c, i) => {
      if (!c.using) return;
      const reads = this.all.filter((j) => new RegExp(`\\b${cols[j].source.replace(/[^\w]/g, '\\$&')}\\b`).test(c.using!));
      this.usingReads.set(i, reads);
    });
  }

  /** INSERT of `rows` rows, each a block of insertNeed. */
  insert(rows: number): string {
    const cols = this.written.map((i) => qi(this.rp.plan.columns[i].target!)).join(', ');
    const need = this.insertNeed;
    const rowsSql = Array.from({ length: rows }, (_, r) => `(${this.written.map((i) => this.value(i, need, r * need.length)).join(', ')})`);
    return `INSERT INTO ${this.qtable} (${cols})${this.rp.overriding ? ' OVERRIDING SYSTEM VALUE' : ''} VALUES ${rowsSql.join(', ')}`;
  }

  /** DELETE of `rows` rows by key, each a block of keyNeed. */
  deleteByKey(rows: number): string {
    const keys = this.rp.keyIdx;
    const need = this.keyNeed;
    const single = keys.length === 1;
    const cols = keys.map((i) => qi(this.rp.plan.columns[i].target!));
    const lhs = single ? cols[0] : `(${cols.join(', ')})`;
    const items = Array.from({ length: rows }, (_, r) => {
      const vals = keys.map((i) => this.value(i, need, r * need.length));
      return single ? vals[0] : `(${vals.join(', ')})`;
    });
    return rows === 1 && single ? `DELETE FROM ${this.qtable} WHERE ${lhs} = ${items[0]}` : `DELETE FROM ${this.qtable} WHERE ${lhs} IN (${items.join(', ')})`;
  }

  /** REPLICA IDENTITY FULL: DELETE of the first row equal to the old row `ident` in the columns it carries. */
  fullDelete(ident: Tuple): string {
    return `DELETE FROM ${this.qtable} WHERE ${this.fullMatch(this.presentIdent(ident), 0)}`;
  }

  /** The parameter block of fullDelete(ident). */
  fullDeleteNeed(ident: Tuple): number[] {
    return this.needFor(this.presentIdent(ident));
  }

  /**
   * UPDATE setting the columns the new row carries (`values`; an unchanged
   * TOAST value is undefined and left out), found by the old key or, for
   * REPLICA IDENTITY FULL, the old row `ident`. With keyUnchanged the key
   * columns are left out of SET (that also keeps GENERATED ALWAYS identity keys
   * writable).
   */
  update(values: Tuple, ident: Tuple, keyUnchanged: boolean): UpdateSql {
    const cols = this.rp.plan.columns;
    const setCols = this.written.filter((i) => values[i] !== undefined && !(keyUnchanged && this.rp.keyIdx.includes(i)));
    const setNeed = this.needFor(setCols);
    const present = this.rp.full ? this.presentIdent(ident) : this.rp.keyIdx;
    const identNeed = this.rp.full ? this.needFor(present) : this.keyNeed;
    if (!setCols.length) return { setNeed, identNeed };
    const sets = setCols.map((i) => `${qi(cols[i].target!)} = ${this.value(i, setNeed, 0)}`);
    const where = this.rp.full ? this.fullMatch(present, setNeed.length) : this.keyMatch(identNeed, setNeed.length);
    return { text: `UPDATE ${this.qtable} SET ${sets.join(', ')} WHERE ${where}`, setNeed, identNeed };
  }

  /** Identity columns of an old row that the target has and the change carries. */
  private presentIdent(ident: Tuple): number[] {
    return this.rp.keyIdx.filter((i) => this.rp.plan.columns[i].target !== undefined && ident[i] !== undefined);
  }

  /**
   * SQL for the target value of source column i, reading parameters from a
   * block that starts after `base` and holds the columns `need` in order.
   */
  private value(i: number, need: number[], base: number): string {
    const rp = this.rp;
    const c = rp.plan.columns[i];
    const usesAll = need === this.all;
    const param = (j: number) => {
      const p = `$${base + (usesAll ? j : need.indexOf(j)) + 1}`;
      // Within a block that feeds a USING expression every reference is cast, so one parameter never gets two types.
      return usesAll ? `${p}::${rp.sourceTypes[j]}` : p;
    };
    if (c.using) {
      const names = rp.plan.columns.map((x) => qi(x.source)).join(', ');
      return `(SELECT (${c.using})::${c.newType} FROM (VALUES (${this.all.map(param).join(', ')})) AS ${qi(rp.plan.source.name)}(${names}))`;
    }
    if (c.newType) return `${usesAll ? param(i) : `${param(i)}::${rp.sourceTypes[i]}`}::${c.newType}`;
    return param(i);
  }

  /** `k1 = $n AND …` for a key block. */
  private keyMatch(need: number[], base: number): string {
    return this.rp.keyIdx.map((i) => `${qi(this.rp.plan.columns[i].target!)} = ${this.value(i, need, base)}`).join(' AND ');
  }

  /** REPLICA IDENTITY FULL: the first row equal to the old row in the columns present. */
  private fullMatch(present: number[], base: number): string {
    const conds = present.map((i) => `${qi(this.rp.plan.columns[i].target!)} IS NOT DISTINCT FROM ${this.value(i, this.needFor(present), base)}`);
    return `ctid = (SELECT ctid FROM ${this.qtable} WHERE ${conds.join(' AND ')} LIMIT 1)`;
  }

  private needFor(cols: number[]): number[] {
    return cols.some((i) => this.rp.plan.columns[i].using) ? this.all : cols;
  }
}

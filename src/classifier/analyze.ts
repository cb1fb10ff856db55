/**
 * Classifies a parsed migration file statement by statement, with the file's context:
 * objects created earlier in the file, explicit and implicit transactions, lock_timeout,
 * enum values added in the same transaction, the target version and (optionally) the live
 * catalog. Produces the validation report (docs/classifier.md).
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { listName, RelName, stringConstants, TypeInfo } from './ast';
import type { Catalog, CatalogTable } from './catalog';
import { Candidate, extract, notNullCheckColumn, SchemaEffect, StmtText } from './extract';
import { newerFeatures } from './features';
import { MappingBuilder } from './mapping-builder';
import { OperationRule, OperationType, ruleFor } from './operations';
import { parseSql, ParsedFile } from './parser';
import { doBody, innerStatements } from './plpgsql';
import { isBinaryCompatible } from './type-change';
import { boundedRows, MAX_BOUNDED_ROWS } from './bounded';
import { KeyKind, kindFromName, kindOfContype } from './keys';
import { blocksWrites, Classification, HeldLock, LOCK_LEVELS, ReportOperation, RiskLevel, TableSize, ValidationReport, worseClass, worseRisk } from './types';

const MAX_STATEMENT_TEXT = 300;

/** Where a statement is, for messages. */
interface Where { line: number; column: number; text: string; inDo: boolean; st: StmtText }

interface EnumAdd { type: string; value: string; line: number; tx: number; doBlock?: number }

class FileState {
  readonly newObjects = new Set<string>();
  /** tables created in the file with PARTITION BY */
  readonly partitioned = new Set<string>();
  /** their key columns (absent: the key has an expression) */
  readonly partitionKeys = new Map<string, string[]>();
  /** partitioned tables given a DEFAULT partition in the file */
  readonly defaultPartitions = new Set<string>();
  /** tables created in the file whose every column the file wrote (not CREATE TABLE AS, LIKE, INHERITS, …) */
  readonly knownColumns = new Set<string>();
  /** relKey → column → what is known about it (from CREATE TABLE / ADD COLUMN here, or the catalog) */
  readonly columns = new Map<string, Map<string, { type?: TypeInfo; notNull: boolean; hasDefault?: boolean }>>();
  /** partitions made or attached in the file, by parent */
  readonly partitionsAdded = new Map<string, number>();
  readonly notNullChecks = new Set<string>();
  readonly pendingChecks = new Map<string, string>();
  readonly extensions = new Set<string>();
  /** domains created or constrained in the file, by unqualified name */
  readonly domains = new Map<string, { constrained: boolean; notNull: boolean }>();
  /** triggers (or rules) dropped or switched off on existing tables: relKey\0name (`*`: all) → the operation, its transaction (0: none) */
  readonly triggersOff = new Map<string, { op: ReportOperation; tx: number }>();
  /** triggers made again (or switched on) in a transaction block: safe once it commits with no ROLLBACK TO in between */
  txRestores: Array<{ op: ReportOperation; line: number; verb: string }> = [];
  /** the same outside any transaction block: safe only if the file runs as one transaction */
  readonly fileTxRestores: Array<{ op: ReportOperation; line: number; verb: string }> = [];
  cicWarned = false;
  /** constraints added in the file to existing tables: relKey\0name → contype */
  readonly constraints = new Map<string, string>();
  tx?: { line: number; column: number; id: number };
  txCount = 0;
  doCount = 0;
  currentDo?: number;
  lockTimeout: 'none' | 'session' | 'local' = 'none';
  hasExplicitTx = false;
  hasNonTransactional = false;
  readonly enumAdds: EnumAdd[] = [];
  /** enum uses outside explicit transactions: errors only if the file runs as one transaction */
  readonly pendingEnumErrors: string[] = [];
  readonly lockTimeoutMissing: number[] = [];
  readonly touched = new Set<string>();
  /** write-blocking locks on existing tables taken in the open transaction block, in the DO block running, and (if the whole file is one transaction) in the file */
  txHeld: HeldLock[] = [];
  doHeld?: HeldLock[];
  readonly fileHeld: HeldLock[] = [];
  /** long work outside a transaction block: under the file's locks only if the file runs as one transaction */
  readonly pendingHeld: Array<{ op: ReportOperation; held: HeldLock }> = [];
}

/** Operations whose work takes time proportional to the data, beyond their own lock's flags. */
const LONG_WORK = new Set(['UPDATE', 'DELETE', 'MERGE', 'INSERT_SELECT', 'CREATE_TABLE_AS', 'CREATE_MATERIALIZED_VIEW', 'COPY']);

const strongest = (held: HeldLock[]): HeldLock | undefined =>
  held.reduce<HeldLock | undefined>((best, h) => (!best || LOCK_LEVELS.indexOf(h.lock) > LOCK_LEVELS.indexOf(best.lock) ? h : best), undefined);

/** An operation's long work done while an earlier statement's lock is held: it blocks what that lock blocks, for as long. */
function underHeldLock(op: ReportOperation, held: HeldLock): void {
  op.heldLock = held;
  const blocked = held.lock === 'ACCESS EXCLUSIVE' ? 'reads and writes' : 'writes';
  op.reason += `; but here it runs while this transaction holds ${held.lock} on ${held.table} (taken at line ${held.line} by ${held.operation.replace(/_/g, ' ')}): ${blocked} of ${held.table} wait for all of it`;
  if (op.classification === 'safe' || op.riskLevel !== 'HIGH') {
    op.classification = worseClass(op.classification, 'risky');
    op.riskLevel = 'HIGH';
    op.saferAlternative = `commit after line ${held.line}, so that this runs in a transaction of its own`;
  }
}

const colKey = (rel: string, col: string) => `${rel}\u0000${col}`;

export interface AnalyzeInput { file: string; parsed: ParsedFile; pgVersion: number; catalog?: Catalog }

export function analyze({ file, parsed, pgVersion, catalog }: AnalyzeInput): ValidationReport {
  const { source } = parsed;
  const state = new FileState();
  const ops: ReportOperation[] = [];
  const warnings: string[] = [];
  const errors: string[] = [];
  const mapping = new MappingBuilder();

  for (const f of parsed.failures) errors.push(`line ${f.line}, column ${f.column}: ${f.message} (SQLSTATE 42601)`);

  const at = (w: Where) => `line ${w.line}, column ${w.column}`;
  const shorten = (s: string) => (s.length > MAX_STATEMENT_TEXT ? `${s.slice(0, MAX_STATEMENT_TEXT)}…` : s);
  const exists = (rel: RelName) => state.newObjects.has(rel.key) || catalog?.tables.has(rel.key);
  const catalogTable = (rel?: RelName): CatalogTable | undefined => (rel && !state.newObjects.has(rel.key) ? catalog?.tables.get(rel.key) : undefined);

  const columnsOf = (rel: RelName) => {
    let m = state.columns.get(rel.key);
    if (!m) {
      m = new Map();
      for (const [name, c] of catalogTable(rel)?.columns ?? []) m.set(name, { type: c.type, notNull: c.notNull, hasDefault: c.hasDefault });
      state.columns.set(rel.key, m);
    }
    return m;
  };
  const sizeNote = (rel?: RelName) => {
    const t = catalogTable(rel);
    if (!t) return '';
    const rows = t.rowEstimate < 0 ? 'never analysed' : `~${Math.round(t.rowEstimate).toLocaleString('en-US')} rows`;
    return ` (${rows}, ${formatBytes(t.bytes)})`;
  };

  /** a constraint's kind: from the file, the catalog, then its name */
  const constraintKind = (rel: RelName, name: string): { kind?: KeyKind; known: boolean } => {
    const contype = state.constraints.get(colKey(rel.key, name)) ?? catalogTable(rel)?.constraints.get(name);
    if (contype) return { kind: kindOfContype(contype), known: true };
    return { kind: kindFromName(name), known: false };
  };

  /** a validated CHECK (col IS NOT NULL) proves the column NOT NULL: added in the file, or in the catalog */
  const provenNotNull = (rel: RelName, column: string): boolean =>
    state.notNullChecks.has(colKey(rel.key, column)) || !!catalogTable(rel)?.notNullChecks.has(column);

  /** a candidate whose answer depends on what the file (or the catalog) already established */
  function refine(c: Candidate): { type: OperationType; warning?: string; detail?: string } {
    const existing = !!c.table && !state.newObjects.has(c.table.key);
    const added = c.effects.find((x): x is Extract<SchemaEffect, { kind: 'addColumn' }> => x.kind === 'addColumn');
    if ((c.type === 'DROP_CONSTRAINT' || c.type === 'RENAME_CONSTRAINT') && c.constraint && c.table && existing) {
      const { kind, known } = constraintKind(c.table, c.constraint);
      const keyType = c.type === 'DROP_CONSTRAINT' ? 'DROP_KEY_CONSTRAINT' : 'RENAME_KEY_CONSTRAINT';
      if (kind === 'key') return { type: keyType, warning: known ? undefined : `${c.constraint} is taken for a key constraint by its name${catalog ? '' : '; pass --database-url to check'}` };
      if (kind === undefined) return { type: c.type, warning: `cannot tell whether ${c.constraint} on ${c.table.display} is a primary key, unique or exclusion constraint: if it is, the running application's ON CONFLICT on it fails${catalog ? '' : '; pass --database-url to check'}` };
    }
    if ((c.type === 'DROP_INDEX' || c.type === 'DROP_INDEX_CONCURRENTLY') && c.table && existing) {
      const idx = catalog?.tables.get(c.table.key)?.index;
      const kind = idx ? (idx.unique ? 'key' : 'other') : kindFromName(c.table.name);
      if (kind === 'key') return { type: c.type === 'DROP_INDEX' ? 'DROP_UNIQUE_INDEX' : 'DROP_UNIQUE_INDEX_CONCURRENTLY', warning: idx ? undefined : `${c.table.display} is taken for a unique index by its name${catalog ? '' : '; pass --database-url to check'}` };
      if (kind === undefined && !catalog) return { type: c.type, warning: `cannot tell whether index ${c.table.display} is unique: if it is, the running application's ON CONFLICT on its columns fails; pass --database-url to check` };
    }
    if (c.type === 'RENAME_INDEX' && c.table && existing) {
      // renaming the index of a key constraint renames the constraint too
      const idx = catalog?.tables.get(c.table.key)?.index;
      const backsKey = idx ? !!idx.constraint : /(_pkey|_key|_excl)$/.test(c.table.name);
      if (backsKey) return { type: 'RENAME_KEY_INDEX', warning: `renaming index ${c.table.display} renames the key constraint it backs` };
    }
    if (c.type === 'DROP_DEFAULT' && c.table && c.column && existing) {
      const col = columnsOf(c.table).get(c.column);
      if (col?.notNull || provenNotNull(c.table, c.column)) return { type: 'DROP_DEFAULT_NOT_NULL' };
      if (!col) return { type: 'DROP_DEFAULT_UNCHECKED' };
    }
    if ((c.type === 'UPDATE' || c.type === 'DELETE') && c.table && existing && c.where) {
      // a keyed batch: bounded only where the catalog shows nothing that makes one row change many
      // (a trigger, a foreign key that cascades from the table)
      const t = catalogTable(c.table);
      const INTEGER = ['integer', 'bigint', 'smallint'];
      const integerKeys = t ? new Set([...t.uniqueColumns].filter((k) => INTEGER.includes(t.columns.get(k)?.type?.name ?? ''))) : new Set(['id']);
      const rows = boundedRows(c.where, { keys: t ? t.uniqueColumns : new Set(['id']), integerKeys, name: c.table.name });
      if (rows !== undefined && rows <= MAX_BOUNDED_ROWS) {
        const n = `at most ${rows.toLocaleString('en-US')} row${rows === 1 ? '' : 's'} by key`;
        if (!t) return { type: c.type, warning: `${c.type} of ${c.table.display} is a keyed batch (${n}, taking id for its key): with --database-url pgflip checks the key and that no trigger or cascading foreign key makes it more, and calls it safe` };
        const more = t.userTriggers ? 'it has triggers' : (c.type === 'DELETE' ? t.cascades.delete : t.cascades.update) ? `a foreign key ${c.type === 'DELETE' ? 'deletes or changes' : 'changes'} rows of other tables with it` : undefined;
        if (more) return { type: c.type, warning: `${c.type} of ${c.table.display} names ${n}, but ${more}: a bulk change as far as pgflip can tell` };
        return { type: c.type === 'UPDATE' ? 'UPDATE_BOUNDED' : 'DELETE_BOUNDED', detail: n };
      }
    }
    if (c.type === 'ATTACH_PARTITION' && c.table && c.partition && existing && state.newObjects.has(c.partition.key)) {
      const parent = catalogTable(c.table);
      if (parent && !parent.hasDefaultPartition) return { type: 'ATTACH_NEW_PARTITION' };
      if (!parent) return { type: c.type, warning: `${c.partition.display} was created in this file, but whether ${c.table.display} has a DEFAULT partition (which ATTACH scans under ACCESS EXCLUSIVE) is unknown; pass --database-url to check` };
    }
    if (c.type === 'ALTER_COLUMN_TYPE' && c.table && c.column) {
      const e = c.effects.find((x): x is Extract<SchemaEffect, { kind: 'typeChange' }> => x.kind === 'typeChange');
      const old = columnsOf(c.table).get(c.column)?.type;
      if (e && old && !e.using && isBinaryCompatible(old, e.type)) return { type: 'ALTER_COLUMN_TYPE_COMPATIBLE' };
      if (!old && !state.newObjects.has(c.table.key)) return { type: c.type, warning: `the current type of ${c.table.display}.${c.column} is unknown, so the change is assumed to rewrite the table${catalog ? '' : '; pass --database-url to check'}` };
    }
    if (c.type === 'SET_NOT_NULL' && c.table && c.column && provenNotNull(c.table, c.column)) {
      return { type: 'SET_NOT_NULL_CHECKED' };
    }
    if (c.type === 'CREATE_VIEW' && c.missingOk && c.table && existing && (!catalog || catalog.tables.has(c.table.key))) {
      if (c.view?.options) return { type: 'VIEW_OPTIONS' };
      return { type: c.view?.readOnly ? 'REPLACE_VIEW_READ_ONLY' : 'REPLACE_VIEW' };
    }
    if ((c.type === 'ADD_COLUMN' || c.type === 'ADD_COLUMN_DEFAULT') && c.table) {
      // only a cheap add becomes ADD_COLUMN_JSON: a rewrite or NOT NULL keeps its own (worse) answer
      if (added?.type.name === 'json' && existing) return { type: 'ADD_COLUMN_JSON' };
      const domain = added && !added.type.array ? (state.domains.get(added.type.name) ?? catalog?.constrainedDomains?.get(added.type.name)) : undefined;
      if (domain && ('constrained' in domain ? domain.constrained : true)) {
        const fails = domain.notNull && c.type === 'ADD_COLUMN';
        return { type: 'ADD_COLUMN_DOMAIN', warning: fails ? `${c.table.display}.${c.column} has domain ${added!.type.name}, which is NOT NULL, and no default: on a table with rows PostgreSQL rejects it (SQLSTATE 23502); give it a default` : undefined };
      }
    }
    return { type: c.type };
  }

  /**
   * What PostgreSQL would reject when the statement runs, with the SQLSTATE it raises: against
   * what the file created before it, and against the live catalog when there is one.
   */
  function existenceChecks(c: Candidate, w: Where): void {
    const fail = (message: string, sqlstate: string) => errors.push(`${at(w)}: ${message} (SQLSTATE ${sqlstate})`);
    const creates = c.type === 'CREATE_TABLE' || c.type === 'CREATE_TABLE_AS' || c.type === 'CREATE_MATERIALIZED_VIEW';
    if (creates && c.table && !c.missingOk) {
      if (state.newObjects.has(c.table.key)) { fail(`relation ${c.table.display} already exists (created earlier in this file)`, '42P07'); return; }
      if (catalog?.tables.has(c.table.key)) { fail(`relation ${c.table.display} already exists`, '42P07'); return; }
    }
    if ((c.type === 'CREATE_INDEX' || c.type === 'CREATE_INDEX_CONCURRENTLY') && c.table) {
      if (c.objectName && !c.missingOk && state.newObjects.has(`${c.table.schema}.${c.objectName}`)) fail(`relation ${c.objectName} already exists (created earlier in this file)`, '42P07');
      const partitioned = state.partitioned.has(c.table.key) || catalogTable(c.table)?.relkind === 'p';
      if (c.type === 'CREATE_INDEX_CONCURRENTLY' && partitioned) fail(`cannot create index on partitioned table ${c.table.display} concurrently: create it ON ONLY the parent, concurrently on each partition, then ATTACH PARTITION each`, '0A000');
      if (partitioned && pgVersion < 11) fail(`cannot create index on partitioned table ${c.table.display} before PostgreSQL 11 (target is ${pgVersion}): create it on each partition`, '42809');
    }
    partitionChecks(c, fail);
    if (c.table && state.newObjects.has(c.table.key) && c.needsTable) {
      // the file made this table: its columns are known without a catalog
      const cols = state.columns.get(c.table.key);
      if (cols && state.knownColumns.has(c.table.key)) {
        if (c.needsColumn && !cols.has(c.needsColumn)) fail(`column ${c.needsColumn} of ${c.table.display} does not exist`, '42703');
        if (c.addsColumn && cols.has(c.addsColumn) && !c.missingOk) fail(`column ${c.addsColumn} of ${c.table.display} already exists`, '42701');
      }
      return;
    }
    if (!catalog) return;
    if (c.type === 'CREATE_EXTENSION') {
      const name = c.detail ?? '';
      if (!catalog.availableExtensions.has(name) && !state.extensions.has(name)) fail(`extension ${name} is not available on the server`, '0A000');
      return;
    }
    if (c.type === 'CREATE_VIEW' && c.missingOk && c.table && !state.newObjects.has(c.table.key)) {
      // CREATE OR REPLACE VIEW: PostgreSQL replaces only a view, and only keeping its columns' names and order
      const live = catalog.tables.get(c.table.key);
      if (live && live.relkind !== 'v') { fail(`${c.table.display} is not a view`, '42809'); return; }
      const old = live ? [...live.columns.keys()] : [];
      const now = c.view?.columns;
      if (live && now) {
        if (now.length < old.length) fail(`cannot drop columns from view ${c.table.display} (it has ${old.length}, the new query ${now.length})`, '42P16');
        else {
          const i = old.findIndex((name, k) => now[k] !== name);
          if (i >= 0) fail(`cannot change name of view column "${old[i]}" to "${now[i]}"`, '42P16');
        }
      }
      return;
    }
    if (!c.table || !c.needsTable || state.newObjects.has(c.table.key)) return;
    if (c.detail === 'add identity' && c.column) {
      const col = catalog.tables.get(c.table.key)?.columns.get(c.column);
      const now = columnsOf(c.table).get(c.column); // the catalog's, as the file changed it (SET NOT NULL, DROP DEFAULT)
      if (col && !now?.notNull) fail(`column ${c.column} of ${c.table.display} must be declared NOT NULL before identity can be added`, '55000');
      else if (col && now?.hasDefault) fail(`column ${c.column} of ${c.table.display} already has a default value: drop it before adding the identity`, '55000');
    }
    if (!catalog.tables.has(c.table.key)) {
      if (!c.missingOk) fail(`table ${c.table.display} does not exist`, '42P01');
      return;
    }
    const cols = columnsOf(c.table);
    if (c.needsColumn && !cols.has(c.needsColumn)) fail(`column ${c.needsColumn} of ${c.table.display} does not exist`, '42703');
    if (c.addsColumn && cols.has(c.addsColumn) && !c.missingOk) fail(`column ${c.addsColumn} of ${c.table.display} already exists`, '42701');
  }

  /** What PostgreSQL refuses on a partitioned table (known from the file or the catalog). */
  function partitionChecks(c: Candidate, fail: (message: string, sqlstate: string) => void): void {
    if (!c.table) return;
    const table = c.table;
    const keyWithout = (key: string[], keyCols: Array<string | undefined>) => {
      if (!key.every((k) => keyCols.includes(k))) fail(`unique constraint on partitioned table ${table.display} must include all partitioning columns (${key.join(', ')})`, '0A000');
    };
    const made = c.type === 'CREATE_TABLE' ? c.effects.find((x): x is Extract<SchemaEffect, { kind: 'createTable' }> => x.kind === 'createTable') : undefined;
    if (made?.partitionKey) {
      for (const keyCols of made.uniqueKeys ?? []) keyWithout(made.partitionKey, keyCols);
      return;
    }
    const live = catalogTable(c.table);
    if (!state.partitioned.has(c.table.key) && live?.relkind !== 'p') return;
    const key = state.partitionKeys.get(c.table.key) ?? (state.partitioned.has(c.table.key) ? undefined : live?.partitionKey);
    if (c.keyColumns && key) keyWithout(key, c.keyColumns);
    if (c.type === 'DETACH_PARTITION_CONCURRENTLY' && (state.defaultPartitions.has(c.table.key) || live?.hasDefaultPartition)) {
      fail(`cannot detach partitions concurrently when a default partition exists (${c.table.display} has one)`, '55000');
    }
    // ONLY is refused once the table has partitions (an empty partitioned table takes it)
    const partitions = (state.partitionsAdded.get(c.table.key) ?? 0) + (state.partitioned.has(c.table.key) ? 0 : live?.partitions ?? 0);
    if (c.only && partitions > 0 && c.type.startsWith('ADD_COLUMN')) fail(`column ${c.column ?? ''} must be added to the partitions of ${c.table.display} too: leave out ONLY`, '42P16');
    if (c.only && partitions > 0 && (c.type === 'ADD_CHECK' || c.type === 'ADD_CHECK_NOT_VALID')) fail(`constraint must be added to the partitions of ${c.table.display} too: leave out ONLY`, '42P16');
    if (c.type === 'ADD_EXCLUDE' && pgVersion < 17) fail(`exclusion constraints are not supported on partitioned tables before PostgreSQL 17 (target is ${pgVersion}): add it to each partition`, '0A000');
  }

  function applyEffects(c: Candidate): void {
    const isNew = !!c.table && state.newObjects.has(c.table.key);
    for (const e of c.effects) {
      switch (e.kind) {
        case 'createTable': {
          state.newObjects.add(e.table.key);
          state.columns.set(e.table.key, new Map(e.columns.map((col) => [col.name, { type: col.type, notNull: col.notNull }])));
          if (e.partitioned) state.partitioned.add(e.table.key);
          if (e.partitionKey) state.partitionKeys.set(e.table.key, e.partitionKey);
          if (e.defaultPartitionOf) state.defaultPartitions.add(e.defaultPartitionOf.key);
          if (e.partitionOf) state.partitionsAdded.set(e.partitionOf.key, (state.partitionsAdded.get(e.partitionOf.key) ?? 0) + 1);
          if (e.complete) state.knownColumns.add(e.table.key); else state.knownColumns.delete(e.table.key);
          break;
        }
        case 'dropTable': state.newObjects.delete(e.table.key); state.columns.delete(e.table.key); state.partitioned.delete(e.table.key); state.knownColumns.delete(e.table.key); break;
        case 'renameTable':
          if (isNew) { state.newObjects.delete(e.table.key); state.newObjects.add(e.to.key); }
          state.columns.set(e.to.key, columnsOf(e.table)); state.columns.delete(e.table.key);
          for (const set of [state.knownColumns, state.partitioned]) if (set.delete(e.table.key)) set.add(e.to.key);
          break;
        case 'addColumn': columnsOf(e.table).set(e.column, { type: e.type, notNull: e.notNull, hasDefault: e.default !== undefined || e.generated }); break;
        case 'columnDefault': { const cols = columnsOf(e.table); const col = cols.get(e.column); if (col) col.hasDefault = e.has; break; }
        case 'attach': state.partitionsAdded.set(e.parent.key, (state.partitionsAdded.get(e.parent.key) ?? 0) + 1); break;
        case 'dropColumn': columnsOf(e.table).delete(e.column); break;
        case 'renameColumn': {
          const cols = columnsOf(e.table);
          cols.set(e.to, cols.get(e.column) ?? { notNull: false });
          cols.delete(e.column);
          break;
        }
        case 'typeChange': { const cols = columnsOf(e.table); cols.set(e.column, { ...(cols.get(e.column) ?? { notNull: false }), type: e.type }); break; }
        case 'notNullCheck':
          if (e.valid) state.notNullChecks.add(colKey(e.table.key, e.column));
          else if (e.constraint) state.pendingChecks.set(colKey(e.table.key, e.constraint), e.column);
          break;
        case 'validate': {
          const col = state.pendingChecks.get(colKey(e.table.key, e.constraint));
          if (col) state.notNullChecks.add(colKey(e.table.key, col));
          break;
        }
        case 'createIndex': if (e.index) state.newObjects.add(`${e.table.schema}.${e.index}`); break;
        case 'createObject': state.newObjects.add(e.name); break;
        case 'extension': state.extensions.add(e.name); break;
        case 'constraint': state.constraints.set(colKey(e.table.key, e.name), e.contype); break;
        case 'nullability': { const cols = columnsOf(e.table); cols.set(e.column, { ...(cols.get(e.column) ?? {}), notNull: e.notNull }); break; }
        case 'domain': {
          const was = state.domains.get(e.name) ?? catalog?.constrainedDomains?.get(e.name);
          state.domains.set(e.name, { constrained: e.constrained || !!was, notNull: e.notNull || !!was?.notNull });
          break;
        }
        case 'enumValue': state.enumAdds.push({ type: e.type, value: e.value, line: 0, tx: state.tx?.id ?? 0, doBlock: state.currentDo }); break;
      }
      mapping.apply(e, isNew);
    }
  }

  function checkEnumUse(node: any, w: Where): void {
    if (state.enumAdds.length === 0) return;
    const used = new Set(stringConstants(node));
    for (const a of state.enumAdds) {
      if (!used.has(a.value)) continue;
      const msg = `${at(w)}: new value '${a.value}' of enum ${a.type} (added at line ${a.line}) is used before its transaction commits (SQLSTATE 55P04)`;
      const sameDo = a.doBlock !== undefined && a.doBlock === state.currentDo;
      if (sameDo || (a.tx !== 0 && a.tx === state.tx?.id)) errors.push(msg);
      else if (a.tx === 0 && !state.tx) state.pendingEnumErrors.push(msg);
    }
  }

  function trackSettings(kind: string, node: any): void {
    const set = (name: string, value: string | undefined, local: boolean) => {
      if (name !== 'lock_timeout') return;
      const off = value === undefined || /^0+(ms|s|min)?$/i.test(value.trim());
      state.lockTimeout = off ? 'none' : local ? (state.tx ? 'local' : state.lockTimeout) : 'session';
    };
    if (kind === 'VariableSetStmt') {
      const arg = node.args?.[0]?.A_Const;
      const value = node.kind === 'VAR_SET_VALUE' ? String(arg?.sval?.sval ?? arg?.ival?.ival ?? 0) : undefined;
      if (node.kind === 'VAR_RESET_ALL') set('lock_timeout', undefined, false);
      else set(node.name, value, node.is_local === true);
    }
    if (kind === 'SelectStmt') {
      for (const t of node.targetList ?? []) {
        const f = t.ResTarget?.val?.FuncCall;
        if (f && listName(f.funcname).pop() === 'set_config') {
          const [n, v, l] = (f.args ?? []).map((a: any) => a?.A_Const);
          if (n?.sval?.sval) set(n.sval.sval, String(v?.sval?.sval ?? v?.ival?.ival ?? '0'), l?.boolval?.boolval === true);
        }
      }
    }
  }

  function versionChecks(kind: string, node: any, w: Where): void {
    for (const f of newerFeatures(kind, node, pgVersion)) {
      const pos = !w.inDo && typeof f.location === 'number' && f.location >= 0 ? source.at(f.location) : w;
      const where = `line ${pos.line}, column ${pos.column}`;
      if (f.extension) {
        if (state.extensions.has(f.extension) || catalog?.installedExtensions.has(f.extension)) continue;
        const msg = `${where}: ${f.feature} is built in from PostgreSQL ${f.since} (target is ${pgVersion}); older versions need the ${f.extension} extension`;
        if (catalog) errors.push(msg); else warnings.push(msg);
        continue;
      }
      errors.push(`${where}: ${f.feature} needs PostgreSQL ${f.since} or later (target is ${pgVersion})`);
    }
  }

  function classifyCandidate(c: Candidate, w: Where): void {
    const refined = refine(c);
    const rule: OperationRule = ruleFor(refined.type, pgVersion);
    const isNew = !!c.table && state.newObjects.has(c.table.key) && refined.type !== 'UNKNOWN';
    const op: ReportOperation = {
      type: refined.type,
      statement: shorten(w.text),
      riskLevel: rule.risk,
      classification: rule.classification,
      ...(c.table ? { table: c.table.display } : {}),
      ...(c.column ? { column: c.column } : {}),
      lock: rule.lock,
      rewrite: rule.rewrite,
      scan: rule.scan,
      backwardCompatible: rule.backwardCompatible,
      line: w.line,
      reason: rule.reason + (refined.detail ? ` (${refined.detail})` : '') + (c.detail && ['SELECT_FUNCTION', 'CALL'].includes(refined.type) ? `: ${c.detail}` : ''),
      ...(rule.saferAlternative && rule.classification !== 'safe' ? { saferAlternative: rule.saferAlternative } : {}),
    };
    if (isNew && (op.classification !== 'safe' || op.riskLevel !== 'LOW')) {
      Object.assign(op, { classification: 'safe', riskLevel: 'LOW', backwardCompatible: true, reason: `${c.table!.display} was created earlier in this file: nothing uses it yet` });
      delete op.saferAlternative;
    }
    ops.push(op);
    transactionLocks(op, rule, c, isNew, w);
    if (c.trigger && c.table && !isNew) triggerSwitch(refined.type, c.table, c.trigger, op, w);
    if ((refined.type === 'CREATE_INDEX_CONCURRENTLY' || refined.type === 'REINDEX_CONCURRENTLY') && pgVersion === 14 && !state.cicWarned
      && !(catalog?.serverVersionNum && catalog.serverVersionNum >= 140004)) {
      state.cicWarned = true;
      warnings.push(`line ${w.line}: PostgreSQL 14.0 to 14.3 can build a corrupt index CONCURRENTLY (fixed in 14.4): ${catalog?.serverVersionNum ? `the server is ${Math.floor(catalog.serverVersionNum / 10000)}.${catalog.serverVersionNum % 100}; update it first` : 'make sure the server runs 14.4 or later'}`);
    }

    const nonTransactional = rule.nonTransactional || (refined.type === 'ADD_ENUM_VALUE' && pgVersion < 12);
    if (nonTransactional) {
      if (!w.inDo) state.hasNonTransactional = true;
      const what = opWords(refined.type);
      if (w.inDo) errors.push(`${at(w)}: ${what} cannot run inside a DO block (it runs in a transaction) (SQLSTATE 25001)`);
      else if (state.tx) errors.push(`${at(w)}: ${what} cannot run inside a transaction block (BEGIN at line ${state.tx.line}) (SQLSTATE 25001)`);
    }
    if (refined.warning) warnings.push(`line ${w.line}: ${refined.warning}`);
    if (refined.type === 'UNKNOWN') warnings.push(`line ${w.line}: unrecognised operation${c.detail ? ` (${c.detail})` : ''}: classified risky until reviewed`);
    if (refined.type === 'DYNAMIC_SQL') warnings.push(`line ${w.line}: EXECUTE of a computed string in a DO block cannot be analysed`);
    if (!isNew && rule.warn) {
      const target = c.table ? `${c.table.display}${c.column ? `.${c.column}` : ''}` : c.detail ?? '';
      switch (rule.warn) {
        case 'destructive': warnings.push(`line ${w.line}: destructive: ${opWords(refined.type)} ${target} loses data${sizeNote(c.table)}; a rollback needs the backup`); break;
        case 'rewrite': warnings.push(`line ${w.line}: rewrites ${target || 'the table'}${sizeNote(c.table)} under ${rule.lock}`); break;
        case 'not-null-scan': warnings.push(`line ${w.line}: NOT NULL on ${target} scans the whole table${sizeNote(c.table)} under ACCESS EXCLUSIVE`); break;
        case 'extension': warnings.push(`line ${w.line}: requires extension ${c.detail} to be installable on both blue and green`); break;
        case 'both-sides': warnings.push(`line ${w.line}: ${opWords(refined.type)} ${c.detail ?? ''} applies to this cluster only and pgflip does not carry server settings between sides: run it on both blue and green${refined.type === 'ALTER_SYSTEM_RELOAD' ? ', then SELECT pg_reload_conf() on each' : ''}`); break;
      }
    }
    if (c.type === 'ADD_COLUMN_NOT_NULL' && !isNew && c.table) {
      // PostgreSQL checks the new column against every existing row: with rows, the statement
      // fails. A warning, not an error: the estimate can be stale (a table emptied since its last
      // ANALYZE), the file may empty the table first, and a domain type may bring a default.
      const t = catalogTable(c.table);
      const col = `${c.table.display}.${c.column ?? '?'}`;
      if (t && t.rowEstimate > 0) {
        warnings.push(`line ${w.line}: ${col} is added NOT NULL without a default to a table with rows (~${Math.round(t.rowEstimate).toLocaleString('en-US')}, planner estimate): PostgreSQL rejects that with SQLSTATE 23502; give it a default, or add it nullable, backfill, then set NOT NULL`);
      } else if (t && t.rowEstimate < 0) {
        warnings.push(`line ${w.line}: ${col} is added NOT NULL without a default: it fails (SQLSTATE 23502) if ${c.table.display} has any row (its size is unknown: never analysed)`);
      }
    }
    if (c.type === 'DROP_COLUMN' && !isNew && c.table && c.column) {
      const col = catalogTable(c.table)?.columns.get(c.column);
      if (col?.notNull && !col.hasDefault) warnings.push(`line ${w.line}: ${c.table.display}.${c.column} is NOT NULL without default: reverse sync cannot fill it, so a rollback after the flip needs --no-rollback`);
    }
    if (!isNew && c.table && blocksWrites(rule.lock) && state.lockTimeout === 'none' && exists(c.table) !== false && !c.type.startsWith('CREATE_TABLE')) {
      if (!state.lockTimeoutMissing.includes(w.line)) state.lockTimeoutMissing.push(w.line);
    }
    if (c.table && catalogTable(c.table)) state.touched.add(c.table.key);
    existenceChecks(c, w);
    applyEffects(c);
  }

  /**
   * A trigger dropped (or switched off) and made again (or switched on) later in the same
   * transaction never misses a write of the running application: the drop is then safe.
   */
  function triggerSwitch(type: OperationType, table: RelName, name: string, op: ReportOperation, w: Where): void {
    // inside a DO block control flow (IF, RETURN, EXCEPTION, COMMIT) decides what runs: no pairing there
    if (w.inDo) return;
    const tx = state.tx?.id ?? 0;
    if (type === 'DROP_TRIGGER' || type === 'DISABLE_TRIGGER' || type === 'DISABLE_RULE') { state.triggersOff.set(colKey(table.key, name), { op, tx }); return; }
    const on = type === 'ENABLE_DISABLE_TRIGGER' || type === 'ENABLE_RULE';
    if (!on && type !== 'CREATE_TRIGGER') return;
    // ENABLE ALL turns on what any switch turned off; ENABLE USER not the foreign keys' (ALL); by name, that one
    const prefix = `${table.key}\u0000`;
    const keys = on && name.startsWith('*')
      ? [...state.triggersOff.keys()].filter((k) => k.startsWith(prefix) && (name === '*all' || k !== `${prefix}*all`))
      : [colKey(table.key, name)];
    for (const k of keys) {
      const off = state.triggersOff.get(k);
      if (!off || (on ? !['DISABLE_TRIGGER', 'DISABLE_RULE'].includes(off.op.type) : off.op.type !== 'DROP_TRIGGER')) continue;
      state.triggersOff.delete(k);
      const verb = on ? 'enabled' : 'created';
      if (off.tx !== 0 && off.tx === tx) state.txRestores.push({ op: off.op, line: w.line, verb });
      else if (off.tx === 0 && tx === 0) state.fileTxRestores.push({ op: off.op, line: w.line, verb });
    }
  }

  function restoreTrigger(op: ReportOperation, line: number, verb: string): void {
    Object.assign(op, { classification: 'safe', riskLevel: 'LOW', backwardCompatible: true, reason: `${verb} again at line ${line} in the same transaction: no write of the running application misses it` });
    delete op.saferAlternative;
  }

  /** What PostgreSQL rejects in a data change's own text: a column assigned or listed twice. */
  function duplicateColumns(kind: string, node: any, w: Where): void {
    const check = (targets: any[] | undefined, message: (col: string) => string) => {
      const seen = new Set<string>();
      for (const t of targets ?? []) {
        const r = t.ResTarget;
        if (!r?.name || r.indirection?.length) continue;
        if (seen.has(r.name)) {
          const pos = !w.inDo && typeof r.location === 'number' ? source.at(r.location) : w;
          errors.push(`line ${pos.line}, column ${pos.column}: ${message(r.name)}`);
        }
        seen.add(r.name);
      }
    };
    const assign = (col: string) => `multiple assignments to same column "${col}" (SQLSTATE 42601)`;
    if (kind === 'UpdateStmt') check(node.targetList, assign);
    if (kind === 'InsertStmt') {
      check(node.cols, (col) => `column "${col}" specified more than once (SQLSTATE 42701)`);
      check(node.onConflictClause?.targetList, assign);
    }
  }

  /**
   * A lock is held until its transaction ends: long work after a write-blocking lock in the same
   * transaction (explicit block, DO block, or the whole file when it runs as one) is paid under it.
   * Locks on tables created in the file block nobody.
   */
  function transactionLocks(op: ReportOperation, rule: OperationRule, c: Candidate, isNew: boolean, w: Where): void {
    const longWork = !isNew && !rule.nonTransactional && (rule.scan || rule.rewrite || LONG_WORK.has(op.type));
    if (longWork) {
      const inBlock = strongest([...(state.doHeld ?? []), ...(state.tx ? state.txHeld : [])]);
      const inFile = state.tx ? undefined : strongest(state.fileHeld);
      if (inBlock) underHeldLock(op, inBlock);
      else if (inFile) state.pendingHeld.push({ op, held: inFile });
    }
    if (!c.table || isNew || !blocksWrites(rule.lock) || exists(c.table) === false) return;
    const held: HeldLock = { lock: rule.lock, table: c.table.display, line: w.line, operation: op.type };
    if (state.doHeld) state.doHeld.push(held);
    else if (state.tx) state.txHeld.push(held);
    else state.fileHeld.push(held);
  }

  function statement(kind: string, node: any, w: Where): void {
    versionChecks(kind, node, w);
    duplicateColumns(kind, node, w);
    checkEnumUse(node, w);
    trackSettings(kind, node);
    const candidates = extract(kind, node, w.st);
    for (const c of candidates) {
      classifyCandidate(c, w);
      if (c.type === 'ADD_ENUM_VALUE') state.enumAdds[state.enumAdds.length - 1].line = w.line;
    }
  }

  function doBlock(node: any, w: Where, bodyLine: number): void {
    const { language, body } = doBody(node);
    versionChecks('DoStmt', node, w);
    if (language !== 'plpgsql' || body === undefined) {
      classifyCandidate({ type: 'UNKNOWN', detail: `DO block in ${language}`, effects: [] }, w);
      return;
    }
    let inner;
    try { inner = innerStatements(body); } catch (err) {
      warnings.push(`line ${w.line}: the DO block's body could not be read: ${(err as Error).message}`);
      classifyCandidate({ type: 'UNKNOWN', detail: 'DO block', effects: [] }, w);
      return;
    }
    state.currentDo = ++state.doCount;
    state.doHeld = [];
    let count = 0;
    for (const s of inner) {
      const line = bodyLine + s.lineno - 1;
      const iw: Where = { line, column: 1, text: s.sql ?? w.text, inDo: true, st: { text: s.sql ?? '', base: 0 } };
      if (s.sql === undefined) { classifyCandidate({ type: 'DYNAMIC_SQL', effects: [] }, iw); count++; continue; }
      let stmts;
      try { stmts = parseSql(s.sql); } catch (err) {
        warnings.push(`line ${line}: a statement in the DO block does not parse: ${(err as Error).message}`);
        classifyCandidate({ type: 'UNKNOWN', detail: 'statement in DO block', effects: [] }, iw);
        count++;
        continue;
      }
      for (const st of stmts) {
        if (st.kind === 'SelectStmt' && !st.node.intoClause) {
          // plain reads inside a DO block (IF EXISTS checks, PERFORM of built-ins) change nothing
          const c = extract(st.kind, st.node, iw.st);
          if (c.every((x) => x.type === 'SELECT')) { checkEnumUse(st.node, iw); continue; }
        }
        statement(st.kind, st.node, iw);
        count++;
      }
    }
    state.currentDo = undefined;
    // the DO block's locks stay held to the end of the transaction around it
    const doHeld = state.doHeld;
    state.doHeld = undefined;
    (state.tx ? state.txHeld : state.fileHeld).push(...doHeld);
    if (count === 0) classifyCandidate({ type: 'DO_BLOCK', effects: [] }, w);
  }

  for (const s of parsed.statements) {
    const pos = source.at(s.start);
    const w: Where = { line: pos.line, column: pos.column, text: s.text, inDo: false, st: { text: s.text, base: s.start } };
    if (s.kind === 'TransactionStmt') { transaction(s.node, w); continue; }
    if (s.kind === 'DoStmt') {
      const { bodyLocation } = doBody(s.node);
      doBlock(s.node, w, bodyLocation !== undefined ? source.at(bodyLocation).line : w.line);
      continue;
    }
    statement(s.kind, s.node, w);
  }

  function transaction(node: any, w: Where): void {
    state.hasExplicitTx = true;
    switch (node.kind) {
      case 'TRANS_STMT_BEGIN': case 'TRANS_STMT_START':
        if (state.tx) warnings.push(`line ${w.line}: BEGIN inside a transaction block (opened at line ${state.tx.line}) has no effect`);
        else state.tx = { line: w.line, column: w.column, id: ++state.txCount };
        return;
      case 'TRANS_STMT_COMMIT': case 'TRANS_STMT_ROLLBACK':
        if (!state.tx) warnings.push(`line ${w.line}: ${node.kind === 'TRANS_STMT_COMMIT' ? 'COMMIT' : 'ROLLBACK'} without a transaction in progress`);
        else if (node.kind === 'TRANS_STMT_ROLLBACK') warnings.push(`line ${w.line}: ROLLBACK discards everything since BEGIN at line ${state.tx.line}`);
        if (state.tx && state.enumAdds.length) state.enumAdds.splice(0, state.enumAdds.length, ...state.enumAdds.filter((a) => a.tx !== state.tx!.id));
        // a trigger made again counts once its transaction commits
        if (node.kind === 'TRANS_STMT_COMMIT') for (const r of state.txRestores) restoreTrigger(r.op, r.line, r.verb);
        state.txRestores = [];
        state.tx = undefined;
        state.txHeld = [];
        if (state.lockTimeout === 'local') state.lockTimeout = 'none';
        return;
      case 'TRANS_STMT_PREPARE': case 'TRANS_STMT_COMMIT_PREPARED': case 'TRANS_STMT_ROLLBACK_PREPARED':
        errors.push(`${at(w)}: two-phase commit (PREPARE TRANSACTION) is not supported in a migration`);
        state.tx = undefined;
        return;
      case 'TRANS_STMT_ROLLBACK_TO':
        // it may undo the CREATE TRIGGER (or ENABLE) that made a drop safe: the drops stay risky
        state.txRestores = [];
        return;
      default:
        return; // other savepoint commands
    }
  }

  if (state.tx) errors.push(`line ${state.tx.line}, column ${state.tx.column}: BEGIN is never committed (the file ends inside a transaction block)`);
  // without BEGIN/COMMIT and without statements that need autocommit, the file runs as one transaction
  if (!state.hasExplicitTx && !state.hasNonTransactional) {
    errors.push(...state.pendingEnumErrors);
    for (const p of state.pendingHeld) underHeldLock(p.op, p.held);
    for (const r of state.fileTxRestores) restoreTrigger(r.op, r.line, r.verb);
  }
  for (const op of ops) {
    if (op.heldLock) warnings.push(`line ${op.line}: ${op.type.replace(/_/g, ' ')} runs under ${op.heldLock.lock} on ${op.heldLock.table}, held since line ${op.heldLock.line} (${op.heldLock.operation.replace(/_/g, ' ')}) until the transaction ends: ${op.heldLock.lock === 'ACCESS EXCLUSIVE' ? 'reads and writes' : 'writes'} of ${op.heldLock.table} wait for the whole of it`);
  }
  if (state.lockTimeoutMissing.length) {
    warnings.push(`lock_timeout is not set before the statements that lock existing tables against writes (line${state.lockTimeoutMissing.length > 1 ? 's' : ''} ${state.lockTimeoutMissing.join(', ')}): pgflip sets one when it applies the file; run any other way they would queue behind long transactions and block every query behind them`);
  }

  let classification: Classification = 'safe';
  let riskLevel: RiskLevel = 'LOW';
  for (const op of ops) { classification = worseClass(classification, op.classification); riskLevel = worseRisk(riskLevel, op.riskLevel); }
  if (parsed.failures.length) { classification = worseClass(classification, 'risky'); riskLevel = worseRisk(riskLevel, 'MEDIUM'); }

  const report: ValidationReport = { file, isValid: errors.length === 0, classification, riskLevel, pgVersion, operations: ops, warnings, errors };
  if (classification === 'risky') report.mapping = mapping.build();
  if (catalog) {
    report.tables = [...state.touched].map((k): TableSize => {
      const t = catalog.tables.get(k)!;
      return { table: k, rowEstimate: t.rowEstimate, bytes: t.bytes };
    });
  }
  return report;
}

/** CREATE_INDEX_CONCURRENTLY → "CREATE INDEX CONCURRENTLY", for messages */
const opWords = (type: string) => type.replace(/_/g, ' ');

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}


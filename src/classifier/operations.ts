/**
 * The operation table: one row per kind of operation a migration can contain, with what
 * PostgreSQL does when it runs on an existing, busy table. This is data on purpose — the
 * extractor (extract.ts) only decides which row a statement is; every answer lives here.
 *
 * Risk levels: HIGH = destructive or not backward compatible, or blocks reads or writes for
 * time proportional to the table's size; MEDIUM = cannot be fully analysed, or changes live
 * data / access; LOW = catalog-only change or a lock held for milliseconds.
 */
import type { Classification, LockLevel, RiskLevel } from './types';

export interface OperationRule {
  lock: LockLevel;
  rewrite: boolean;
  scan: boolean;
  backwardCompatible: boolean;
  classification: Classification;
  risk: RiskLevel;
  reason: string;
  saferAlternative?: string;
  /** cannot run inside a transaction block (or a function / DO block) */
  nonTransactional?: boolean;
  /** adds the warning of this kind when it runs on an existing table */
  warn?: 'destructive' | 'rewrite' | 'not-null-scan' | 'extension' | 'both-sides';
  /** the answer is different before this major version: `before` overrides the fields above */
  changesAt?: { version: number; before: Partial<Omit<OperationRule, 'changesAt'>> };
}

const brief = 'catalog-only change under a lock held for milliseconds';
const destructive = 'destructive: breaks the running application';
const incompatible = 'breaks the running application, which still uses the old name';

export const OPERATIONS = {
  // ── tables ──────────────────────────────────────────────────────────────
  CREATE_TABLE: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new table: nothing uses it yet' },
  CREATE_TABLE_AS: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new table filled from a query: only reads existing tables' },
  CREATE_PARTITION: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new partition: brief ACCESS EXCLUSIVE on the parent' },
  DROP_TABLE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: destructive, warn: 'destructive', saferAlternative: 'stop using the table in the application first, then drop it in a later migration' },
  RENAME_TABLE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: incompatible, saferAlternative: 'rename, and create a view with the old name until the application is updated' },
  SET_SCHEMA: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: 'moves the object to another schema: ' + incompatible },
  TRUNCATE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'maintenance', risk: 'HIGH', reason: 'deletes every row of a live table: cannot be synced to an idle copy', warn: 'destructive' },
  LOCK_TABLE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'maintenance', risk: 'HIGH', reason: 'takes a lock that blocks writes on purpose, until the transaction ends' },
  LOCK_TABLE_WEAK: { lock: 'ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'explicit lock in a mode that does not block reads or writes' },
  SET_TABLESPACE: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: false, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'copies the table to the new tablespace under ACCESS EXCLUSIVE', warn: 'rewrite' },
  SET_LOGGED: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: false, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'rewrites the table (and writes it all to WAL) under ACCESS EXCLUSIVE', warn: 'rewrite' },
  SET_UNLOGGED: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: false, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'rewrites the table under ACCESS EXCLUSIVE; unlogged tables are not replicated or synced', warn: 'rewrite' },
  TABLE_OPTIONS: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'storage or planner setting: does not block reads or writes' },
  REPLICA_IDENTITY: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'how UPDATE and DELETE are identified in logical replication: ' + brief },
  REPLICA_IDENTITY_NOTHING: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: 'REPLICA IDENTITY NOTHING: UPDATE and DELETE on a table in a publication fail (SQLSTATE 55000), and logical replication (pgflip\'s sync) cannot carry them', saferAlternative: 'REPLICA IDENTITY FULL, or a unique index (USING INDEX)' },
  OWNER: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'changes the owner: ' + brief },
  ENABLE_RLS: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'row level security changes which rows the running application sees' },

  // ── columns ─────────────────────────────────────────────────────────────
  ADD_COLUMN: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'nullable column without default: ' + brief },
  ADD_COLUMN_DEFAULT: {
    lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW',
    reason: 'non-volatile default: stored in the catalog, no rewrite (PostgreSQL 11+)',
    changesAt: { version: 11, before: { rewrite: true, classification: 'risky', risk: 'HIGH', warn: 'rewrite', reason: 'before PostgreSQL 11 a column default rewrites the whole table under ACCESS EXCLUSIVE', saferAlternative: 'add the column without default, set the default, then backfill in batches' } },
  },
  ADD_COLUMN_VOLATILE_DEFAULT: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: false, backwardCompatible: true, classification: 'risky', risk: 'HIGH', warn: 'rewrite', reason: 'volatile default is computed for every row: rewrites the table under ACCESS EXCLUSIVE', saferAlternative: 'add the column without default, set the default, then backfill in batches' },
  ADD_COLUMN_JSON: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'json has no equality operator: the running application\'s SELECT DISTINCT *, UNION and GROUP BY over whole rows of the table fail (SQLSTATE 42883)', saferAlternative: 'jsonb' },
  ADD_COLUMN_NOT_NULL: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: 'NOT NULL without default: fails on a table with rows, and inserts from the running application that omit it fail', saferAlternative: 'add it nullable (or with a default), backfill, then add NOT NULL through a CHECK … NOT VALID and VALIDATE' },
  ADD_COLUMN_DOMAIN: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: true, backwardCompatible: true, classification: 'risky', risk: 'HIGH', warn: 'rewrite', reason: 'column of a domain with constraints: PostgreSQL rewrites the table to check the domain for every row, under ACCESS EXCLUSIVE', saferAlternative: 'add the column with the domain\'s base type and a CHECK … NOT VALID, VALIDATE it, then change the type to the domain' },
  ADD_COLUMN_GENERATED_STORED: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: false, backwardCompatible: true, classification: 'risky', risk: 'HIGH', warn: 'rewrite', reason: 'stored generated column is computed for every row: rewrites the table under ACCESS EXCLUSIVE' },
  ADD_COLUMN_GENERATED_VIRTUAL: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'virtual generated column is computed on read: ' + brief },
  ADD_COLUMN_IDENTITY: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: false, backwardCompatible: true, classification: 'risky', risk: 'HIGH', warn: 'rewrite', reason: 'identity/serial column is filled from a sequence for every row: rewrites the table under ACCESS EXCLUSIVE', saferAlternative: 'add a nullable column, backfill in batches, then attach the sequence default' },
  DROP_COLUMN: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'destructive', reason: destructive, saferAlternative: 'stop reading and writing the column in the application first, then drop it in a later migration' },
  RENAME_COLUMN: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: incompatible, saferAlternative: 'add the new column, write both, backfill, switch reads, then drop the old one' },
  ALTER_COLUMN_TYPE: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'rewrite', reason: 'type change rewrites the table and its indexes under ACCESS EXCLUSIVE', saferAlternative: 'add a column of the new type, backfill in batches, switch the application, drop the old column' },
  ALTER_COLUMN_TYPE_COMPATIBLE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'binary-coercible type change (e.g. varchar widening, varchar → text): ' + brief },
  SET_DEFAULT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'default applies to new rows only: ' + brief },
  DROP_DEFAULT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new rows that omit the column get NULL: ' + brief },
  SET_NOT_NULL: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'not-null-scan', reason: 'scans the whole table under ACCESS EXCLUSIVE to check for NULLs', saferAlternative: 'ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT; then SET NOT NULL (PostgreSQL 12+ skips the scan)' },
  SET_NOT_NULL_CHECKED: {
    lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW',
    reason: 'a valid CHECK (col IS NOT NULL) proves it: no scan (PostgreSQL 12+)',
    changesAt: { version: 12, before: { scan: true, classification: 'risky', risk: 'HIGH', warn: 'not-null-scan', reason: 'before PostgreSQL 12 SET NOT NULL scans the whole table under ACCESS EXCLUSIVE even with a valid CHECK' } },
  },
  DROP_DEFAULT_NOT_NULL: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: 'the column is NOT NULL: the running application\'s inserts that omit it fail (SQLSTATE 23502) once its default is gone', saferAlternative: 'drop the default only after every running version of the application writes the column' },
  DROP_DEFAULT_UNCHECKED: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'whether the column is NOT NULL is unknown: if it is, the running application\'s inserts that omit it fail (SQLSTATE 23502) once its default is gone', saferAlternative: 'pass --database-url so that pgflip can check the column' },
  DROP_IDENTITY: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: 'an identity column is NOT NULL: the running application\'s inserts that omit it fail (SQLSTATE 23502) once nothing fills it', saferAlternative: 'give the column a default from a sequence in the same statement, or stop the application relying on it first' },
  IDENTITY_VALUES: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'RESTART, CYCLE, MINVALUE, MAXVALUE or a negative INCREMENT of an identity: it can hand out values already used (the running application\'s inserts fail, SQLSTATE 23505) or run out (SQLSTATE 2200H)', saferAlternative: 'RESTART past the values in use, and a range that fits the column' },
  IDENTITY_ALWAYS: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: 'GENERATED ALWAYS: the running application\'s inserts that give the column a value fail (SQLSTATE 428C9)', saferAlternative: 'GENERATED BY DEFAULT AS IDENTITY (and a START WITH past the existing values)' },
  DROP_NOT_NULL: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'relaxes a constraint: ' + brief },
  COLUMN_OPTIONS: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'statistics target or planner option of a column: does not block reads or writes' },
  COLUMN_CATALOG_OPTION: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'storage, compression or identity option of a column (existing rows are not rewritten): ' + brief },
  DROP_EXPRESSION: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'the column stops being computed: the running application\'s inserts and updates leave it NULL or stale', saferAlternative: 'have every running version of the application write the column first' },
  SET_EXPRESSION: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: false, backwardCompatible: true, classification: 'risky', risk: 'HIGH', warn: 'rewrite', reason: 'new generation expression recomputes every row under ACCESS EXCLUSIVE' },

  // ── constraints ─────────────────────────────────────────────────────────
  ADD_CHECK: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'checks every row under ACCESS EXCLUSIVE', saferAlternative: 'ADD CONSTRAINT … NOT VALID, then VALIDATE CONSTRAINT in a later statement' },
  ADD_CHECK_NOT_VALID: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'NOT VALID: only new rows are checked; ' + brief },
  ADD_NOT_NULL_CONSTRAINT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'not-null-scan', reason: 'scans the whole table under ACCESS EXCLUSIVE to check for NULLs', saferAlternative: 'ADD CONSTRAINT … NOT NULL … NOT VALID, then VALIDATE CONSTRAINT (PostgreSQL 18+)' },
  ADD_NOT_NULL_CONSTRAINT_NOT_VALID: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'NOT VALID: only new rows are checked; ' + brief },
  ADD_FOREIGN_KEY: { lock: 'SHARE ROW EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'checks every row while blocking writes on both tables', saferAlternative: 'ADD CONSTRAINT … FOREIGN KEY … NOT VALID, then VALIDATE CONSTRAINT in a later statement' },
  ADD_FOREIGN_KEY_NOT_VALID: { lock: 'SHARE ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'NOT VALID: only new rows are checked; ' + brief },
  ADD_UNIQUE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'builds a unique index under ACCESS EXCLUSIVE', saferAlternative: 'CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … UNIQUE USING INDEX' },
  ADD_UNIQUE_USING_INDEX: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'adopts an existing unique index: ' + brief },
  ADD_PRIMARY_KEY: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'builds a unique index (and checks NOT NULL) under ACCESS EXCLUSIVE', saferAlternative: 'CREATE UNIQUE INDEX CONCURRENTLY, then ADD PRIMARY KEY USING INDEX on NOT NULL columns' },
  ADD_PRIMARY_KEY_USING_INDEX: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: true, classification: 'risky', risk: 'MEDIUM', reason: 'adopts an existing index, but scans the table under ACCESS EXCLUSIVE for columns not already NOT NULL', saferAlternative: 'make the columns NOT NULL through a validated CHECK first' },
  ADD_EXCLUDE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'builds an exclusion index under ACCESS EXCLUSIVE (cannot be NOT VALID)' },
  VALIDATE_CONSTRAINT: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'scans the table without blocking reads or writes' },
  DROP_CONSTRAINT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'relaxes a constraint: ' + brief },
  DROP_KEY_CONSTRAINT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: 'drops a primary key, unique or exclusion constraint: the running application\'s ON CONFLICT on it fails (SQLSTATE 42P10, or 42704 by name), and without a key logical replication (pgflip\'s sync) cannot match UPDATEs and DELETEs', saferAlternative: 'stop the application relying on the key first; keep a unique index (or REPLICA IDENTITY FULL) for sync' },
  ALTER_CONSTRAINT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'changes constraint attributes: ' + brief },

  // ── indexes ─────────────────────────────────────────────────────────────
  CREATE_INDEX: { lock: 'SHARE', rewrite: false, scan: true, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'builds the index while blocking writes to the table', saferAlternative: 'CREATE INDEX CONCURRENTLY (outside a transaction block)' },
  CREATE_INDEX_CONCURRENTLY: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'builds the index without blocking reads or writes', nonTransactional: true },
  DROP_INDEX: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'MEDIUM', reason: 'brief ACCESS EXCLUSIVE on the table; queries that used the index may slow down', saferAlternative: 'DROP INDEX CONCURRENTLY' },
  DROP_UNIQUE_INDEX: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: 'drops a unique index: the running application\'s ON CONFLICT on its columns fails (SQLSTATE 42P10), and duplicates become possible', saferAlternative: 'stop the application relying on the index first' },
  DROP_UNIQUE_INDEX_CONCURRENTLY: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: 'drops a unique index (without blocking): the running application\'s ON CONFLICT on its columns fails (SQLSTATE 42P10), and duplicates become possible', saferAlternative: 'stop the application relying on the index first', nonTransactional: true },
  DROP_INDEX_CONCURRENTLY: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'drops the index without blocking reads or writes', nonTransactional: true },
  RENAME_INDEX: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'index and constraint names are not used by queries: ' + brief },
  RENAME_KEY_CONSTRAINT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'renames a primary key, unique or exclusion constraint: the running application\'s ON CONFLICT ON CONSTRAINT with the old name fails (SQLSTATE 42704)', saferAlternative: 'update the application\'s ON CONFLICT ON CONSTRAINT clauses first (or name the columns instead)' },
  RENAME_KEY_INDEX: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'renames the index of a primary key, unique or exclusion constraint, and so the constraint: the running application\'s ON CONFLICT ON CONSTRAINT with the old name fails (SQLSTATE 42704)', saferAlternative: 'update the application\'s ON CONFLICT ON CONSTRAINT clauses first (or name the columns instead)' },
  RENAME_CONSTRAINT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'constraint and trigger names are not used by queries: ' + brief },
  REINDEX: { lock: 'SHARE', rewrite: true, scan: true, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'rebuilds while blocking writes, and reads that use the index', saferAlternative: 'REINDEX … CONCURRENTLY (PostgreSQL 12+)' },
  REINDEX_CONCURRENTLY: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: true, scan: true, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'rebuilds without blocking reads or writes', nonTransactional: true },
  REINDEX_DATABASE: { lock: 'SHARE', rewrite: true, scan: true, backwardCompatible: true, classification: 'maintenance', risk: 'HIGH', reason: 'rebuilds every index of a schema or database while blocking writes', nonTransactional: true, saferAlternative: 'REINDEX … CONCURRENTLY per table' },

  // ── views, functions, triggers ──────────────────────────────────────────
  REPLACE_VIEW: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'replaces an existing view\'s query (columns can only be added at the end, so the old queries still run): ' + brief },
  REPLACE_VIEW_READ_ONLY: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'the new query cannot be written through (DISTINCT, GROUP BY, a join, an aggregate, LIMIT…): if the running application inserts, updates or deletes through the view, that fails (SQLSTATE 55000) unless INSTEAD OF triggers take it' },
  VIEW_OPTIONS: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'security_invoker, security_barrier or check_option change which rows the running application\'s queries through the view see and may write, and with whose privileges' },
  CREATE_VIEW: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'view definition: ' + brief },
  CREATE_MATERIALIZED_VIEW: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new materialized view: only reads existing tables' },
  REFRESH_MATERIALIZED_VIEW: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: true, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'blocks every read of the materialized view while it recomputes', saferAlternative: 'REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index)' },
  REFRESH_MATERIALIZED_VIEW_CONCURRENTLY: { lock: 'EXCLUSIVE', rewrite: true, scan: true, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'recomputes while reads continue' },
  CREATE_FUNCTION: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'function definition; its body is not run now' },
  CREATE_TRIGGER: { lock: 'SHARE ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'trigger definition: ' + brief },
  DROP_TRIGGER: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'the running application\'s writes no longer fire it: whatever it maintained (audit rows, counters, derived columns) silently stops', saferAlternative: 'create it again in the same transaction (CREATE OR REPLACE TRIGGER, PostgreSQL 14+), or stop the application relying on it first' },
  DISABLE_TRIGGER: { lock: 'SHARE ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'the running application\'s writes no longer fire it (DISABLE, or ENABLE REPLICA): whatever it maintained silently stops', saferAlternative: 'enable it again later in the same transaction' },
  ENABLE_DISABLE_TRIGGER: { lock: 'SHARE ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'switches a trigger on (ENABLE, ENABLE ALWAYS): ' + brief },
  ENABLE_RULE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'switches a rule on (ENABLE, ENABLE ALWAYS): ' + brief },
  DISABLE_RULE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'the running application\'s statements on the table are no longer rewritten by it (DISABLE, or ENABLE REPLICA)', saferAlternative: 'enable it again later in the same transaction' },
  CALL: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'risky', risk: 'MEDIUM', reason: 'calls a procedure whose effects cannot be analysed' },
  SELECT: { lock: 'ACCESS SHARE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'reads only' },
  SELECT_FUNCTION: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'risky', risk: 'MEDIUM', reason: 'calls a function whose effects cannot be analysed' },
  DO_BLOCK: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'DO block without statements that change schema or data' },
  DYNAMIC_SQL: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'risky', risk: 'MEDIUM', reason: 'EXECUTE of a computed string cannot be analysed' },

  // ── types, domains, extensions, sequences, schemas ──────────────────────
  CREATE_TYPE: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new type: nothing uses it yet' },
  ADD_ENUM_VALUE: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new enum value: catalog only' },
  RENAME_ENUM_VALUE: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: 'the running application still writes the old value' },
  ALTER_TYPE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'changes a type that columns or functions may use' },
  CREATE_DOMAIN: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new domain: nothing uses it yet' },
  ALTER_DOMAIN_ADD_CONSTRAINT: { lock: 'SHARE', rewrite: false, scan: true, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'checks every column of the domain in every table while blocking writes', saferAlternative: 'ADD CONSTRAINT … NOT VALID, then VALIDATE CONSTRAINT' },
  ALTER_DOMAIN_VALIDATE: { lock: 'SHARE', rewrite: false, scan: true, backwardCompatible: true, classification: 'risky', risk: 'HIGH', reason: 'checks every column of the domain in every table while blocking writes (SHARE, PostgreSQL 10–18; unlike a table\'s VALIDATE CONSTRAINT)' },
  ALTER_DOMAIN_DROP_DEFAULT: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'columns of the domain lose its default: the running application\'s inserts that omit them store NULL, or fail (SQLSTATE 23502) where NOT NULL' },
  ALTER_DOMAIN: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'domain default, NOT VALID constraint, dropped constraint or NOT NULL: catalog only' },
  CREATE_EXTENSION: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', warn: 'extension', reason: 'new extension objects; the extension must be installable on both sides' },
  ALTER_EXTENSION: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'an extension update may change or rewrite the objects that use it' },
  CREATE_SEQUENCE: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new sequence: nothing uses it yet' },
  ALTER_SEQUENCE_VALUES: { lock: 'SHARE ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'RESTART, CYCLE, MINVALUE, MAXVALUE, AS, a negative INCREMENT or setval() to a constant: the sequence can hand out values already used (the running application\'s inserts fail, SQLSTATE 23505) or run out (SQLSTATE 2200H)', saferAlternative: 'setval() past the values in use, and a range that fits the column' },
  ALTER_SEQUENCE: { lock: 'SHARE ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'sequence option: ' + brief },
  CREATE_SCHEMA: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new schema: nothing uses it yet' },
  CREATE_POLICY: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new row level security policy: ' + brief + '; it changes which rows are seen only once the table has row level security enabled' },
  CREATE_POLICY_RESTRICTIVE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'a RESTRICTIVE policy narrows which rows the running application sees and may write, as soon as the table has row level security enabled' },
  ALTER_POLICY: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'changes which rows (USING, WITH CHECK) or which roles (TO) a row level security policy lets the running application see and write' },
  DROP_POLICY: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'changes which rows the running application sees and may write: without its last permissive policy a table with row level security shows none' },
  DROP_RULE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'the running application\'s statements on the table are no longer rewritten by it' },
  CREATE_RULE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'a rule rewrites the running application\'s statements on the table' },
  CREATE_OBJECT: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'new object: nothing uses it yet' },
  ALTER_OBJECT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'changes an object\'s options: ' + brief },
  DROP_VIEW: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'destructive', reason: destructive, saferAlternative: 'stop using the view in the application first' },
  DROP_MATERIALIZED_VIEW: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'destructive', reason: destructive },
  DROP_FUNCTION: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'destructive', reason: 'destructive: the running application, triggers or defaults may call it' },
  DROP_TYPE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'destructive', reason: destructive },
  DROP_DOMAIN: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'destructive', reason: destructive },
  DROP_EXTENSION: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'destructive', reason: 'destructive: drops the extension\'s types, functions and whatever depends on them' },
  DROP_SEQUENCE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'destructive', reason: destructive },
  DROP_SCHEMA: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'destructive', reason: destructive },
  DROP_OBJECT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', warn: 'destructive', reason: destructive },
  RENAME_OBJECT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: incompatible },

  // ── privileges, comments, settings ──────────────────────────────────────
  GRANT: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'adds privileges: catalog only' },
  REVOKE: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'may remove access the running application relies on' },
  COMMENT: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'comment: catalog only' },
  SET_LOCK_TIMEOUT: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'bounds how long later statements wait for locks' },
  SET_STATEMENT_TIMEOUT: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'bounds how long later statements run' },
  SET: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'session setting' },
  ROLE: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'risky', risk: 'MEDIUM', reason: 'roles belong to the whole cluster and are not synced between blue and green: create them on both sides' },

  // ── maintenance commands ────────────────────────────────────────────────
  VACUUM: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'does not block reads or writes', nonTransactional: true },
  VACUUM_FULL: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: true, backwardCompatible: true, classification: 'maintenance', risk: 'HIGH', warn: 'rewrite', reason: 'rewrites the table under ACCESS EXCLUSIVE; an idle copy is already compact', nonTransactional: true, saferAlternative: 'pg_repack, or let blue/green copy the table' },
  ANALYZE: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'samples the table without blocking reads or writes' },
  CLUSTER: { lock: 'ACCESS EXCLUSIVE', rewrite: true, scan: true, backwardCompatible: true, classification: 'maintenance', risk: 'HIGH', warn: 'rewrite', reason: 'rewrites the table in index order under ACCESS EXCLUSIVE', saferAlternative: 'pg_repack' },

  // ── data changes ────────────────────────────────────────────────────────
  INSERT: { lock: 'ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'adds rows given in the file' },
  INSERT_SELECT: { lock: 'ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'maintenance', risk: 'MEDIUM', reason: 'bulk change of live data: an idle copy would be overwritten by synced writes', saferAlternative: 'backfill in small batches from the application or a job' },
  UPDATE: { lock: 'ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'maintenance', risk: 'MEDIUM', reason: 'bulk change of live data: locks every row it touches, and an idle copy would be overwritten by synced writes', saferAlternative: 'backfill in small batches from the application or a job' },
  UPDATE_BOUNDED: { lock: 'ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'keyed batch: changes at most the rows its WHERE names by a unique key, each locked for milliseconds' },
  DELETE_BOUNDED: { lock: 'ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'keyed batch: deletes at most the rows its WHERE names by a unique key, each locked for milliseconds' },
  DELETE: { lock: 'ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'maintenance', risk: 'MEDIUM', reason: 'bulk change of live data: locks every row it touches, and an idle copy would be overwritten by synced writes', saferAlternative: 'delete in small batches from the application or a job' },
  MERGE: { lock: 'ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'maintenance', risk: 'MEDIUM', reason: 'bulk change of live data: locks every row it touches, and an idle copy would be overwritten by synced writes' },
  COPY: { lock: 'ROW EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'risky', risk: 'MEDIUM', reason: 'COPY loads or dumps data outside what can be analysed' },

  // ── partitions ──────────────────────────────────────────────────────────
  ATTACH_PARTITION: {
    lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: true, backwardCompatible: true, classification: 'risky', risk: 'MEDIUM',
    reason: 'scans the new partition under ACCESS EXCLUSIVE to check its bound (skipped with a matching valid CHECK); the parent keeps serving (PostgreSQL 12+)',
    saferAlternative: 'add a CHECK constraint matching the bound to the partition, VALIDATE it, then attach',
    changesAt: { version: 12, before: { lock: 'ACCESS EXCLUSIVE', risk: 'HIGH', reason: 'before PostgreSQL 12 attaching blocks the whole partitioned table while the new partition is scanned' } },
  },
  ATTACH_NEW_PARTITION: {
    lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW',
    reason: 'attaches a table created in this file to a parent without a DEFAULT partition: only the new table is checked, the parent keeps serving (PostgreSQL 12+)',
    changesAt: { version: 12, before: { lock: 'ACCESS EXCLUSIVE', classification: 'risky', risk: 'MEDIUM', reason: 'before PostgreSQL 12 attaching blocks the whole partitioned table while the new partition is checked' } },
  },
  ADD_INHERIT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'the table\'s rows start to appear in the running application\'s queries on the parent' },
  DROP_INHERIT: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'the table\'s rows disappear from the running application\'s queries on the parent' },
  DETACH_PARTITION: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'HIGH', reason: 'the partition\'s rows disappear from the parent table; blocks the whole partitioned table', saferAlternative: 'DETACH PARTITION … CONCURRENTLY (PostgreSQL 14+)' },
  DETACH_PARTITION_CONCURRENTLY: { lock: 'SHARE UPDATE EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'the partition\'s rows disappear from the parent table (without blocking it)', nonTransactional: true },

  // ── cluster-wide ────────────────────────────────────────────────────────
  CREATE_DATABASE: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'maintenance', risk: 'MEDIUM', reason: 'cluster-wide: outside what a blue/green side carries', nonTransactional: true },
  DROP_DATABASE: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'maintenance', risk: 'HIGH', warn: 'destructive', reason: 'cluster-wide and destructive', nonTransactional: true },
  ALTER_DATABASE: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'maintenance', risk: 'MEDIUM', reason: 'cluster-wide: outside what a blue/green side carries' },
  ALTER_SYSTEM: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'maintenance', risk: 'HIGH', reason: 'a server setting that needs a restart (or RESET ALL), per cluster: not synced between sides', warn: 'both-sides', nonTransactional: true },
  ALTER_SYSTEM_RELOAD: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'a setting a reload applies (pg_reload_conf()), no restart: per cluster, so it must be run on both sides', warn: 'both-sides', nonTransactional: true },
  ALTER_DATABASE_SET: { lock: 'NONE', rewrite: false, scan: false, backwardCompatible: true, classification: 'safe', risk: 'LOW', reason: 'a per-database default for new sessions: per cluster, so it must be run on both sides', warn: 'both-sides' },

  UNKNOWN: { lock: 'ACCESS EXCLUSIVE', rewrite: false, scan: false, backwardCompatible: false, classification: 'risky', risk: 'MEDIUM', reason: 'unrecognised operation' },
} satisfies Record<string, OperationRule>;

export type OperationType = keyof typeof OPERATIONS;

/** The row's answer for a target version (applies `changesAt.before` below its version). */
export function ruleFor(type: OperationType, pgVersion: number): OperationRule {
  const row: OperationRule = OPERATIONS[type];
  if (row.changesAt && pgVersion < row.changesAt.version) return { ...row, ...row.changesAt.before };
  return row;
}

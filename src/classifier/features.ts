/**
 * Syntax and features by the PostgreSQL major version that introduced them. The parser speaks
 * PostgreSQL 18, so anything newer than the target version parses fine and must be caught here.
 * Data: each row names the parse-tree node it looks at and a test on that node.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { listName, walk } from './ast';

export interface VersionFeature {
  feature: string;
  since: number;
  /** parse-tree node type the test applies to */
  node: string;
  test: (n: any) => boolean;
}

const vacuumOption = (names: string[]) => (n: any) => (n.options ?? []).some((o: any) => names.includes(o?.DefElem?.defname));
const yes = () => true;

export const VERSION_FEATURES: VersionFeature[] = [
  { feature: 'declarative partitioning (PARTITION BY / PARTITION OF)', since: 10, node: 'partspec', test: yes },
  { feature: 'identity columns', since: 10, node: 'Constraint', test: (n) => n.contype === 'CONSTR_IDENTITY' },
  { feature: 'covering indexes (INCLUDE)', since: 11, node: 'IndexStmt', test: (n) => (n.indexIncludingParams ?? []).length > 0 },
  { feature: 'covering constraints (INCLUDE)', since: 11, node: 'Constraint', test: (n) => (n.including ?? []).length > 0 },
  { feature: 'procedures (CREATE PROCEDURE / CALL)', since: 11, node: 'CallStmt', test: yes },
  { feature: 'procedures (CREATE PROCEDURE / CALL)', since: 11, node: 'CreateFunctionStmt', test: (n) => n.is_procedure === true },
  { feature: 'hash partitioning', since: 11, node: 'partspec', test: (n) => n.strategy === 'PARTITION_STRATEGY_HASH' },
  { feature: 'default partitions', since: 11, node: 'partbound', test: (n) => n.is_default === true },
  { feature: 'generated columns', since: 12, node: 'Constraint', test: (n) => n.contype === 'CONSTR_GENERATED' && n.generated_kind !== 'v' },
  { feature: 'REINDEX CONCURRENTLY', since: 12, node: 'ReindexStmt', test: (n) => (n.params ?? []).some((p: any) => p?.DefElem?.defname === 'concurrently') },
  { feature: 'table access methods (CREATE TABLE … USING)', since: 12, node: 'CreateStmt', test: (n) => typeof n.accessMethod === 'string' },
  { feature: 'VACUUM options INDEX_CLEANUP / TRUNCATE / SKIP_LOCKED', since: 12, node: 'VacuumStmt', test: vacuumOption(['index_cleanup', 'truncate', 'skip_locked']) },
  { feature: 'VACUUM (PARALLEL)', since: 13, node: 'VacuumStmt', test: vacuumOption(['parallel']) },
  { feature: 'ALTER COLUMN … DROP EXPRESSION', since: 13, node: 'AlterTableCmd', test: (n) => n.subtype === 'AT_DropExpression' },
  { feature: 'DETACH PARTITION … CONCURRENTLY', since: 14, node: 'PartitionCmd', test: (n) => n.concurrent === true },
  { feature: 'SQL-standard function bodies (BEGIN ATOMIC / RETURN)', since: 14, node: 'CreateFunctionStmt', test: (n) => n.sql_body !== undefined },
  { feature: 'CREATE OR REPLACE TRIGGER', since: 14, node: 'CreateTrigStmt', test: (n) => n.replace === true },
  { feature: 'column compression (COMPRESSION)', since: 14, node: 'ColumnDef', test: (n) => typeof n.compression === 'string' },
  { feature: 'ALTER COLUMN … SET COMPRESSION', since: 14, node: 'AlterTableCmd', test: (n) => n.subtype === 'AT_SetCompression' },
  { feature: 'VACUUM (PROCESS_TOAST)', since: 14, node: 'VacuumStmt', test: vacuumOption(['process_toast']) },
  { feature: 'REINDEX (TABLESPACE)', since: 14, node: 'ReindexStmt', test: (n) => (n.params ?? []).some((p: any) => p?.DefElem?.defname === 'tablespace') },
  { feature: 'MERGE', since: 15, node: 'MergeStmt', test: yes },
  { feature: 'UNIQUE NULLS NOT DISTINCT', since: 15, node: 'IndexStmt', test: (n) => n.nulls_not_distinct === true },
  { feature: 'UNIQUE NULLS NOT DISTINCT', since: 15, node: 'Constraint', test: (n) => n.nulls_not_distinct === true },
  { feature: 'ON DELETE SET NULL / SET DEFAULT with a column list', since: 15, node: 'Constraint', test: (n) => (n.fk_del_set_cols ?? []).length > 0 },
  { feature: 'ALTER TABLE … SET ACCESS METHOD', since: 15, node: 'AlterTableCmd', test: (n) => n.subtype === 'AT_SetAccessMethod' },
  { feature: 'security_invoker views', since: 15, node: 'ViewStmt', test: (n) => (n.options ?? []).some((o: any) => o?.DefElem?.defname === 'security_invoker') },
  { feature: 'SQL/JSON constructors and IS JSON', since: 16, node: 'JsonIsPredicate', test: yes },
  { feature: 'SQL/JSON constructors and IS JSON', since: 16, node: 'JsonObjectConstructor', test: yes },
  { feature: 'SQL/JSON constructors and IS JSON', since: 16, node: 'JsonArrayConstructor', test: yes },
  { feature: 'SQL/JSON constructors and IS JSON', since: 16, node: 'JsonArrayQueryConstructor', test: yes },
  { feature: 'SQL/JSON constructors and IS JSON', since: 16, node: 'JsonObjectAgg', test: yes },
  { feature: 'SQL/JSON constructors and IS JSON', since: 16, node: 'JsonArrayAgg', test: yes },
  { feature: 'VACUUM options PROCESS_MAIN / BUFFER_USAGE_LIMIT / SKIP_DATABASE_STATS / ONLY_DATABASE_STATS', since: 16, node: 'VacuumStmt', test: vacuumOption(['process_main', 'buffer_usage_limit', 'skip_database_stats', 'only_database_stats']) },
  { feature: 'SQL/JSON query functions (JSON_EXISTS / JSON_QUERY / JSON_VALUE)', since: 17, node: 'JsonFuncExpr', test: yes },
  { feature: 'JSON_TABLE', since: 17, node: 'JsonTable', test: yes },
  { feature: 'JSON() / JSON_SCALAR() / JSON_SERIALIZE()', since: 17, node: 'JsonParseExpr', test: yes },
  { feature: 'JSON() / JSON_SCALAR() / JSON_SERIALIZE()', since: 17, node: 'JsonScalarExpr', test: yes },
  { feature: 'JSON() / JSON_SCALAR() / JSON_SERIALIZE()', since: 17, node: 'JsonSerializeExpr', test: yes },
  { feature: 'MERGE … RETURNING', since: 17, node: 'MergeStmt', test: (n) => n.returningClause !== undefined || (n.returningList ?? []).length > 0 },
  { feature: 'MERGE … WHEN NOT MATCHED BY SOURCE', since: 17, node: 'MergeWhenClause', test: (n) => n.matchKind === 'MERGE_WHEN_NOT_MATCHED_BY_SOURCE' },
  { feature: 'ALTER COLUMN … SET EXPRESSION', since: 17, node: 'AlterTableCmd', test: (n) => n.subtype === 'AT_SetExpression' },
  { feature: 'virtual generated columns (GENERATED ALWAYS AS … without STORED)', since: 18, node: 'Constraint', test: (n) => n.contype === 'CONSTR_GENERATED' && n.generated_kind === 'v' },
  { feature: 'NOT NULL … NOT VALID', since: 18, node: 'Constraint', test: (n) => n.contype === 'CONSTR_NOTNULL' && n.skip_validation === true },
  { feature: 'named NOT NULL table constraints', since: 18, node: 'AlterTableCmd', test: (n) => n.subtype === 'AT_AddConstraint' && n.def?.Constraint?.contype === 'CONSTR_NOTNULL' },
  { feature: 'NOT ENFORCED constraints', since: 18, node: 'Constraint', test: (n) => (n.contype === 'CONSTR_CHECK' || n.contype === 'CONSTR_FOREIGN') && n.is_enforced !== true },
  { feature: 'temporal constraints (WITHOUT OVERLAPS / PERIOD)', since: 18, node: 'Constraint', test: (n) => n.without_overlaps === true || n.fk_with_period === true || n.pk_with_period === true },
  { feature: 'RETURNING OLD / NEW', since: 18, node: 'returningClause', test: (n) => (n.options ?? []).length > 0 },
];

/** Built-in functions by the version that added them; `extension` provides it on older versions. */
export const VERSION_FUNCTIONS: Record<string, { since: number; extension?: string }> = {
  gen_random_uuid: { since: 13, extension: 'pgcrypto' },
  string_to_table: { since: 14 }, date_bin: { since: 14 }, trim_array: { since: 14 }, unistr: { since: 14 }, bit_count: { since: 14 }, range_agg: { since: 14 },
  any_value: { since: 16 }, random_normal: { since: 16 }, pg_input_is_valid: { since: 16 }, pg_input_error_info: { since: 16 },
  uuidv4: { since: 18 }, uuidv7: { since: 18 }, casefold: { since: 18 }, array_sort: { since: 18 }, array_reverse: { since: 18 },
};

const byNode = new Map<string, VersionFeature[]>();
for (const f of VERSION_FEATURES) byNode.set(f.node, [...(byNode.get(f.node) ?? []), f]);

export interface FeatureUse { feature: string; since: number; location?: number; extension?: string }

/** Features in a statement's tree that are newer than the target version. */
export function newerFeatures(stmtKind: string, stmt: any, pgVersion: number): FeatureUse[] {
  const found = new Map<string, FeatureUse>();
  const check = (key: string, v: any) => {
    for (const f of byNode.get(key) ?? []) {
      if (f.since > pgVersion && !found.has(f.feature) && f.test(v)) found.set(f.feature, { feature: f.feature, since: f.since, location: v.location });
    }
    if (key === 'FuncCall') {
      const name = listName(v.funcname).pop()?.toLowerCase() ?? '';
      const fn = VERSION_FUNCTIONS[name];
      if (fn && fn.since > pgVersion && !found.has(name)) found.set(name, { feature: `${name}()`, since: fn.since, location: v.location, extension: fn.extension });
    }
  };
  check(stmtKind, stmt);
  walk(stmt, check);
  return [...found.values()];
}

/**
 * Statement → operations. Decides only which row of the operation table each part of a
 * statement is, and what it acts on; the answers (locks, class, risk) come from the table,
 * and file context (new tables, known column types, transactions) is applied by analyze.ts.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { calledFunctions, expressionText, listName, Node, relFromList, RelName, relName, TypeInfo, typeInfo, typeText } from './ast';
import type { OperationType } from './operations';

/** What the statement does to the schema, as the sync engine's mapping needs it. */
export type SchemaEffect =
  | { kind: 'createTable'; table: RelName; columns: Array<{ name: string; type: TypeInfo; notNull: boolean }>; partitioned?: boolean; complete?: boolean; partitionKey?: string[]; defaultPartitionOf?: RelName; partitionOf?: RelName; uniqueKeys?: string[][] }
  | { kind: 'columnDefault'; table: RelName; column: string; has: boolean }
  | { kind: 'attach'; parent: RelName }
  | { kind: 'dropTable'; table: RelName }
  | { kind: 'renameTable'; table: RelName; to: RelName }
  | { kind: 'addColumn'; table: RelName; column: string; type: TypeInfo; default?: string; notNull: boolean; generated: boolean }
  | { kind: 'dropColumn'; table: RelName; column: string }
  | { kind: 'renameColumn'; table: RelName; column: string; to: string }
  | { kind: 'typeChange'; table: RelName; column: string; type: TypeInfo; typeText: string; using?: string }
  | { kind: 'notNullCheck'; table: RelName; column: string; constraint?: string; valid: boolean }
  | { kind: 'validate'; table: RelName; constraint: string }
  | { kind: 'createIndex'; table: RelName; index?: string }
  | { kind: 'createObject'; name: string }
  | { kind: 'extension'; name: string }
  | { kind: 'domain'; name: string; constrained: boolean; notNull: boolean }
  | { kind: 'constraint'; table: RelName; name: string; contype: string }
  | { kind: 'nullability'; table: RelName; column: string; notNull: boolean }
  | { kind: 'enumValue'; type: string; value: string };

export interface Candidate {
  type: OperationType;
  /** the relation (or other object) the operation acts on */
  table?: RelName;
  column?: string;
  /** the object is optional (IF EXISTS): a missing one is not an error */
  missingOk?: boolean;
  /** the statement must find the table (false for creations) */
  needsTable?: boolean;
  /** a column that must exist / must not exist yet on a live database */
  needsColumn?: string;
  addsColumn?: string;
  /** extra words for the reason, e.g. the function called */
  detail?: string;
  effects: SchemaEffect[];
  /** byte offset (in the statement's text coordinates) of the part this operation is about */
  location?: number;
  /** CREATE INDEX on an index-less name: lets later DROP INDEX of it count as new */
  objectName?: string;
  /** the constraint a DROP / RENAME CONSTRAINT names */
  constraint?: string;
  /** a trigger (or rule) dropped, created, disabled or enabled, by name on its table (`*`: all of them) */
  trigger?: string;
  /** a unique index or key constraint: its columns (undefined entries: expressions) */
  keyColumns?: Array<string | undefined>;
  /** ALTER TABLE ONLY: not the partitions */
  only?: boolean;
  /** CREATE OR REPLACE VIEW: options it sets, whether its query can be written through, its column names (undefined: not all known) */
  view?: { options: boolean; readOnly: boolean; columns?: string[] };
  /** ATTACH PARTITION: the table attached */
  partition?: RelName;
  /** UPDATE / DELETE: the WHERE clause (a keyed batch is bounded, see bounded.ts) */
  where?: Node;
}

/** How a piece of SQL is positioned: its text and where that text starts in node locations. */
export interface StmtText { text: string; base: number }

/**
 * Settings PostgreSQL reads only at server start (pg_settings.context = 'postmaster'), PostgreSQL
 * 10–18: ALTER SYSTEM of any other takes effect on a reload.
 */
const RESTART_SETTINGS = new Set([
  'archive_mode', 'autovacuum_freeze_max_age', 'autovacuum_max_workers', 'autovacuum_multixact_freeze_max_age', 'autovacuum_worker_slots',
  'bonjour', 'bonjour_name', 'cluster_name', 'commit_timestamp_buffers', 'config_file', 'data_directory', 'data_sync_retry', 'debug_io_direct',
  'dynamic_shared_memory_type', 'event_source', 'external_pid_file', 'hba_file', 'hot_standby', 'huge_page_size', 'huge_pages', 'ident_file',
  'ignore_invalid_pages', 'io_max_combine_limit', 'io_max_concurrency', 'io_method', 'io_workers', 'jit_provider', 'listen_addresses',
  'logging_collector', 'max_active_replication_origins', 'max_connections', 'max_files_per_process', 'max_locks_per_transaction',
  'max_logical_replication_workers', 'max_notify_queue_pages', 'max_pred_locks_per_transaction', 'max_prepared_transactions',
  'max_replication_slots', 'max_wal_senders', 'max_worker_processes', 'min_dynamic_shared_memory', 'multixact_member_buffers',
  'multixact_offset_buffers', 'notify_buffers', 'old_snapshot_threshold', 'port', 'recovery_target', 'recovery_target_action',
  'recovery_target_inclusive', 'recovery_target_lsn', 'recovery_target_name', 'recovery_target_time', 'recovery_target_timeline',
  'recovery_target_xid', 'reserved_connections', 'serializable_buffers', 'shared_buffers', 'shared_memory_type', 'shared_preload_libraries',
  'subtransaction_buffers', 'superuser_reserved_connections', 'track_activity_query_size', 'track_commit_timestamp', 'transaction_buffers',
  'unix_socket_directories', 'unix_socket_group', 'unix_socket_permissions', 'wal_buffers', 'wal_decode_buffer_size', 'wal_level', 'wal_log_hints',
]);

/** Functions that are not volatile: a column default calling only these needs no rewrite. */
const NON_VOLATILE = new Set(['now', 'transaction_timestamp', 'statement_timestamp', 'current_date', 'lower', 'upper', 'to_jsonb', 'to_json',
  'jsonb_build_object', 'json_build_object', 'jsonb_build_array', 'json_build_array', 'array_fill', 'make_interval', 'to_timestamp', 'timezone',
  'concat', 'length', 'btrim', 'trim', 'md5', 'date_trunc', 'make_date', 'make_timestamp', 'make_timestamptz', 'to_char', 'to_date', 'abs', 'round',
  'localtimestamp', 'current_timestamp', 'jsonb', 'json']);

export function isVolatileDefault(expr: Node): boolean {
  return calledFunctions(expr).some((f) => !NON_VOLATILE.has(f));
}

const isNullConst = (expr: Node): boolean => expr?.A_Const?.isnull === true;

/** `col IS NOT NULL` as a CHECK expression → the column */
export function notNullCheckColumn(expr: Node): string | undefined {
  const t = expr?.NullTest;
  if (!t || t.nulltesttype !== 'IS_NOT_NULL') return undefined;
  const f = listName(t.arg?.ColumnRef?.fields);
  return f.length === 1 ? f[0] : undefined;
}

function addColumn(table: RelName, def: Node, st: StmtText, missingOk: boolean): Candidate[] {
  const name: string = def.colname;
  const type = typeInfo(def.typeName);
  const cons: Node[] = (def.constraints ?? []).map((c: Node) => c.Constraint);
  const dflt = cons.find((c) => c.contype === 'CONSTR_DEFAULT');
  const gen = cons.find((c) => c.contype === 'CONSTR_GENERATED');
  const identity = cons.some((c) => c.contype === 'CONSTR_IDENTITY') || ['serial', 'bigserial', 'smallserial', 'serial2'].includes(type.name);
  const notNull = cons.some((c) => c.contype === 'CONSTR_NOTNULL' || c.contype === 'CONSTR_PRIMARY');
  const hasDefault = dflt && !isNullConst(dflt.raw_expr);
  let op: OperationType = 'ADD_COLUMN';
  if (identity) op = 'ADD_COLUMN_IDENTITY';
  else if (gen) op = gen.generated_kind === 'v' ? 'ADD_COLUMN_GENERATED_VIRTUAL' : 'ADD_COLUMN_GENERATED_STORED';
  else if (hasDefault) op = isVolatileDefault(dflt.raw_expr) ? 'ADD_COLUMN_VOLATILE_DEFAULT' : 'ADD_COLUMN_DEFAULT';
  else if (notNull) op = 'ADD_COLUMN_NOT_NULL';
  const defaultText = hasDefault ? expressionText(st.text, firstLocation(dflt.raw_expr) - st.base, 'DEFAULT') : undefined;
  const out: Candidate[] = [{
    type: op, table, column: name, needsTable: true, addsColumn: missingOk ? undefined : name, location: def.location,
    effects: [{ kind: 'addColumn', table, column: name, type, default: defaultText, notNull, generated: identity || !!gen }],
  }];
  // inline constraints are separate operations with their own costs
  for (const c of cons) {
    const inline = constraintOp(table, c, name);
    if (inline && inline.type !== 'ADD_NOT_NULL_CONSTRAINT') out.push(inline);
  }
  return out;
}

const CONTYPES: Record<string, string> = { CONSTR_PRIMARY: 'p', CONSTR_UNIQUE: 'u', CONSTR_EXCLUSION: 'x', CONSTR_FOREIGN: 'f', CONSTR_CHECK: 'c', CONSTR_NOTNULL: 'n' };

function constraintOp(table: RelName, c: Node, column?: string): Candidate | undefined {
  const base = { table, column, needsTable: true, location: c.location, effects: [] as SchemaEffect[] };
  const keyColumns = c.keys ? listName(c.keys) : column ? [column] : undefined;
  if (c.conname && CONTYPES[c.contype]) base.effects.push({ kind: 'constraint', table, name: c.conname, contype: CONTYPES[c.contype] });
  switch (c.contype) {
    case 'CONSTR_CHECK': {
      const col = notNullCheckColumn(c.raw_expr);
      if (col) base.effects.push({ kind: 'notNullCheck', table, column: col, constraint: c.conname, valid: !c.skip_validation });
      return { ...base, type: c.skip_validation ? 'ADD_CHECK_NOT_VALID' : 'ADD_CHECK' };
    }
    case 'CONSTR_FOREIGN': return { ...base, type: c.skip_validation ? 'ADD_FOREIGN_KEY_NOT_VALID' : 'ADD_FOREIGN_KEY', detail: c.pktable ? `references ${relName(c.pktable)?.display}` : undefined };
    case 'CONSTR_UNIQUE': return { ...base, type: c.indexname ? 'ADD_UNIQUE_USING_INDEX' : 'ADD_UNIQUE', keyColumns };
    case 'CONSTR_PRIMARY': return { ...base, type: c.indexname ? 'ADD_PRIMARY_KEY_USING_INDEX' : 'ADD_PRIMARY_KEY', keyColumns };
    case 'CONSTR_EXCLUSION': return { ...base, type: 'ADD_EXCLUDE' };
    case 'CONSTR_NOTNULL': return { ...base, type: c.skip_validation ? 'ADD_NOT_NULL_CONSTRAINT_NOT_VALID' : 'ADD_NOT_NULL_CONSTRAINT', column: column ?? listName(c.keys)[0] };
    default: return undefined;
  }
}

/** column options PostgreSQL changes under SHARE UPDATE EXCLUSIVE, and those it changes under ACCESS EXCLUSIVE (measured in pg_locks) */
const COLUMN_OPTIONS = new Set(['AT_SetStatistics', 'AT_SetOptions', 'AT_ResetOptions']);
const COLUMN_CATALOG_OPTIONS = new Set(['AT_SetStorage', 'AT_SetCompression']);

/**
 * Sequence options that can make nextval() hand out a value already used, or fail: RESTART,
 * CYCLE, MINVALUE, MAXVALUE, AS, a negative INCREMENT (ALTER SEQUENCE, or an identity's SET …).
 */
function sequenceValues(options: Node[]): boolean {
  return options.some((o) => {
    const d = o?.DefElem;
    if (!d) return false;
    if (['restart', 'maxvalue', 'minvalue', 'as'].includes(d.defname)) return true;
    if (d.defname === 'cycle') return d.arg?.Boolean?.boolval !== false;
    return d.defname === 'increment' && (d.arg?.Integer?.ival ?? 0) < 0;
  });
}

/** ADD GENERATED ALWAYS AS IDENTITY, or SET GENERATED ALWAYS: the application may no longer write the column */
function identityAlways(cmd: Node): boolean {
  if (cmd.subtype === 'AT_AddIdentity') return cmd.def?.Constraint?.generated_when === 'a';
  const items: Node[] = cmd.def?.List?.items ?? [];
  return items.some((i) => i.DefElem?.defname === 'generated' && i.DefElem.arg?.Integer?.ival === 'a'.charCodeAt(0));
}
const TABLE_OPTIONS = new Set(['AT_SetRelOptions', 'AT_ResetRelOptions', 'AT_ReplaceRelOptions', 'AT_ClusterOn', 'AT_DropCluster']);
/** trigger and rule switches that keep them firing for the application's sessions, and those that stop them (REPLICA: only in replica sessions) */
const TRIGGER_ON = new Set(['AT_EnableTrig', 'AT_EnableAlwaysTrig', 'AT_EnableTrigAll', 'AT_EnableTrigUser']);
const TRIGGER_OFF = new Set(['AT_DisableTrig', 'AT_DisableTrigAll', 'AT_DisableTrigUser', 'AT_EnableReplicaTrig']);
/** rule switches take ACCESS EXCLUSIVE (measured), trigger switches SHARE ROW EXCLUSIVE */
const RULE_ON = new Set(['AT_EnableRule', 'AT_EnableAlwaysRule']);
const RULE_OFF = new Set(['AT_DisableRule', 'AT_EnableReplicaRule']);
/** the trigger (or rule) a switch names; `*all` for ALL (the internal triggers of foreign keys too), `*user` for USER */
const triggerName = (cmd: Node): string => cmd.name ?? (/All$/.test(cmd.subtype) ? '*all' : '*user');
const RLS = new Set(['AT_EnableRowSecurity', 'AT_DisableRowSecurity', 'AT_ForceRowSecurity', 'AT_NoForceRowSecurity']);

function alterTableCmd(table: RelName, objtype: string, cmd: Node, st: StmtText, missingOk: boolean): Candidate[] {
  const base = { table, needsTable: true, missingOk, effects: [] as SchemaEffect[] };
  const col: string | undefined = cmd.name;
  if (objtype === 'OBJECT_TYPE') return [{ ...base, type: 'ALTER_TYPE', needsTable: false }];
  // a view's options (security_invoker, security_barrier, check_option) change what its queries may see and write
  if (objtype === 'OBJECT_VIEW' && ['AT_SetRelOptions', 'AT_ResetRelOptions', 'AT_ReplaceRelOptions'].includes(cmd.subtype)) return [{ ...base, type: 'VIEW_OPTIONS' }];
  switch (cmd.subtype) {
    case 'AT_AddColumn': case 'AT_AddColumnToView':
      return addColumn(table, cmd.def.ColumnDef, st, cmd.missing_ok === true).map((c) => ({ ...c, missingOk }));
    case 'AT_DropColumn':
      return [{ ...base, type: 'DROP_COLUMN', column: col, needsColumn: cmd.missing_ok ? undefined : col, effects: [{ kind: 'dropColumn', table, column: col! }] }];
    case 'AT_AlterColumnType': {
      const def = cmd.def.ColumnDef;
      const type = typeInfo(def.typeName);
      const typeSrc = expressionText(st.text, def.typeName.location - st.base, 'TYPE') ?? typeText(type);
      const usingNode = def.raw_default;
      const using = usingNode ? expressionText(st.text, firstLocation(usingNode) - st.base, 'USING', false) : undefined;
      return [{ ...base, type: 'ALTER_COLUMN_TYPE', column: col, needsColumn: col, location: def.location, effects: [{ kind: 'typeChange', table, column: col!, type, typeText: typeSrc, using }] }];
    }
    case 'AT_ColumnDefault': return [{ ...base, type: cmd.def ? 'SET_DEFAULT' : 'DROP_DEFAULT', column: col, needsColumn: col, effects: [{ kind: 'columnDefault', table, column: col!, has: !!cmd.def }] }];
    case 'AT_DropIdentity': return [{ ...base, type: 'DROP_IDENTITY', column: col, needsColumn: cmd.missing_ok ? undefined : col }];
    case 'AT_AddIdentity': case 'AT_SetIdentity': {
      const values = cmd.subtype === 'AT_SetIdentity' && sequenceValues(cmd.def?.List?.items ?? []);
      const type: OperationType = identityAlways(cmd) ? 'IDENTITY_ALWAYS' : values ? 'IDENTITY_VALUES' : 'COLUMN_CATALOG_OPTION';
      return [{ ...base, type, column: col, needsColumn: col, detail: cmd.subtype === 'AT_AddIdentity' ? 'add identity' : undefined }];
    }
    case 'AT_SetNotNull': return [{ ...base, type: 'SET_NOT_NULL', column: col, needsColumn: col, effects: [{ kind: 'nullability', table, column: col!, notNull: true }] }];
    case 'AT_DropNotNull': return [{ ...base, type: 'DROP_NOT_NULL', column: col, needsColumn: col, effects: [{ kind: 'nullability', table, column: col!, notNull: false }] }];
    case 'AT_SetExpression': return [{ ...base, type: 'SET_EXPRESSION', column: col, needsColumn: col }];
    case 'AT_DropExpression': return [{ ...base, type: 'DROP_EXPRESSION', column: col, needsColumn: cmd.missing_ok ? undefined : col }];
    case 'AT_ReplicaIdentity': return [{ ...base, type: cmd.def?.ReplicaIdentityStmt?.identity_type === 'n' ? 'REPLICA_IDENTITY_NOTHING' : 'REPLICA_IDENTITY' }];
    case 'AT_AddConstraint': case 'AT_AddIndexConstraint': {
      const c = constraintOp(table, cmd.def.Constraint);
      return c ? [{ ...c, missingOk }] : [{ ...base, type: 'UNKNOWN', detail: `ADD CONSTRAINT ${cmd.def.Constraint?.contype}` }];
    }
    case 'AT_ValidateConstraint': return [{ ...base, type: 'VALIDATE_CONSTRAINT', effects: [{ kind: 'validate', table, constraint: col! }] }];
    case 'AT_DropConstraint': return [{ ...base, type: 'DROP_CONSTRAINT', constraint: col }];
    case 'AT_AlterConstraint': return [{ ...base, type: 'ALTER_CONSTRAINT' }];
    case 'AT_SetTableSpace': return [{ ...base, type: 'SET_TABLESPACE' }];
    case 'AT_SetLogged': return [{ ...base, type: 'SET_LOGGED' }];
    case 'AT_SetUnLogged': return [{ ...base, type: 'SET_UNLOGGED' }];
    case 'AT_ChangeOwner': return [{ ...base, type: 'OWNER' }];
    case 'AT_AttachPartition': {
      if (objtype === 'OBJECT_INDEX') return [{ ...base, type: 'ALTER_OBJECT' }];
      const partition = relName(cmd.def.PartitionCmd?.name);
      return [{ ...base, type: 'ATTACH_PARTITION', partition, detail: `partition ${partition?.display}`, effects: [{ kind: 'attach', parent: table }] }];
    }
    case 'AT_DetachPartition':
      return [{ ...base, type: cmd.def.PartitionCmd?.concurrent ? 'DETACH_PARTITION_CONCURRENTLY' : 'DETACH_PARTITION', detail: `partition ${relName(cmd.def.PartitionCmd?.name)?.display}` }];
    case 'AT_DetachPartitionFinalize': return [{ ...base, type: 'DETACH_PARTITION_CONCURRENTLY' }];
    case 'AT_AddInherit': return [{ ...base, type: 'ADD_INHERIT', detail: `parent ${relName(cmd.def)?.display}` }];
    case 'AT_DropInherit': return [{ ...base, type: 'DROP_INHERIT', detail: `parent ${relName(cmd.def)?.display}` }];
    default:
      if (COLUMN_OPTIONS.has(cmd.subtype)) return [{ ...base, type: 'COLUMN_OPTIONS', column: col }];
      if (COLUMN_CATALOG_OPTIONS.has(cmd.subtype)) return [{ ...base, type: 'COLUMN_CATALOG_OPTION', column: col }];
      if (TABLE_OPTIONS.has(cmd.subtype)) return [{ ...base, type: 'TABLE_OPTIONS' }];
      if (TRIGGER_ON.has(cmd.subtype)) return [{ ...base, type: 'ENABLE_DISABLE_TRIGGER', trigger: triggerName(cmd) }];
      if (TRIGGER_OFF.has(cmd.subtype)) return [{ ...base, type: 'DISABLE_TRIGGER', trigger: triggerName(cmd) }];
      if (RULE_ON.has(cmd.subtype)) return [{ ...base, type: 'ENABLE_RULE', trigger: `rule:${cmd.name}` }];
      if (RULE_OFF.has(cmd.subtype)) return [{ ...base, type: 'DISABLE_RULE', trigger: `rule:${cmd.name}` }];
      if (RLS.has(cmd.subtype)) return [{ ...base, type: 'ENABLE_RLS' }];
      return [{ ...base, type: 'UNKNOWN', detail: `ALTER TABLE ${String(cmd.subtype).replace(/^AT_/, '')}` }];
  }
}

function firstLocation(node: Node): number {
  let best = Number.MAX_SAFE_INTEGER;
  const visit = (n: Node) => {
    if (Array.isArray(n)) { n.forEach(visit); return; }
    if (!n || typeof n !== 'object') return;
    if (typeof n.location === 'number' && n.location >= 0) best = Math.min(best, n.location);
    Object.values(n).forEach(visit);
  };
  visit(node);
  return best === Number.MAX_SAFE_INTEGER ? -1 : best;
}

const DROP_TYPES: Record<string, OperationType> = {
  OBJECT_TABLE: 'DROP_TABLE', OBJECT_INDEX: 'DROP_INDEX', OBJECT_VIEW: 'DROP_VIEW', OBJECT_MATVIEW: 'DROP_MATERIALIZED_VIEW',
  OBJECT_FUNCTION: 'DROP_FUNCTION', OBJECT_PROCEDURE: 'DROP_FUNCTION', OBJECT_ROUTINE: 'DROP_FUNCTION', OBJECT_TRIGGER: 'DROP_TRIGGER',
  OBJECT_TYPE: 'DROP_TYPE', OBJECT_DOMAIN: 'DROP_DOMAIN', OBJECT_EXTENSION: 'DROP_EXTENSION', OBJECT_SEQUENCE: 'DROP_SEQUENCE',
  OBJECT_SCHEMA: 'DROP_SCHEMA', OBJECT_FOREIGN_TABLE: 'DROP_TABLE', OBJECT_POLICY: 'DROP_POLICY', OBJECT_RULE: 'DROP_RULE',
};

function dropObjects(n: Node): Candidate[] {
  const type: OperationType = n.removeType === 'OBJECT_INDEX' && n.concurrent ? 'DROP_INDEX_CONCURRENTLY' : DROP_TYPES[n.removeType] ?? 'DROP_OBJECT';
  return (n.objects ?? []).map((o: Node): Candidate => {
    let parts: string[];
    if (o.List) parts = listName(o.List.items);
    else if (o.TypeName) parts = listName(o.TypeName.names);
    else if (o.ObjectWithArgs) parts = listName(o.ObjectWithArgs.objname);
    else if (o.String) parts = [o.String.sval];
    else parts = [];
    // DROP TRIGGER/POLICY/RULE name ON table: the list is [schema.]table.name
    const onTable = ['OBJECT_TRIGGER', 'OBJECT_POLICY', 'OBJECT_RULE'].includes(n.removeType);
    const name = relFromList(onTable ? parts.slice(0, -1) : parts);
    const isRel = ['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE'].includes(n.removeType);
    return {
      type, table: name, missingOk: n.missing_ok === true, needsTable: isRel || onTable,
      ...(n.removeType === 'OBJECT_TRIGGER' ? { trigger: parts[parts.length - 1] } : {}),
      detail: onTable ? `${parts[parts.length - 1]} on ${name?.display}` : type === 'DROP_OBJECT' ? String(n.removeType).replace(/^OBJECT_/, '').toLowerCase() : undefined,
      effects: n.removeType === 'OBJECT_TABLE' && name ? [{ kind: 'dropTable', table: name }] : [],
    };
  });
}

const RENAME_TYPES: Record<string, OperationType> = {
  OBJECT_TABLE: 'RENAME_TABLE', OBJECT_FOREIGN_TABLE: 'RENAME_TABLE', OBJECT_COLUMN: 'RENAME_COLUMN', OBJECT_INDEX: 'RENAME_INDEX',
  OBJECT_TABCONSTRAINT: 'RENAME_CONSTRAINT', OBJECT_TRIGGER: 'RENAME_CONSTRAINT', OBJECT_DOMCONSTRAINT: 'RENAME_CONSTRAINT',
};

function rename(n: Node): Candidate[] {
  const type = RENAME_TYPES[n.renameType] ?? 'RENAME_OBJECT';
  const rel = relName(n.relation) ?? relFromList(n.object?.List ? listName(n.object.List.items) : n.object?.String ? [n.object.String.sval] : listName(n.object?.ObjectWithArgs?.objname ?? n.object?.TypeName?.names));
  const base = { table: rel, missingOk: n.missing_ok === true, needsTable: !!n.relation, effects: [] as SchemaEffect[] };
  if (type === 'RENAME_TABLE' && rel) {
    const to: RelName = { ...rel, name: n.newname, key: `${rel.schema}.${n.newname}`, display: rel.display.replace(/[^.]+$/, n.newname) };
    return [{ ...base, type, detail: `to ${n.newname}`, effects: [{ kind: 'renameTable', table: rel, to }] }];
  }
  if (type === 'RENAME_COLUMN' && rel) {
    return [{ ...base, type, column: n.subname, needsColumn: n.subname, addsColumn: n.newname, detail: `to ${n.newname}`, effects: [{ kind: 'renameColumn', table: rel, column: n.subname, to: n.newname }] }];
  }
  if (n.renameType === 'OBJECT_TABCONSTRAINT') return [{ ...base, type, constraint: n.subname, detail: `${n.subname} to ${n.newname}` }];
  return [{ ...base, type, needsTable: type !== 'RENAME_OBJECT' && !!n.relation }];
}

/** Functions a plain SELECT in a migration may call without its effects needing analysis. */
const KNOWN_FUNCTIONS = new Set(['count', 'sum', 'min', 'max', 'avg', 'now', 'setval', 'nextval', 'currval', 'set_config', 'current_setting',
  'to_regclass', 'to_regtype', 'to_regproc', 'format', 'concat', 'lower', 'upper', 'length', 'array_agg', 'string_agg', 'jsonb_build_object',
  'json_build_object', 'row_to_json', 'greatest', 'least', 'generate_series', 'date_trunc', 'to_char', 'md5', 'replace', 'substring', 'split_part',
  'btrim', 'trim', 'coalesce', 'exists', 'bool_or', 'bool_and', 'quote_ident', 'quote_literal', 'version', 'current_database', 'current_schema',
  'has_table_privilege', 'obj_description', 'col_description', 'format_type', 'unnest', 'array_length', 'jsonb_agg', 'json_agg', 'random',
  'gen_random_uuid', 'uuid_generate_v4', 'abs', 'round', 'floor', 'ceil', 'extract', 'date_part', 'to_timestamp', 'length', 'position']);
const SIDE_EFFECT_PG_FUNCTIONS = new Set(['pg_terminate_backend', 'pg_cancel_backend', 'pg_reload_conf', 'pg_rotate_logfile', 'pg_sleep',
  'pg_create_logical_replication_slot', 'pg_create_physical_replication_slot', 'pg_drop_replication_slot', 'pg_switch_wal', 'pg_promote',
  'pg_replication_origin_create', 'pg_replication_origin_drop', 'pg_stat_reset', 'pg_file_write']);

export function unknownFunctions(node: Node): string[] {
  return [...new Set(calledFunctions(node).filter((f) => !KNOWN_FUNCTIONS.has(f) && !(f.startsWith('pg_') && !SIDE_EFFECT_PG_FUNCTIONS.has(f))))];
}

function dml(type: OperationType, rel: Node, where?: Node): Candidate[] {
  const table = relName(rel);
  return [{ type, table, needsTable: true, effects: [], ...(where ? { where } : {}) }];
}

const DML_KINDS = ['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt'];

/** aggregate functions that make a view's query not automatically updatable (the common ones; window functions by OVER) */
const AGGREGATES = new Set(['count', 'sum', 'min', 'max', 'avg', 'array_agg', 'string_agg', 'json_agg', 'jsonb_agg', 'bool_and', 'bool_or', 'every', 'json_object_agg', 'jsonb_object_agg']);

/**
 * A view definition as CREATE OR REPLACE VIEW gives it: WITH options or CHECK OPTION, whether its
 * query is one PostgreSQL can write through (one table, no DISTINCT, GROUP BY, HAVING, LIMIT,
 * set operation, aggregate or window function), and its column names in order.
 */
function viewShape(n: Node): { options: boolean; readOnly: boolean; columns?: string[] } {
  const q = n.query?.SelectStmt ?? {};
  const targets: Node[] = (q.targetList ?? []).map((t: Node) => t.ResTarget);
  const calls = targets.map((t) => t?.val?.FuncCall).filter(Boolean);
  const readOnly = !!(q.distinctClause || q.groupClause || q.havingClause || q.limitCount || q.limitOffset || (q.op && q.op !== 'SETOP_NONE') || q.withClause
    || (q.fromClause ?? []).length !== 1 || !q.fromClause?.[0]?.RangeVar
    || calls.some((f: Node) => f.over || AGGREGATES.has(listName(f.funcname).pop() ?? '')));
  const names = targets.map((t) => t?.name ?? (t?.val?.ColumnRef && !t.val.ColumnRef.fields.some((f: Node) => f.A_Star) ? listName(t.val.ColumnRef.fields).pop() : undefined));
  const columns = (n.aliases ?? []).length ? listName(n.aliases) : names.every((x) => x !== undefined) ? (names as string[]) : undefined;
  return { options: (n.options ?? []).length > 0 || (n.withCheckOption ?? 'NO_CHECK_OPTION') !== 'NO_CHECK_OPTION', readOnly, columns };
}

/** The data changes in a statement's WITH clause (`WITH a AS (DELETE … RETURNING …) …`): each is an operation of its own. */
function cteChanges(n: Node, st: StmtText): Candidate[] {
  const out: Candidate[] = [];
  for (const c of n?.withClause?.ctes ?? []) {
    const q: Node = c.CommonTableExpr?.ctequery ?? {};
    const kind = Object.keys(q)[0];
    if (DML_KINDS.includes(kind)) out.push(...extract(kind, q[kind], st));
  }
  return out;
}

/** the WHERE of a change that may be a keyed batch: none when a function of unknown effect runs in it */
const batchWhere = (n: Node, where: Node | undefined): Node | undefined => (where && unknownFunctions(n).length === 0 ? where : undefined);

/** The operations of one statement. DO blocks and transaction control are handled by analyze.ts. */
export function extract(kind: string, n: Node, st: StmtText): Candidate[] {
  switch (kind) {
    case 'CreateStmt': case 'CreateForeignTableStmt': {
      const s = kind === 'CreateStmt' ? n : n.base;
      const table = relName(s.relation)!;
      const columns = (s.tableElts ?? []).filter((e: Node) => e.ColumnDef).map((e: Node) => ({
        name: e.ColumnDef.colname, type: typeInfo(e.ColumnDef.typeName),
        notNull: (e.ColumnDef.constraints ?? []).some((c: Node) => ['CONSTR_NOTNULL', 'CONSTR_PRIMARY'].includes(c.Constraint?.contype)),
      }));
      // every column is written here: no LIKE, INHERITS, PARTITION OF or OF type bringing others
      const complete = !(s.tableElts ?? []).some((e: Node) => e.TableLikeClause) && !s.inhRelations?.length && !s.partbound && !s.ofTypename;
      // the partition key's columns (an expression in it: undefined, nothing to check against)
      const params: Node[] = (s.partspec?.partParams ?? []).map((p: Node) => p.PartitionElem);
      const partitionKey = s.partspec && params.every((p) => p?.name) ? params.map((p) => p.name as string) : undefined;
      const partitionOf = s.partbound && s.inhRelations?.length ? relName(s.inhRelations[0].RangeVar) : undefined;
      const defaultPartitionOf = s.partbound?.is_default ? partitionOf : undefined;
      // primary keys and unique constraints, by their columns (PostgreSQL checks them against a partition key)
      const uniqueKeys: string[][] = [];
      for (const e of s.tableElts ?? []) {
        for (const c of e.ColumnDef?.constraints ?? []) if (['CONSTR_PRIMARY', 'CONSTR_UNIQUE'].includes(c.Constraint?.contype)) uniqueKeys.push([e.ColumnDef.colname]);
        if (['CONSTR_PRIMARY', 'CONSTR_UNIQUE'].includes(e.Constraint?.contype)) uniqueKeys.push(listName(e.Constraint.keys));
      }
      const effects: SchemaEffect[] = [{
        kind: 'createTable', table, columns, partitioned: !!s.partspec, complete, uniqueKeys,
        ...(partitionKey ? { partitionKey } : {}), ...(defaultPartitionOf ? { defaultPartitionOf } : {}), ...(partitionOf ? { partitionOf } : {}),
      }];
      if (s.partbound && s.inhRelations?.length) {
        return [{ type: 'CREATE_PARTITION', table: relName(s.inhRelations[0].RangeVar), needsTable: true, detail: `partition ${table.display}`, effects }];
      }
      return [{ type: 'CREATE_TABLE', table, addsColumn: undefined, missingOk: s.if_not_exists === true, effects }];
    }
    case 'CreateTableAsStmt': {
      const table = relName(n.into?.rel)!;
      return [{ type: n.objtype === 'OBJECT_MATVIEW' ? 'CREATE_MATERIALIZED_VIEW' : 'CREATE_TABLE_AS', table, missingOk: n.if_not_exists === true, effects: [{ kind: 'createTable', table, columns: [] }] }];
    }
    case 'SelectStmt': {
      if (n.intoClause) {
        const table = relName(n.intoClause.rel)!;
        return [{ type: 'CREATE_TABLE_AS', table, effects: [{ kind: 'createTable', table, columns: [] }] }];
      }
      const fns = unknownFunctions(n);
      // setval() to a constant moves a sequence anywhere, also back into used values (to max(id) is the usual, safe use)
      const setval = (n.targetList ?? []).some((t: Node) => {
        const f = t.ResTarget?.val?.FuncCall;
        return f && listName(f.funcname).pop() === 'setval' && f.args?.[1]?.A_Const !== undefined;
      });
      const changes = [...cteChanges(n, st), ...(setval ? [{ type: 'ALTER_SEQUENCE_VALUES' as OperationType, detail: 'setval() to a constant', effects: [] as SchemaEffect[] }] : [])];
      return [...changes, ...(fns.length ? [{ type: 'SELECT_FUNCTION' as OperationType, detail: fns.join(', '), effects: [] }] : changes.length ? [] : [{ type: 'SELECT' as OperationType, effects: [] }])];
    }
    case 'DropStmt': return dropObjects(n);
    case 'RenameStmt': return rename(n);
    case 'AlterObjectSchemaStmt': {
      const rel = relName(n.relation) ?? relFromList(n.object?.List ? listName(n.object.List.items) : []);
      return [{ type: 'SET_SCHEMA', table: rel, missingOk: n.missing_ok === true, needsTable: !!n.relation, detail: `to ${n.newschema}`, effects: [] }];
    }
    case 'AlterTableStmt': {
      const table = relName(n.relation)!;
      const only = !!n.relation && n.relation.inh !== true; // the parser leaves inh out for ONLY
      return (n.cmds ?? []).flatMap((c: Node) => alterTableCmd(table, n.objtype, c.AlterTableCmd, st, n.missing_ok === true)).map((c: Candidate) => (only ? { ...c, only } : c));
    }
    case 'IndexStmt': {
      const table = relName(n.relation)!;
      const keyColumns = n.unique ? (n.indexParams ?? []).map((p: Node) => p.IndexElem?.name as string | undefined) : undefined;
      return [{ type: n.concurrent ? 'CREATE_INDEX_CONCURRENTLY' : 'CREATE_INDEX', table, needsTable: true, objectName: n.idxname, detail: n.idxname, missingOk: n.if_not_exists === true, keyColumns, effects: [{ kind: 'createIndex', table, index: n.idxname }] }];
    }
    case 'ReindexStmt': {
      const concurrently = (n.params ?? []).some((p: Node) => p?.DefElem?.defname === 'concurrently');
      const whole = ['REINDEX_OBJECT_SCHEMA', 'REINDEX_OBJECT_DATABASE', 'REINDEX_OBJECT_SYSTEM'].includes(n.kind);
      const table = n.kind === 'REINDEX_OBJECT_TABLE' ? relName(n.relation) : undefined;
      return [{ type: concurrently ? 'REINDEX_CONCURRENTLY' : whole ? 'REINDEX_DATABASE' : 'REINDEX', table: table ?? relName(n.relation), needsTable: !!table, effects: [] }];
    }
    case 'ViewStmt': {
      const table = relName(n.view)!;
      // OR REPLACE of a view that exists is refined to REPLACE_VIEW (analyze.ts)
      return [{ type: 'CREATE_VIEW', table, missingOk: n.replace === true, view: viewShape(n), effects: n.replace ? [] : [{ kind: 'createObject', name: table.key }] }];
    }
    case 'RefreshMatViewStmt': return [{ type: n.concurrent ? 'REFRESH_MATERIALIZED_VIEW_CONCURRENTLY' : 'REFRESH_MATERIALIZED_VIEW', table: relName(n.relation), needsTable: true, effects: [] }];
    case 'CreateFunctionStmt': return [{ type: 'CREATE_FUNCTION', detail: listName(n.funcname).join('.'), effects: [] }];
    case 'CreateTrigStmt': return [{ type: 'CREATE_TRIGGER', table: relName(n.relation), needsTable: true, detail: n.trigname, trigger: n.trigname, effects: [] }];
    case 'AlterEnumStmt': {
      const type = listName(n.typeName).join('.');
      if (n.oldVal) return [{ type: 'RENAME_ENUM_VALUE', detail: `${type}: '${n.oldVal}' to '${n.newVal}'`, effects: [] }];
      return [{ type: 'ADD_ENUM_VALUE', detail: `${type}: '${n.newVal}'`, effects: [{ kind: 'enumValue', type, value: n.newVal }] }];
    }
    case 'CreateEnumStmt': case 'CompositeTypeStmt': case 'CreateRangeStmt':
      return [{ type: 'CREATE_TYPE', detail: listName(n.typeName ?? n.typevar ? [n.typevar?.relname] : []).join('.') || undefined, effects: [] }];
    case 'DefineStmt': return [{ type: n.kind === 'OBJECT_TYPE' ? 'CREATE_TYPE' : 'CREATE_OBJECT', effects: [] }];
    case 'CreateDomainStmt': {
      const cons: Node[] = (n.constraints ?? []).map((c: Node) => c.Constraint);
      const notNull = cons.some((c) => c?.contype === 'CONSTR_NOTNULL');
      const constrained = notNull || cons.some((c) => c?.contype === 'CONSTR_CHECK');
      const name = (listName(n.domainname).pop() ?? '').toLowerCase();
      return [{ type: 'CREATE_DOMAIN', detail: name, effects: [{ kind: 'domain', name, constrained, notNull }] }];
    }
    case 'AlterDomainStmt': {
      // subtype: T default, N drop not null, O set not null, C add constraint, X drop constraint, V validate constraint
      const adding = n.subtype === 'C' && !n.def?.Constraint?.skip_validation && n.def?.Constraint?.contype !== 'CONSTR_NOTNULL';
      const setNotNull = n.subtype === 'O';
      const name = (listName(n.typeName).pop() ?? '').toLowerCase();
      const effects: SchemaEffect[] = n.subtype === 'C' || setNotNull ? [{ kind: 'domain', name, constrained: true, notNull: setNotNull }] : [];
      let type: OperationType = 'ALTER_DOMAIN';
      if (adding || setNotNull) type = 'ALTER_DOMAIN_ADD_CONSTRAINT';
      else if (n.subtype === 'V') type = 'ALTER_DOMAIN_VALIDATE';
      else if (n.subtype === 'T' && !n.def) type = 'ALTER_DOMAIN_DROP_DEFAULT';
      return [{ type, detail: listName(n.typeName).join('.'), effects }];
    }
    case 'CreateExtensionStmt': return [{ type: 'CREATE_EXTENSION', detail: n.extname, effects: [{ kind: 'extension', name: n.extname }] }];
    case 'AlterExtensionStmt': case 'AlterExtensionContentsStmt': return [{ type: 'ALTER_EXTENSION', detail: n.extname, effects: [] }];
    case 'CreateSeqStmt': return [{ type: 'CREATE_SEQUENCE', table: relName(n.sequence), effects: [{ kind: 'createObject', name: relName(n.sequence)!.key }] }];
    case 'AlterSeqStmt':
      return [{ type: sequenceValues(n.options ?? []) ? 'ALTER_SEQUENCE_VALUES' : 'ALTER_SEQUENCE', table: relName(n.sequence), missingOk: n.missing_ok === true, effects: [] }];
    case 'CreateSchemaStmt': return [{ type: 'CREATE_SCHEMA', detail: n.schemaname, effects: [] }];
    case 'GrantStmt': case 'GrantRoleStmt': return [{ type: n.is_grant ? 'GRANT' : 'REVOKE', effects: [] }];
    case 'AlterDefaultPrivilegesStmt': return [{ type: n.action?.GrantStmt?.is_grant ? 'GRANT' : 'REVOKE', effects: [] }];
    case 'CommentStmt': return [{ type: 'COMMENT', effects: [] }];
    case 'AlterOwnerStmt': return [{ type: 'OWNER', table: relName(n.relation), effects: [] }];
    case 'VariableSetStmt': {
      const type: OperationType = n.name === 'lock_timeout' ? 'SET_LOCK_TIMEOUT' : n.name === 'statement_timeout' ? 'SET_STATEMENT_TIMEOUT' : 'SET';
      return [{ type, detail: n.name, effects: [] }];
    }
    case 'VacuumStmt': {
      const full = (n.options ?? []).some((o: Node) => o?.DefElem?.defname === 'full' && o.DefElem.arg?.Boolean?.boolval !== false && o.DefElem.arg?.String?.sval !== 'false');
      const type: OperationType = !n.is_vacuumcmd ? 'ANALYZE' : full ? 'VACUUM_FULL' : 'VACUUM';
      const rels = (n.rels ?? []).map((r: Node) => relName(r.VacuumRelation?.relation));
      return rels.length ? rels.map((table: RelName | undefined) => ({ type, table, needsTable: true, effects: [] })) : [{ type, detail: 'whole database', effects: [] }];
    }
    case 'ClusterStmt': return [{ type: 'CLUSTER', table: relName(n.relation), needsTable: !!n.relation, detail: n.relation ? undefined : 'whole database', effects: [] }];
    case 'TruncateStmt': return (n.relations ?? []).map((r: Node) => ({ type: 'TRUNCATE' as OperationType, table: relName(r.RangeVar), needsTable: true, effects: [] }));
    case 'LockStmt': {
      const strong = (n.mode ?? 8) >= 5; // SHARE and above block writes
      return (n.relations ?? []).map((r: Node) => ({ type: (strong ? 'LOCK_TABLE' : 'LOCK_TABLE_WEAK') as OperationType, table: relName(r.RangeVar), needsTable: true, effects: [] }));
    }
    case 'UpdateStmt': return [...cteChanges(n, st), ...dml('UPDATE', n.relation, n.fromClause?.length ? undefined : batchWhere(n, n.whereClause))];
    case 'DeleteStmt': return [...cteChanges(n, st), ...dml('DELETE', n.relation, n.usingClause?.length ? undefined : batchWhere(n, n.whereClause))];
    case 'MergeStmt': return [...cteChanges(n, st), ...dml('MERGE', n.relation)];
    case 'InsertStmt': {
      const sel = n.selectStmt?.SelectStmt;
      const fromRows = sel && !sel.valuesLists && ((sel.fromClause ?? []).length > 0 || sel.op !== 'SETOP_NONE');
      return [...cteChanges(n, st), ...cteChanges(sel, st), ...dml(fromRows ? 'INSERT_SELECT' : 'INSERT', n.relation)];
    }
    case 'CopyStmt': return [{ type: 'COPY', table: relName(n.relation), effects: [] }];
    case 'CallStmt': return [{ type: 'CALL', detail: listName(n.funccall?.funcname).join('.'), effects: [] }];
    case 'CreatedbStmt': return [{ type: 'CREATE_DATABASE', detail: n.dbname, effects: [] }];
    case 'DropdbStmt': return [{ type: 'DROP_DATABASE', detail: n.dbname, effects: [] }];
    case 'AlterDatabaseSetStmt': return [{ type: 'ALTER_DATABASE_SET', detail: n.dbname, effects: [] }];
    case 'AlterDatabaseStmt': case 'AlterDatabaseRefreshCollStmt': return [{ type: 'ALTER_DATABASE', detail: n.dbname, effects: [] }];
    case 'AlterSystemStmt': {
      const name: string | undefined = n.setstmt?.name;
      // RESET ALL may reset a restart-only setting; a named one needs a restart only if PostgreSQL reads it at start
      const restart = !name || n.setstmt?.kind === 'VAR_RESET_ALL' || RESTART_SETTINGS.has(name.toLowerCase());
      return [{ type: restart ? 'ALTER_SYSTEM' : 'ALTER_SYSTEM_RELOAD', detail: name, effects: [] }];
    }
    case 'CreateRoleStmt': case 'AlterRoleStmt': case 'AlterRoleSetStmt': case 'DropRoleStmt': return [{ type: 'ROLE', effects: [] }];
    // both take ACCESS EXCLUSIVE on their table (measured: pg_locks while the statement's transaction is open)
    case 'CreatePolicyStmt': return [{ type: n.permissive === true ? 'CREATE_POLICY' : 'CREATE_POLICY_RESTRICTIVE', table: relName(n.table), needsTable: true, detail: n.policy_name, effects: [] }];
    case 'AlterPolicyStmt': return [{ type: 'ALTER_POLICY', table: relName(n.table), needsTable: true, detail: n.policy_name, effects: [] }];
    case 'RuleStmt': return [{ type: 'CREATE_RULE', table: relName(n.relation), needsTable: true, detail: n.rulename, effects: [] }];
    case 'CreateStatsStmt': case 'CreateCastStmt': case 'CreateOpClassStmt': case 'CreateOpFamilyStmt':
    case 'CreateConversionStmt': case 'CreateTransformStmt': case 'CreateAmStmt': case 'CreateEventTrigStmt': case 'CreatePLangStmt':
    case 'CreateFdwStmt': case 'CreateForeignServerStmt': case 'CreateUserMappingStmt':
      return [{ type: 'CREATE_OBJECT', detail: kind.replace(/Stmt$/, ''), effects: [] }];
    case 'AlterFunctionStmt': case 'AlterTypeStmt': case 'AlterStatsStmt': case 'AlterEventTrigStmt': case 'AlterCollationStmt':
      return [{ type: 'ALTER_OBJECT', detail: kind.replace(/Stmt$/, ''), effects: [] }];
    default:
      return [{ type: 'UNKNOWN', detail: kind.replace(/Stmt$/, ''), effects: [] }];
  }
}

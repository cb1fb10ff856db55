/**
 * One case per row of the operation table: the SQL a migration author writes, and the class,
 * risk and reason they must be told. Every row must have a case (see the last test).
 */
import { classifySqlSync, loadParser, OPERATIONS, ValidationReport } from '../../src/classifier';

type Case = [sql: string, type: string, cls: string, risk: string, reason: RegExp, pgVersion?: number];

const CASES: Case[] = [
  ['CREATE TABLE t (id int)', 'CREATE_TABLE', 'safe', 'LOW', /new table/],
  ['CREATE TABLE t AS SELECT * FROM s', 'CREATE_TABLE_AS', 'safe', 'LOW', /only reads/],
  ['CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1)', 'CREATE_PARTITION', 'safe', 'LOW', /new partition/],
  ['DROP TABLE legacy_sessions', 'DROP_TABLE', 'risky', 'HIGH', /destructive: breaks the running application/],
  ['ALTER TABLE a RENAME TO b', 'RENAME_TABLE', 'risky', 'HIGH', /still uses the old name/],
  ['ALTER TABLE a SET SCHEMA archive', 'SET_SCHEMA', 'risky', 'HIGH', /another schema/],
  ['TRUNCATE t', 'TRUNCATE', 'maintenance', 'HIGH', /deletes every row/],
  ['LOCK TABLE t IN ACCESS EXCLUSIVE MODE', 'LOCK_TABLE', 'maintenance', 'HIGH', /blocks writes on purpose/],
  ['LOCK TABLE t IN ROW EXCLUSIVE MODE', 'LOCK_TABLE_WEAK', 'safe', 'LOW', /does not block/],
  ['ALTER TABLE t SET TABLESPACE fast', 'SET_TABLESPACE', 'risky', 'HIGH', /copies the table/],
  ['ALTER TABLE t SET LOGGED', 'SET_LOGGED', 'risky', 'HIGH', /rewrites the table/],
  ['ALTER TABLE t SET UNLOGGED', 'SET_UNLOGGED', 'risky', 'HIGH', /not replicated/],
  ['ALTER TABLE t SET (fillfactor = 70)', 'TABLE_OPTIONS', 'safe', 'LOW', /storage or planner/],
  ['ALTER TABLE t OWNER TO app', 'OWNER', 'safe', 'LOW', /owner/],
  ['ALTER TABLE t ENABLE ROW LEVEL SECURITY', 'ENABLE_RLS', 'risky', 'MEDIUM', /which rows/],
  ['ALTER TABLE t ADD COLUMN c text', 'ADD_COLUMN', 'safe', 'LOW', /nullable column without default/],
  ['ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0', 'ADD_COLUMN_DEFAULT', 'safe', 'LOW', /no rewrite/],
  ['ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid()', 'ADD_COLUMN_VOLATILE_DEFAULT', 'risky', 'HIGH', /volatile default/],
  ['ALTER TABLE t ADD COLUMN meta json', 'ADD_COLUMN_JSON', 'risky', 'MEDIUM', /no equality operator.*42883/],
  ['ALTER TABLE t ADD COLUMN c int NOT NULL', 'ADD_COLUMN_NOT_NULL', 'risky', 'HIGH', /fails on a table with rows/],
  ['ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a * 2) STORED', 'ADD_COLUMN_GENERATED_STORED', 'risky', 'HIGH', /stored generated/],
  ['ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a * 2) VIRTUAL', 'ADD_COLUMN_GENERATED_VIRTUAL', 'safe', 'LOW', /computed on read/, 18],
  ['ALTER TABLE t ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY', 'ADD_COLUMN_IDENTITY', 'risky', 'HIGH', /identity\/serial/],
  ['ALTER TABLE t ADD COLUMN id bigserial', 'ADD_COLUMN_IDENTITY', 'risky', 'HIGH', /identity\/serial/],
  ['ALTER TABLE t DROP COLUMN c', 'DROP_COLUMN', 'risky', 'HIGH', /destructive/],
  ['ALTER TABLE t RENAME COLUMN a TO b', 'RENAME_COLUMN', 'risky', 'HIGH', /old name/],
  ['ALTER TABLE t ALTER COLUMN n TYPE bigint', 'ALTER_COLUMN_TYPE', 'risky', 'HIGH', /rewrites the table/],
  ['CREATE TABLE t (n varchar(10)); ALTER TABLE t2 ALTER COLUMN n TYPE text', 'ALTER_COLUMN_TYPE', 'risky', 'HIGH', /rewrites/],
  ['ALTER TABLE t ALTER COLUMN c SET DEFAULT 0', 'SET_DEFAULT', 'safe', 'LOW', /new rows only/],
  ['ALTER TABLE t ALTER COLUMN c DROP DEFAULT', 'DROP_DEFAULT_UNCHECKED', 'risky', 'MEDIUM', /NOT NULL is unknown/],
  ['ALTER TABLE t ALTER COLUMN id DROP IDENTITY', 'DROP_IDENTITY', 'risky', 'HIGH', /identity column is NOT NULL.*23502/],
  ['ALTER TABLE t ALTER COLUMN id RESTART WITH 1', 'IDENTITY_VALUES', 'risky', 'MEDIUM', /values already used/],
  ['ALTER TABLE t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY', 'IDENTITY_ALWAYS', 'risky', 'HIGH', /give the column a value fail \(SQLSTATE 428C9\)/],
  ['ALTER TABLE t ALTER COLUMN c SET STORAGE EXTERNAL', 'COLUMN_CATALOG_OPTION', 'safe', 'LOW', /storage, compression or identity/],
  ['ALTER TABLE t ALTER COLUMN c SET NOT NULL', 'SET_NOT_NULL', 'risky', 'HIGH', /scans the whole table/],
  ['ALTER TABLE t ALTER COLUMN c DROP NOT NULL', 'DROP_NOT_NULL', 'safe', 'LOW', /relaxes/],
  ['ALTER TABLE t ALTER COLUMN total DROP EXPRESSION', 'DROP_EXPRESSION', 'risky', 'MEDIUM', /stops being computed/],
  ['ALTER TABLE t REPLICA IDENTITY FULL', 'REPLICA_IDENTITY', 'safe', 'LOW', /logical replication/],
  ['ALTER TABLE t REPLICA IDENTITY NOTHING', 'REPLICA_IDENTITY_NOTHING', 'risky', 'HIGH', /55000/],
  ['ALTER TABLE t ALTER COLUMN c SET STATISTICS 500', 'COLUMN_OPTIONS', 'safe', 'LOW', /statistics target/],
  ['ALTER TABLE t ALTER COLUMN c SET EXPRESSION AS (a + 1)', 'SET_EXPRESSION', 'risky', 'HIGH', /recomputes every row/, 17],
  ['ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)', 'ADD_CHECK', 'risky', 'HIGH', /checks every row/],
  ['ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID', 'ADD_CHECK_NOT_VALID', 'safe', 'LOW', /NOT VALID/],
  ['ALTER TABLE t ADD CONSTRAINT c NOT NULL a', 'ADD_NOT_NULL_CONSTRAINT', 'risky', 'HIGH', /scans the whole table/, 18],
  ['ALTER TABLE t ADD CONSTRAINT c NOT NULL a NOT VALID', 'ADD_NOT_NULL_CONSTRAINT_NOT_VALID', 'safe', 'LOW', /NOT VALID/, 18],
  ['ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES users (id)', 'ADD_FOREIGN_KEY', 'risky', 'HIGH', /blocking writes on both tables/],
  ['ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES users (id) NOT VALID', 'ADD_FOREIGN_KEY_NOT_VALID', 'safe', 'LOW', /NOT VALID/],
  ['ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)', 'ADD_UNIQUE', 'risky', 'HIGH', /builds a unique index/],
  ['ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX t_a', 'ADD_UNIQUE_USING_INDEX', 'safe', 'LOW', /existing unique index/],
  ['ALTER TABLE t ADD PRIMARY KEY (id)', 'ADD_PRIMARY_KEY', 'risky', 'HIGH', /unique index/],
  ['ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY USING INDEX t_id', 'ADD_PRIMARY_KEY_USING_INDEX', 'risky', 'MEDIUM', /not already NOT NULL/],
  ['ALTER TABLE t ADD CONSTRAINT x EXCLUDE USING gist (r WITH &&)', 'ADD_EXCLUDE', 'risky', 'HIGH', /exclusion index/],
  ['ALTER TABLE t VALIDATE CONSTRAINT c', 'VALIDATE_CONSTRAINT', 'safe', 'LOW', /without blocking/],
  ['ALTER TABLE t DROP CONSTRAINT c', 'DROP_CONSTRAINT', 'safe', 'LOW', /relaxes/],
  ['ALTER TABLE t DROP CONSTRAINT t_pkey', 'DROP_KEY_CONSTRAINT', 'risky', 'HIGH', /ON CONFLICT on it fails/],
  ['ALTER TABLE t ALTER CONSTRAINT f DEFERRABLE', 'ALTER_CONSTRAINT', 'safe', 'LOW', /attributes/],
  ['CREATE INDEX i ON t (a)', 'CREATE_INDEX', 'risky', 'HIGH', /blocking writes/],
  ['CREATE INDEX CONCURRENTLY i ON t (a)', 'CREATE_INDEX_CONCURRENTLY', 'safe', 'LOW', /without blocking/],
  ['DROP INDEX i', 'DROP_INDEX', 'safe', 'MEDIUM', /may slow down/],
  ['DROP INDEX users_email_key', 'DROP_UNIQUE_INDEX', 'risky', 'HIGH', /ON CONFLICT on its columns fails \(SQLSTATE 42P10\)/],
  ['DROP INDEX CONCURRENTLY users_email_key', 'DROP_UNIQUE_INDEX_CONCURRENTLY', 'risky', 'HIGH', /without blocking.*42P10/],
  ['DROP INDEX CONCURRENTLY i', 'DROP_INDEX_CONCURRENTLY', 'safe', 'LOW', /without blocking/],
  ['ALTER INDEX i RENAME TO j', 'RENAME_INDEX', 'safe', 'LOW', /not used by queries/],
  ['ALTER TABLE t RENAME CONSTRAINT a TO b', 'RENAME_CONSTRAINT', 'safe', 'LOW', /not used by queries/],
  ['ALTER INDEX t_pkey RENAME TO t_pk', 'RENAME_KEY_INDEX', 'risky', 'MEDIUM', /and so the constraint/],
  ['ALTER TABLE t RENAME CONSTRAINT t_pkey TO t_pk', 'RENAME_KEY_CONSTRAINT', 'risky', 'MEDIUM', /ON CONFLICT ON CONSTRAINT with the old name fails/],
  ['REINDEX TABLE t', 'REINDEX', 'risky', 'HIGH', /blocking writes/],
  ['REINDEX TABLE CONCURRENTLY t', 'REINDEX_CONCURRENTLY', 'safe', 'LOW', /without blocking/],
  ['REINDEX DATABASE app', 'REINDEX_DATABASE', 'maintenance', 'HIGH', /every index/],
  ['CREATE VIEW v AS SELECT 1', 'CREATE_VIEW', 'safe', 'LOW', /view definition/],
  ['CREATE OR REPLACE VIEW v AS SELECT id, name FROM t', 'REPLACE_VIEW', 'safe', 'LOW', /replaces an existing view/],
  ['CREATE OR REPLACE VIEW v AS SELECT DISTINCT name FROM t', 'REPLACE_VIEW_READ_ONLY', 'risky', 'MEDIUM', /cannot be written through/],
  ['ALTER VIEW v SET (security_invoker = true)', 'VIEW_OPTIONS', 'risky', 'MEDIUM', /security_invoker/],
  ['DROP VIEW v', 'DROP_VIEW', 'risky', 'HIGH', /destructive/],
  ['CREATE MATERIALIZED VIEW m AS SELECT * FROM t', 'CREATE_MATERIALIZED_VIEW', 'safe', 'LOW', /only reads/],
  ['REFRESH MATERIALIZED VIEW m', 'REFRESH_MATERIALIZED_VIEW', 'risky', 'HIGH', /blocks every read/],
  ['REFRESH MATERIALIZED VIEW CONCURRENTLY m', 'REFRESH_MATERIALIZED_VIEW_CONCURRENTLY', 'safe', 'LOW', /reads continue/],
  ['DROP MATERIALIZED VIEW m', 'DROP_MATERIALIZED_VIEW', 'risky', 'HIGH', /destructive/],
  ['CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$', 'CREATE_FUNCTION', 'safe', 'LOW', /body is not run/],
  ['DROP FUNCTION f()', 'DROP_FUNCTION', 'risky', 'HIGH', /may call it/],
  ['CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()', 'CREATE_TRIGGER', 'safe', 'LOW', /trigger definition/],
  ['DROP TRIGGER tr ON t', 'DROP_TRIGGER', 'risky', 'MEDIUM', /writes no longer fire it/],
  ['ALTER TABLE t DISABLE TRIGGER tr', 'DISABLE_TRIGGER', 'risky', 'MEDIUM', /writes no longer fire it/],
  ['ALTER TABLE t ENABLE TRIGGER tr', 'ENABLE_DISABLE_TRIGGER', 'safe', 'LOW', /switches a trigger on/],
  ['ALTER TABLE t ENABLE RULE r', 'ENABLE_RULE', 'safe', 'LOW', /switches a rule on/],
  ['ALTER TABLE t DISABLE RULE r', 'DISABLE_RULE', 'risky', 'MEDIUM', /no longer rewritten/],
  ['CALL do_things()', 'CALL', 'risky', 'MEDIUM', /procedure .* cannot be analysed: do_things/],
  ['SELECT count(*) FROM t', 'SELECT', 'safe', 'LOW', /reads only/],
  ["SELECT create_hypertable('t', 'ts')", 'SELECT_FUNCTION', 'risky', 'MEDIUM', /cannot be analysed: create_hypertable/],
  ['DO $$ BEGIN RAISE NOTICE $q$hi$q$; END $$', 'DO_BLOCK', 'safe', 'LOW', /without statements/],
  ["DO $$ BEGIN EXECUTE 'DROP TABLE ' || quote_ident('x'); END $$", 'DYNAMIC_SQL', 'risky', 'MEDIUM', /computed string/],
  ["CREATE TYPE mood AS ENUM ('a', 'b')", 'CREATE_TYPE', 'safe', 'LOW', /new type/],
  ["ALTER TYPE mood ADD VALUE 'c'", 'ADD_ENUM_VALUE', 'safe', 'LOW', /catalog only/],
  ["ALTER TYPE mood RENAME VALUE 'a' TO 'z'", 'RENAME_ENUM_VALUE', 'risky', 'HIGH', /old value/],
  ['ALTER TYPE addr ADD ATTRIBUTE zip text', 'ALTER_TYPE', 'risky', 'MEDIUM', /columns or functions/],
  ['DROP TYPE mood', 'DROP_TYPE', 'risky', 'HIGH', /destructive/],
  ['CREATE DOMAIN pos AS int CHECK (VALUE > 0)', 'CREATE_DOMAIN', 'safe', 'LOW', /new domain/],
  ['ALTER DOMAIN pos ADD CONSTRAINT c CHECK (VALUE < 100)', 'ALTER_DOMAIN_ADD_CONSTRAINT', 'risky', 'HIGH', /every column of the domain/],
  ['ALTER DOMAIN pos ADD CONSTRAINT c CHECK (VALUE < 100) NOT VALID', 'ALTER_DOMAIN', 'safe', 'LOW', /NOT VALID/],
  ['ALTER DOMAIN pos VALIDATE CONSTRAINT c', 'ALTER_DOMAIN_VALIDATE', 'risky', 'HIGH', /while blocking writes \(SHARE/],
  ['ALTER DOMAIN pos DROP DEFAULT', 'ALTER_DOMAIN_DROP_DEFAULT', 'risky', 'MEDIUM', /lose its default/],
  ['DROP DOMAIN pos', 'DROP_DOMAIN', 'risky', 'HIGH', /destructive/],
  ['CREATE EXTENSION IF NOT EXISTS pg_trgm', 'CREATE_EXTENSION', 'safe', 'LOW', /installable on both sides/],
  ['ALTER EXTENSION pg_trgm UPDATE', 'ALTER_EXTENSION', 'risky', 'MEDIUM', /extension update/],
  ['DROP EXTENSION pg_trgm', 'DROP_EXTENSION', 'risky', 'HIGH', /destructive/],
  ['CREATE SEQUENCE s', 'CREATE_SEQUENCE', 'safe', 'LOW', /new sequence/],
  ['ALTER SEQUENCE s INCREMENT BY 10', 'ALTER_SEQUENCE', 'safe', 'LOW', /sequence option/],
  ['ALTER SEQUENCE s RESTART WITH 1', 'ALTER_SEQUENCE_VALUES', 'risky', 'MEDIUM', /values already used.*23505/],
  ['DROP SEQUENCE s', 'DROP_SEQUENCE', 'risky', 'HIGH', /destructive/],
  ['CREATE SCHEMA archive', 'CREATE_SCHEMA', 'safe', 'LOW', /new schema/],
  ['DROP SCHEMA archive', 'DROP_SCHEMA', 'risky', 'HIGH', /destructive/],
  ['CREATE STATISTICS st ON a, b FROM t', 'CREATE_OBJECT', 'safe', 'LOW', /new object/],
  ['ALTER FUNCTION f() SET search_path = public', 'ALTER_OBJECT', 'safe', 'LOW', /options/],
  ['DROP POLICY p ON t', 'DROP_POLICY', 'risky', 'MEDIUM', /which rows/],
  ['DROP RULE r ON t', 'DROP_RULE', 'risky', 'MEDIUM', /no longer rewritten/],
  ['DROP CAST (text AS int)', 'DROP_OBJECT', 'risky', 'HIGH', /destructive/],
  ['ALTER TABLE c INHERIT p', 'ADD_INHERIT', 'risky', 'MEDIUM', /start to appear/],
  ['ALTER TABLE c NO INHERIT p', 'DROP_INHERIT', 'risky', 'MEDIUM', /disappear/],
  ['ALTER VIEW v RENAME TO w', 'RENAME_OBJECT', 'risky', 'HIGH', /old name/],
  ['GRANT SELECT ON t TO reporting', 'GRANT', 'safe', 'LOW', /adds privileges/],
  ['REVOKE SELECT ON t FROM app', 'REVOKE', 'risky', 'MEDIUM', /remove access/],
  ["COMMENT ON TABLE t IS 'x'", 'COMMENT', 'safe', 'LOW', /catalog only/],
  ["SET lock_timeout = '2s'", 'SET_LOCK_TIMEOUT', 'safe', 'LOW', /wait for locks/],
  ["SET statement_timeout = '5min'", 'SET_STATEMENT_TIMEOUT', 'safe', 'LOW', /how long later statements run/],
  ['SET search_path = app, public', 'SET', 'safe', 'LOW', /session setting/],
  ['CREATE ROLE reporting', 'ROLE', 'risky', 'MEDIUM', /both sides/],
  ['VACUUM t', 'VACUUM', 'safe', 'LOW', /does not block/],
  ['VACUUM FULL t', 'VACUUM_FULL', 'maintenance', 'HIGH', /rewrites the table/],
  ['ANALYZE t', 'ANALYZE', 'safe', 'LOW', /samples/],
  ['CLUSTER t USING t_pkey', 'CLUSTER', 'maintenance', 'HIGH', /index order/],
  ["INSERT INTO settings (k, v) VALUES ('a', 'b')", 'INSERT', 'safe', 'LOW', /rows given in the file/],
  ['INSERT INTO t2 SELECT * FROM t', 'INSERT_SELECT', 'maintenance', 'MEDIUM', /bulk change of live data/],
  ['UPDATE t SET a = 1', 'UPDATE', 'maintenance', 'MEDIUM', /locks every row/],
  ['DELETE FROM t WHERE a IS NULL', 'DELETE', 'maintenance', 'MEDIUM', /locks every row/],
  ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', 'MERGE', 'maintenance', 'MEDIUM', /bulk change/],
  ["COPY t FROM '/tmp/x.csv'", 'COPY', 'risky', 'MEDIUM', /COPY loads/],
  ['ALTER TABLE p ATTACH PARTITION p2 FOR VALUES IN (2)', 'ATTACH_PARTITION', 'risky', 'MEDIUM', /parent keeps serving/],
  ['ALTER TABLE p DETACH PARTITION p2', 'DETACH_PARTITION', 'risky', 'HIGH', /disappear from the parent/],
  ['ALTER TABLE p DETACH PARTITION p2 CONCURRENTLY', 'DETACH_PARTITION_CONCURRENTLY', 'risky', 'MEDIUM', /without blocking/],
  ['CREATE DATABASE other', 'CREATE_DATABASE', 'maintenance', 'MEDIUM', /cluster-wide/],
  ['DROP DATABASE other', 'DROP_DATABASE', 'maintenance', 'HIGH', /destructive/],
  ['CREATE POLICY p ON t USING (true)', 'CREATE_POLICY', 'safe', 'LOW', /row level security policy/],
  ['CREATE POLICY p ON t AS RESTRICTIVE USING (true)', 'CREATE_POLICY_RESTRICTIVE', 'risky', 'MEDIUM', /narrows which rows/],
  ["ALTER POLICY p ON t USING (owner = current_user)", 'ALTER_POLICY', 'risky', 'MEDIUM', /which rows/],
  ['CREATE RULE r AS ON DELETE TO t DO INSTEAD NOTHING', 'CREATE_RULE', 'risky', 'MEDIUM', /rewrites the running application/],
  ['ALTER DATABASE app CONNECTION LIMIT 10', 'ALTER_DATABASE', 'maintenance', 'MEDIUM', /cluster-wide/],
  ['ALTER DATABASE app SET work_mem = 1', 'ALTER_DATABASE_SET', 'safe', 'LOW', /per-database default for new sessions/],
  ["ALTER SYSTEM SET shared_buffers = '1GB'", 'ALTER_SYSTEM', 'maintenance', 'HIGH', /needs a restart/],
  ["ALTER SYSTEM SET work_mem = '64MB'", 'ALTER_SYSTEM_RELOAD', 'safe', 'LOW', /a reload applies/],
  ['CHECKPOINT', 'UNKNOWN', 'risky', 'MEDIUM', /^unrecognised operation$/],
];

// rows whose answer depends on context are covered in context.test.ts / versions.test.ts
const COVERED_ELSEWHERE = ['ALTER_COLUMN_TYPE_COMPATIBLE', 'SET_NOT_NULL_CHECKED', 'ADD_COLUMN_DOMAIN', 'DROP_DEFAULT', 'DROP_DEFAULT_NOT_NULL', 'ATTACH_NEW_PARTITION', 'UPDATE_BOUNDED', 'DELETE_BOUNDED'];

const classify = (sql: string, pgVersion?: number): ValidationReport => classifySqlSync(sql, { pgVersion });

beforeAll(() => loadParser());

describe('operation table', () => {
  // a rest parameter: jest would take a sixth named parameter for a `done` callback
  test.each(CASES)('%s → %s', (...args: Case) => {
    const [sql, type, cls, risk, reason, pgVersion] = args;
    const report = classify(sql, pgVersion);
    const op = report.operations.find((o) => o.type === type);
    expect(op).toBeDefined();
    expect(op!.classification).toBe(cls);
    expect(op!.riskLevel).toBe(risk);
    expect(op!.reason).toMatch(reason);
    expect(op!.line).toBe(1);
    if (op!.classification !== 'safe') expect(report.classification).not.toBe('safe');
  });

  test('every row of the table has a case', () => {
    const covered = new Set([...CASES.map((c) => c[1]), ...COVERED_ELSEWHERE]);
    expect(Object.keys(OPERATIONS).filter((t) => !covered.has(t))).toEqual([]);
  });

  test('an unknown operation is never safe and says so', () => {
    const r = classify('LISTEN channel');
    expect(r.classification).toBe('risky');
    expect(r.riskLevel).toBe('MEDIUM');
    expect(r.warnings.join('\n')).toMatch(/unrecognised operation/);
  });

  test('the report has the contract shape', () => {
    const r = classify('-- header\nDROP TABLE legacy_sessions;');
    expect(r).toMatchObject({
      file: '<sql>', isValid: true, classification: 'risky', riskLevel: 'HIGH', errors: [],
      operations: [{ type: 'DROP_TABLE', statement: 'DROP TABLE legacy_sessions', riskLevel: 'HIGH', classification: 'risky', table: 'legacy_sessions', lock: 'ACCESS EXCLUSIVE', rewrite: false, line: 2, reason: 'destructive: breaks the running application' }],
    });
    expect(r.warnings.some((w) => /destructive/.test(w))).toBe(true);
  });

  test('a file is as bad as its worst statement', () => {
    const r = classify('CREATE TABLE a (id int);\nALTER TABLE b ADD COLUMN c text;\nVACUUM FULL b;');
    expect(r.classification).toBe('maintenance');
    expect(r.riskLevel).toBe('HIGH');
  });
});

describe('server settings: a reload is not a maintenance window, a restart is; both sides are named', () => {
  const c = (sql: string) => classifySqlSync(sql, {});
  test.each([
    ['ALTER SYSTEM SET work_mem = \'64MB\';', 'ALTER_SYSTEM_RELOAD', 'safe', /run it on both blue and green, then SELECT pg_reload_conf\(\) on each/],
    ['ALTER SYSTEM SET log_min_duration_statement = 500;', 'ALTER_SYSTEM_RELOAD', 'safe', /both blue and green/],
    ['ALTER SYSTEM SET shared_buffers = \'1GB\';', 'ALTER_SYSTEM', 'maintenance', /both blue and green/],
    ['ALTER SYSTEM SET max_connections = 500;', 'ALTER_SYSTEM', 'maintenance', /both blue and green/],
    ['ALTER SYSTEM RESET ALL;', 'ALTER_SYSTEM', 'maintenance', /both blue and green/],
    ['ALTER DATABASE app SET statement_timeout = \'5s\';', 'ALTER_DATABASE_SET', 'safe', /both blue and green/],
    ['ALTER DATABASE app SET TABLESPACE fast;', 'ALTER_DATABASE', 'maintenance', undefined],
  ])('%s', (sql, type, classification, warning) => {
    const r = c(sql);
    expect(r.operations[0]).toMatchObject({ type, classification });
    if (warning) expect(r.warnings.join('\n')).toMatch(warning);
  });
});

/**
 * File context: new objects, transactions, lock_timeout, enum values, DO blocks, target
 * versions (both sides of each version where an answer changes), parse errors, mapping.
 */
import { classifySqlSync, loadParser, ValidationReport } from '../../src/classifier';

const classify = (sql: string, pgVersion?: number): ValidationReport => classifySqlSync(sql, { pgVersion });
const op = (r: ValidationReport, type: string) => r.operations.find((o) => o.type === type);

beforeAll(() => loadParser());

describe('objects created earlier in the file', () => {
  test('operations on a new table are safe', () => {
    const r = classify('CREATE TABLE t (id int, n int);\nCREATE INDEX t_n ON t (n);\nALTER TABLE t ALTER COLUMN n SET NOT NULL;\nALTER TABLE t ADD CONSTRAINT c CHECK (n > 0);');
    expect(r.classification).toBe('safe');
    expect(op(r, 'CREATE_INDEX')).toMatchObject({ classification: 'safe', riskLevel: 'LOW', reason: 't was created earlier in this file: nothing uses it yet', line: 2 });
    expect(r.warnings).toEqual([]);
  });
  test('the same operations on an existing table are not', () => {
    expect(classify('CREATE INDEX t_n ON t (n);').classification).toBe('risky');
  });
  test('a table renamed from a new one stays new; a renamed existing one does not', () => {
    expect(classify('CREATE TABLE a (id int); ALTER TABLE a RENAME TO b; CREATE INDEX ON b (id);').classification).toBe('safe');
    expect(op(classify('ALTER TABLE a RENAME TO b; CREATE INDEX ON b (id);'), 'CREATE_INDEX')!.classification).toBe('risky');
  });
  test('an index created in the file can be dropped safely', () => {
    expect(op(classify('CREATE INDEX CONCURRENTLY i ON t (a);\nDROP INDEX i;'), 'DROP_INDEX')!.riskLevel).toBe('LOW');
  });
  test('a known varchar widening is binary-coercible; narrowing and int→bigint rewrite', () => {
    const base = 'CREATE TABLE t (id int, s varchar(20));\nINSERT INTO t VALUES (1, \'a\');\n';
    expect(op(classify(`${base}ALTER TABLE t ALTER COLUMN s TYPE varchar(50);`), 'ALTER_COLUMN_TYPE_COMPATIBLE')).toMatchObject({ classification: 'safe', riskLevel: 'LOW', reason: expect.stringMatching(/binary-coercible/) });
    expect(op(classify(`${base}ALTER TABLE t ALTER COLUMN s TYPE text;`), 'ALTER_COLUMN_TYPE_COMPATIBLE')).toBeDefined();
    expect(op(classify(`${base}ALTER TABLE t ALTER COLUMN s TYPE varchar(5);`), 'ALTER_COLUMN_TYPE')).toBeDefined();
    expect(op(classify(`${base}ALTER TABLE t ALTER COLUMN id TYPE bigint;`), 'ALTER_COLUMN_TYPE')).toBeDefined();
  });
  test('without knowing the current type a type change is assumed to rewrite', () => {
    const r = classify('ALTER TABLE t ALTER COLUMN s TYPE text;');
    expect(op(r, 'ALTER_COLUMN_TYPE')).toMatchObject({ classification: 'risky', riskLevel: 'HIGH' });
    expect(r.warnings.join('\n')).toMatch(/current type of t\.s is unknown/);
  });
});

describe('SET NOT NULL with a validated CHECK (PostgreSQL 12+)', () => {
  const sql = 'ALTER TABLE t ADD CONSTRAINT t_n_nn CHECK (n IS NOT NULL) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT t_n_nn;\nALTER TABLE t ALTER COLUMN n SET NOT NULL;';
  test('on 12 the scan is skipped', () => {
    expect(op(classify(sql, 12), 'SET_NOT_NULL_CHECKED')).toMatchObject({ classification: 'safe', riskLevel: 'LOW', scan: false, reason: expect.stringMatching(/no scan/) });
  });
  test('on 11 it still scans', () => {
    expect(op(classify(sql, 11), 'SET_NOT_NULL_CHECKED')).toMatchObject({ classification: 'risky', riskLevel: 'HIGH', scan: true, reason: expect.stringMatching(/before PostgreSQL 12/) });
  });
  test('a NOT VALID check that is never validated proves nothing', () => {
    expect(op(classify('ALTER TABLE t ADD CONSTRAINT c CHECK (n IS NOT NULL) NOT VALID;\nALTER TABLE t ALTER COLUMN n SET NOT NULL;', 15), 'SET_NOT_NULL')).toMatchObject({ classification: 'risky' });
  });
});

describe('version-dependent rows, both sides', () => {
  test('ADD COLUMN with a constant default: 11 no rewrite, 10 rewrite', () => {
    expect(op(classify('ALTER TABLE t ADD COLUMN c int DEFAULT 0', 11), 'ADD_COLUMN_DEFAULT')).toMatchObject({ classification: 'safe', rewrite: false });
    expect(op(classify('ALTER TABLE t ADD COLUMN c int DEFAULT 0', 10), 'ADD_COLUMN_DEFAULT')).toMatchObject({ classification: 'risky', riskLevel: 'HIGH', rewrite: true, reason: expect.stringMatching(/before PostgreSQL 11/) });
  });
  test('ATTACH PARTITION: 12 keeps the parent serving, 11 blocks it', () => {
    expect(op(classify('ALTER TABLE p ATTACH PARTITION p2 FOR VALUES IN (2)', 12), 'ATTACH_PARTITION')).toMatchObject({ lock: 'SHARE UPDATE EXCLUSIVE', riskLevel: 'MEDIUM' });
    expect(op(classify('ALTER TABLE p ATTACH PARTITION p2 FOR VALUES IN (2)', 11), 'ATTACH_PARTITION')).toMatchObject({ lock: 'ACCESS EXCLUSIVE', riskLevel: 'HIGH' });
  });
  test.each([
    ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', 15, /MERGE needs PostgreSQL 15/],
    ['CREATE UNIQUE INDEX i ON t (a) NULLS NOT DISTINCT', 15, /NULLS NOT DISTINCT needs PostgreSQL 15/],
    ['ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a * 2) VIRTUAL', 18, /virtual generated columns .* needs PostgreSQL 18/],
    ['ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a * 2) STORED', 12, /generated columns needs PostgreSQL 12/],
    ['ALTER TABLE t ADD CONSTRAINT c NOT NULL a NOT VALID', 18, /NOT NULL … NOT VALID needs PostgreSQL 18/],
    ['REINDEX TABLE CONCURRENTLY t', 12, /REINDEX CONCURRENTLY needs PostgreSQL 12/],
    ['ALTER TABLE p DETACH PARTITION p2 CONCURRENTLY', 14, /DETACH PARTITION … CONCURRENTLY needs PostgreSQL 14/],
    ['CREATE INDEX i ON t (a) INCLUDE (b)', 11, /INCLUDE\) needs PostgreSQL 11/],
    ['SELECT uuidv7()', 18, /uuidv7\(\) needs PostgreSQL 18/],
  ])('%s: invalid before %d, valid from it', (sql, since, message) => {
    const before = classify(sql, (since as number) - 1);
    expect(before.isValid).toBe(false);
    expect(before.errors.join('\n')).toMatch(message as RegExp);
    expect(before.errors[0]).toMatch(/^line 1, column \d+: /);
    expect(classify(sql, since as number).errors).toEqual([]);
  });
  test('gen_random_uuid() before 13 needs pgcrypto (a warning without a live database)', () => {
    expect(classify('SELECT gen_random_uuid()', 12).warnings.join('\n')).toMatch(/pgcrypto/);
    expect(classify('CREATE EXTENSION pgcrypto; SELECT gen_random_uuid()', 12).warnings.join('\n')).not.toMatch(/built in/);
  });
  test('ALTER TYPE … ADD VALUE cannot run in a transaction block before 12', () => {
    const sql = "BEGIN;\nALTER TYPE mood ADD VALUE 'x';\nCOMMIT;";
    expect(classify(sql, 11).errors.join('\n')).toMatch(/ADD ENUM VALUE cannot run inside a transaction block/);
    expect(classify(sql, 12).isValid).toBe(true);
  });
});

describe('transactions', () => {
  test.each([
    ['CREATE INDEX CONCURRENTLY i ON t (a);', /line 2, column 1: CREATE INDEX CONCURRENTLY cannot run inside a transaction block \(BEGIN at line 1\)/],
    ['VACUUM t;', /VACUUM cannot run inside a transaction block/],
    ['CREATE DATABASE x;', /CREATE DATABASE cannot run inside a transaction block/],
  ])('%s inside BEGIN is an error', (stmt, message) => {
    const r = classify(`BEGIN;\n${stmt}\nCOMMIT;`);
    expect(r.isValid).toBe(false);
    expect(r.errors.join('\n')).toMatch(message);
  });
  test('the same statements outside a transaction block are fine', () => {
    expect(classify('CREATE INDEX CONCURRENTLY i ON t (a);\nVACUUM t;').isValid).toBe(true);
  });
  test('BEGIN without COMMIT is an error naming the BEGIN', () => {
    const r = classify('SELECT 1;\n  BEGIN;\nALTER TABLE t ADD COLUMN c int;');
    expect(r.isValid).toBe(false);
    expect(r.errors).toEqual(['line 2, column 3: BEGIN is never committed (the file ends inside a transaction block)']);
  });
  test('a new enum value used in the same transaction is an error', () => {
    const r = classify("BEGIN;\nALTER TYPE mood ADD VALUE 'ecstatic';\nUPDATE people SET mood = 'ecstatic' WHERE id = 1;\nCOMMIT;");
    expect(r.errors.join('\n')).toMatch(/line 3, column 1: new value 'ecstatic' of enum mood \(added at line 2\) is used before its transaction commits/);
  });
  test('without BEGIN the file runs as one transaction, so the same use is an error', () => {
    expect(classify("ALTER TYPE mood ADD VALUE 'ecstatic';\nUPDATE people SET mood = 'ecstatic';").isValid).toBe(false);
  });
  test('used after COMMIT, or in a file that runs statement by statement, it is fine', () => {
    expect(classify("BEGIN;\nALTER TYPE mood ADD VALUE 'ecstatic';\nCOMMIT;\nUPDATE people SET mood = 'ecstatic';").errors).toEqual([]);
    expect(classify("ALTER TYPE mood ADD VALUE 'ecstatic';\nCREATE INDEX CONCURRENTLY i ON people (mood);\nUPDATE people SET mood = 'ecstatic';").errors).toEqual([]);
  });
});

describe('lock_timeout', () => {
  test('missing before ACCESS EXCLUSIVE statements: a warning with their lines', () => {
    const r = classify('ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t DROP COLUMN d;');
    expect(r.warnings.join('\n')).toMatch(/lock_timeout is not set .*\(lines 1, 2\)/);
  });
  test('set before them: no warning; reset: warning again', () => {
    expect(classify("SET lock_timeout = '2s';\nALTER TABLE t ADD COLUMN c int;").warnings.join('\n')).not.toMatch(/lock_timeout/);
    expect(classify("SELECT set_config('lock_timeout', '2s', false);\nALTER TABLE t ADD COLUMN c int;").warnings.join('\n')).not.toMatch(/lock_timeout/);
    expect(classify("SET lock_timeout = '2s';\nRESET lock_timeout;\nALTER TABLE t ADD COLUMN c int;").warnings.join('\n')).toMatch(/lock_timeout is not set .*\(line 3\)/);
    expect(classify("BEGIN;\nSET LOCAL lock_timeout = '2s';\nCOMMIT;\nALTER TABLE t ADD COLUMN c int;").warnings.join('\n')).toMatch(/\(line 4\)/);
  });
});

describe('DO blocks and function bodies', () => {
  test('statements inside a function body do not count', () => {
    const r = classify('CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DROP TABLE users; END $$;');
    expect(r.classification).toBe('safe');
    expect(r.operations.map((o) => o.type)).toEqual(['CREATE_FUNCTION']);
  });
  test('DO blocks do, with the line of the inner statement, including literal EXECUTE strings', () => {
    const r = classify("-- c\nDO $$\nBEGIN\n  IF true THEN\n    ALTER TABLE users DROP COLUMN legacy;\n  END IF;\n  EXECUTE 'DROP TABLE ' || 'sessions';\nEND $$;");
    expect(r.operations.map((o) => [o.type, o.line])).toEqual([['DROP_COLUMN', 5], ['DROP_TABLE', 7]]);
    expect(r.classification).toBe('risky');
  });
  test('CONCURRENTLY inside a DO block is an error', () => {
    expect(classify('DO $$ BEGIN CREATE INDEX CONCURRENTLY i ON t (a); END $$;').errors.join('\n')).toMatch(/cannot run inside a DO block/);
  });
  test('PERFORM of an unknown function is risky; reads are ignored', () => {
    expect(classify('DO $$ BEGIN PERFORM do_magic(); END $$;').operations[0]).toMatchObject({ type: 'SELECT_FUNCTION', classification: 'risky' });
    expect(classify('DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_class) THEN RAISE NOTICE $q$x$q$; END IF; END $$;').classification).toBe('safe');
  });
});

describe('parse errors and empty files', () => {
  test('SQL that does not parse is invalid with line and column, and the rest is still classified', () => {
    const r = classify('CREATE TABLE a (id int);\nALTER TABLE b ADD COLUMN c int;\nALTER TABLE c ADD COLUMN;\nDROP TABLE d;');
    expect(r.isValid).toBe(false);
    expect(r.errors).toEqual(['line 3, column 25: syntax error at or near ";" (SQLSTATE 42601)']);
    expect(r.operations.map((o) => o.type)).toEqual(['CREATE_TABLE', 'ADD_COLUMN', 'DROP_TABLE']);
    expect(r.classification).toBe('risky');
  });
  test('column counts characters, not bytes', () => {
    expect(classify("SELECT 'ééé' FRM t;").errors[0]).toMatch(/^line 1, column 18: syntax error at or near "t"/);
  });
  test.each(['', '   \n', '-- only a comment\n/* and a block */\n'])('%j is valid and safe', (sql) => {
    expect(classify(sql)).toMatchObject({ isValid: true, classification: 'safe', riskLevel: 'LOW', operations: [], errors: [] });
  });
});

describe('schema mapping for risky migrations', () => {
  test('renames, drops, added-with-default and type changes with USING', () => {
    const r = classify([
      'ALTER TABLE users RENAME COLUMN name TO full_name;',
      'ALTER TABLE users DROP COLUMN legacy;',
      "ALTER TABLE users ADD COLUMN status text NOT NULL DEFAULT 'active';",
      'ALTER TABLE orders ALTER COLUMN amount TYPE bigint USING (amount * 100)::bigint;',
      'ALTER TABLE sessions RENAME TO user_sessions;',
      'DROP TABLE audit_old;',
      'CREATE TABLE events (id bigint);',
    ].join('\n'));
    expect(r.classification).toBe('risky');
    expect(r.mapping).toEqual({
      tables: [
        { table: 'public.users', renamedColumns: { name: 'full_name' }, droppedColumns: ['legacy'], addedColumns: [{ column: 'status', default: "'active'", notNull: true }], typeChanges: [] },
        { table: 'public.orders', renamedColumns: {}, droppedColumns: [], addedColumns: [], typeChanges: [{ column: 'amount', newType: 'bigint', using: '(amount * 100)::bigint' }] },
        { table: 'public.sessions', renamedTo: 'public.user_sessions', renamedColumns: {}, droppedColumns: [], addedColumns: [], typeChanges: [] },
      ],
      newTables: ['public.events'],
      droppedTables: ['public.audit_old'],
    });
  });
  test('safe files carry no mapping', () => {
    expect(classify('ALTER TABLE t ADD COLUMN c int;').mapping).toBeUndefined();
  });
});

describe('locks held to the end of the transaction', () => {
  const held = (r: ValidationReport, type: string) => op(r, type)?.heldLock;

  test('VALIDATE after NOT VALID in the same transaction scans under the ACCESS EXCLUSIVE the NOT VALID took', () => {
    const notValid = 'ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0) NOT VALID;\n';
    const validate = 'ALTER TABLE t VALIDATE CONSTRAINT c;\n';
    // an explicit block, and a file without one (it runs as one transaction)
    for (const sql of [`BEGIN;\n${notValid}${validate}COMMIT;\n`, `${notValid}${validate}`]) {
      const r = classify(sql);
      const line = sql.startsWith('BEGIN') ? 2 : 1;
      expect(op(r, 'VALIDATE_CONSTRAINT')).toMatchObject({
        classification: 'risky', riskLevel: 'HIGH',
        heldLock: { lock: 'ACCESS EXCLUSIVE', table: 't', line, operation: 'ADD_CHECK_NOT_VALID' },
        reason: expect.stringContaining(`holds ACCESS EXCLUSIVE on t (taken at line ${line} by ADD CHECK NOT VALID): reads and writes of t wait for all of it`),
        saferAlternative: `commit after line ${line}, so that this runs in a transaction of its own`,
      });
      expect(r.classification).toBe('risky');
      expect(r.warnings).toContain(`line ${line + 1}: VALIDATE CONSTRAINT runs under ACCESS EXCLUSIVE on t, held since line ${line} (ADD CHECK NOT VALID) until the transaction ends: reads and writes of t wait for the whole of it`);
    }
    // one ALTER TABLE takes its strongest subcommand's lock for all of them
    expect(held(classify('ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0) NOT VALID, VALIDATE CONSTRAINT c;'), 'VALIDATE_CONSTRAINT')).toMatchObject({ lock: 'ACCESS EXCLUSIVE', line: 1 });
  });

  test('a commit between them, or a file run statement by statement, keeps NOT VALID worth it', () => {
    const committed = classify('BEGIN;\nALTER TABLE t ADD CONSTRAINT c CHECK (x > 0) NOT VALID;\nCOMMIT;\nALTER TABLE t VALIDATE CONSTRAINT c;\n');
    expect(op(committed, 'VALIDATE_CONSTRAINT')).toMatchObject({ classification: 'safe', riskLevel: 'LOW' });
    expect(held(committed, 'VALIDATE_CONSTRAINT')).toBeUndefined();
    // CONCURRENTLY makes the file run statement by statement: each its own transaction
    const autocommit = classify('ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0) NOT VALID;\nALTER TABLE t VALIDATE CONSTRAINT c;\nCREATE INDEX CONCURRENTLY i ON t (x);\n');
    expect(autocommit.classification).toBe('safe');
    expect(held(autocommit, 'VALIDATE_CONSTRAINT')).toBeUndefined();
  });

  test('a lock on one table is held while another is scanned; the write-blocking SHARE of an index build too', () => {
    const r = classify('BEGIN;\nALTER TABLE a ADD COLUMN n int;\nALTER TABLE b VALIDATE CONSTRAINT b_fk;\nCOMMIT;');
    expect(op(r, 'VALIDATE_CONSTRAINT')).toMatchObject({ classification: 'risky', heldLock: { lock: 'ACCESS EXCLUSIVE', table: 'a', line: 2, operation: 'ADD_COLUMN' } });
    const s = classify('BEGIN;\nCREATE INDEX a_n ON a (n);\nCREATE TABLE copy AS SELECT * FROM b;\nCOMMIT;');
    expect(op(s, 'CREATE_TABLE_AS')).toMatchObject({ classification: 'risky', heldLock: { lock: 'SHARE', table: 'a', line: 2 }, reason: expect.stringContaining('writes of a wait for all of it') });
  });

  test('data changes after a lock keep their class and name the lock; a cheap statement after it is unaffected', () => {
    const r = classify('BEGIN;\nALTER TABLE t ADD COLUMN flag boolean;\nUPDATE t SET flag = true;\nCOMMENT ON TABLE t IS \'x\';\nCOMMIT;');
    expect(op(r, 'UPDATE')).toMatchObject({ classification: 'maintenance', riskLevel: 'HIGH', heldLock: { lock: 'ACCESS EXCLUSIVE', table: 't', line: 2 } });
    expect(held(r, 'COMMENT')).toBeUndefined();
  });

  test('inside a DO block, and a DO block\'s locks held to the end of the transaction around it', () => {
    const r = classify(`BEGIN;\nDO $$ BEGIN\n  ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0) NOT VALID;\n  ALTER TABLE t VALIDATE CONSTRAINT c;\nEND $$;\nCOMMIT;`);
    expect(op(r, 'VALIDATE_CONSTRAINT')).toMatchObject({ classification: 'risky', heldLock: { lock: 'ACCESS EXCLUSIVE', line: 3 } });
    const after = classify(`BEGIN;\nDO $$ BEGIN ALTER TABLE t ADD COLUMN y int; END $$;\nALTER TABLE u VALIDATE CONSTRAINT c;\nCOMMIT;`);
    expect(op(after, 'VALIDATE_CONSTRAINT')).toMatchObject({ classification: 'risky', heldLock: { lock: 'ACCESS EXCLUSIVE', table: 't' } });
  });

  test('locks on tables created in the file block nobody', () => {
    const r = classify('CREATE TABLE n (id int, x int);\nALTER TABLE n ADD CONSTRAINT c CHECK (x > 0) NOT VALID;\nALTER TABLE n VALIDATE CONSTRAINT c;\nALTER TABLE t VALIDATE CONSTRAINT d;');
    expect(r.classification).toBe('safe');
    expect(r.operations.filter((o) => o.heldLock)).toEqual([]);
  });
});

describe('what PostgreSQL rejects at execution, with its SQLSTATE', () => {
  test('a relation or index created twice in the file, a column added twice or missing on a table the file made', () => {
    expect(classify('CREATE TABLE a (id int);\nCREATE TABLE a (id int);').errors).toEqual(['line 2, column 1: relation a already exists (created earlier in this file) (SQLSTATE 42P07)']);
    expect(classify('CREATE TABLE a (id int);\nCREATE TABLE IF NOT EXISTS a (id int);').errors).toEqual([]);
    expect(classify('CREATE TABLE a (id int);\nDROP TABLE a;\nCREATE TABLE a (id int);').errors).toEqual([]);
    expect(classify('CREATE INDEX i ON t (a);\nCREATE INDEX i ON t (b);').errors).toEqual(['line 2, column 1: relation i already exists (created earlier in this file) (SQLSTATE 42P07)']);
    expect(classify('CREATE INDEX i ON t (a);\nCREATE INDEX IF NOT EXISTS i ON t (b);').errors).toEqual([]);
    const cols = classify('CREATE TABLE a (id int, n int);\nALTER TABLE a ADD COLUMN n int;\nALTER TABLE a ALTER COLUMN m SET NOT NULL;\nALTER TABLE a ADD COLUMN IF NOT EXISTS n int;');
    expect(cols.errors).toEqual([
      'line 2, column 1: column n of a already exists (SQLSTATE 42701)',
      'line 3, column 1: column m of a does not exist (SQLSTATE 42703)',
    ]);
    expect(cols.isValid).toBe(false);
  });

  test('CREATE INDEX CONCURRENTLY on a partitioned table is refused (0A000), on a plain one it is not', () => {
    const r = classify('CREATE TABLE ev (id int, at date) PARTITION BY RANGE (at);\nCREATE INDEX CONCURRENTLY ev_at ON ev (at);');
    expect(r.errors).toEqual([expect.stringMatching(/^line 2, column 1: cannot create index on partitioned table ev concurrently: create it ON ONLY the parent, .* \(SQLSTATE 0A000\)$/)]);
    expect(classify('CREATE TABLE ev (id int, at date);\nCREATE INDEX CONCURRENTLY ev_at ON ev (at);').errors).toEqual([]);
  });

  test('the transaction and enum errors carry theirs', () => {
    expect(classify('BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;').errors).toEqual(['line 2, column 1: CREATE INDEX CONCURRENTLY cannot run inside a transaction block (BEGIN at line 1) (SQLSTATE 25001)']);
    expect(classify('BEGIN;\nALTER TYPE mood ADD VALUE \'x\';\nSELECT \'x\'::mood;\nCOMMIT;').errors.join('\n')).toMatch(/is used before its transaction commits \(SQLSTATE 55P04\)$/);
  });
});

describe('a column of a domain with constraints', () => {
  test('rewrites the table: known from the file, nullable or with a default; a NOT NULL domain without default also fails on rows', () => {
    const r = classify('CREATE DOMAIN pos AS int CHECK (VALUE > 0);\nALTER TABLE t ADD COLUMN p pos;\nALTER TABLE t ADD COLUMN q pos DEFAULT 1;');
    expect(r.operations.filter((o) => o.type === 'ADD_COLUMN_DOMAIN').map((o) => o.line)).toEqual([2, 3]);
    expect(op(r, 'ADD_COLUMN_DOMAIN')).toMatchObject({ classification: 'risky', riskLevel: 'HIGH', rewrite: true, lock: 'ACCESS EXCLUSIVE' });
    const nn = classify('CREATE DOMAIN req AS text NOT NULL;\nALTER TABLE t ADD COLUMN r req;');
    expect(nn.warnings.join('\n')).toMatch(/t\.r has domain req, which is NOT NULL, and no default: .*SQLSTATE 23502/);
    // a domain constrained later in the file counts from then on
    const later = classify('CREATE DOMAIN plain AS int;\nALTER TABLE t ADD COLUMN a plain;\nALTER DOMAIN plain ADD CONSTRAINT c CHECK (VALUE > 0);\nALTER TABLE t ADD COLUMN b plain;');
    expect(later.operations.map((o) => o.type)).toEqual(['CREATE_DOMAIN', 'ADD_COLUMN', 'ALTER_DOMAIN_ADD_CONSTRAINT', 'ADD_COLUMN_DOMAIN']);
  });
  test('a domain without constraints, or on a table made in the file, does not', () => {
    expect(op(classify('CREATE DOMAIN plain AS int;\nALTER TABLE t ADD COLUMN a plain;'), 'ADD_COLUMN')).toMatchObject({ classification: 'safe' });
    expect(classify('CREATE DOMAIN pos AS int CHECK (VALUE > 0);\nCREATE TABLE n (id int);\nALTER TABLE n ADD COLUMN p pos;').classification).toBe('safe');
  });
});

test('columns a file did not write itself (CREATE TABLE AS, LIKE, INHERITS) are not known to be missing', () => {
  for (const create of ['CREATE TABLE n AS SELECT a, b FROM t;', 'CREATE TABLE n (LIKE t);', 'CREATE TABLE n (id int) INHERITS (t);']) {
    const r = classify(`${create}\nALTER TABLE n ADD COLUMN id2 int, ALTER COLUMN a SET NOT NULL;`);
    expect(r.errors).toEqual([]);
  }
});

test('what PostgreSQL does, as measured: CREATE POLICY and CREATE RULE lock their table; an array column\'s typmod change rewrites', () => {
  expect(op(classify('CREATE POLICY p ON t USING (true);'), 'CREATE_POLICY')).toMatchObject({ lock: 'ACCESS EXCLUSIVE', table: 't', classification: 'safe' });
  expect(op(classify('CREATE RULE r AS ON DELETE TO t DO INSTEAD NOTHING;'), 'CREATE_RULE')).toMatchObject({ lock: 'ACCESS EXCLUSIVE', table: 't', classification: 'risky', backwardCompatible: false });
  // the type a table made earlier in the file gives its column (the operation is then safe, but its kind says what PostgreSQL does)
  const arr = (from: string, to: string) => classify(`CREATE TABLE t (x ${from});\nALTER TABLE t ALTER COLUMN x TYPE ${to};`).operations[1].type;
  expect(arr('varchar(10)[]', 'varchar(20)[]')).toBe('ALTER_COLUMN_TYPE');
  expect(arr('varchar[]', 'text[]')).toBe('ALTER_COLUMN_TYPE');
  expect(arr('varchar(10)', 'varchar(20)')).toBe('ALTER_COLUMN_TYPE_COMPATIBLE');
});

import { serialize } from 'pg-protocol';
import { SessionState } from '../../src/proxy/session-state';
import { analyzeStatement, mayChangeState, splitStatements } from '../../src/proxy/sql-inspect';

// Drive the tracker the way the relay does: client messages in, server messages back.
const body = (m: Buffer): [Buffer, number, number] => [m, 5, m.length];
const client = {
  query: (st: SessionState, sql: string) => st.onQuery(...body(serialize.query(sql))),
  parse: (st: SessionState, name: string, text: string) => st.onParse(...body(serialize.parse({ name, text }))),
  bind: (st: SessionState, statement: string, values: string[] = []) => { if (st.wantBind) st.onBind(...body(serialize.bind({ statement, values }))); },
  execute: (st: SessionState, portal = '') => st.onExecute(...body(serialize.execute({ portal }))),
  closeStatement: (st: SessionState, name: string) => st.onClose(...body(serialize.close({ type: 'S', name }))),
  sync: (st: SessionState) => st.onSync(),
};
const server = {
  complete: (st: SessionState, tag: string) => { const b = Buffer.from(tag + '\0'); st.onCompletion(b, 0, b.length); },
  /** a DataRow of text values */
  row: (st: SessionState, values: string[]) => {
    if (!st.wantRows) return;
    const parts = [Buffer.alloc(2)];
    parts[0].writeInt16BE(values.length);
    for (const v of values) { const l = Buffer.alloc(4); l.writeInt32BE(Buffer.byteLength(v)); parts.push(l, Buffer.from(v)); }
    const b = Buffer.concat(parts);
    st.onDataRow(b, 0, b.length);
  },
  ready: (st: SessionState, status: 'I' | 'T' | 'E') => st.onReadyForQuery(status.charCodeAt(0)),
  error: (st: SessionState) => st.onError(),
};

function fresh(): SessionState { return new SessionState(new Map([['user', 'app'], ['database', 'app']])); }

/** one simple query and the server's answer: a tag per statement that succeeded, then an optional error */
function simple(st: SessionState, sql: string, tags: string[], opts: { error?: boolean; status?: 'I' | 'T' | 'E' } = {}): void {
  client.query(st, sql);
  for (const t of tags) server.complete(st, t);
  if (opts.error) server.error(st);
  server.ready(st, opts.status ?? 'I');
}

describe('SessionState', () => {
  test('keeps a session-level SET once the server confirmed it', () => {
    const st = fresh();
    simple(st, 'SET search_path = app, public', ['SET']);
    simple(st, "set SESSION statement_timeout TO '5s'", ['SET']);
    simple(st, 'SET LOCAL work_mem = 1000', ['SET'], { status: 'T' });
    simple(st, 'SET TIME ZONE UTC', ['SET']);
    expect(st.settings).toEqual(new Map([
      ['search_path', 'SET search_path = app, public'],
      ['statement_timeout', "set SESSION statement_timeout TO '5s'"],
      ['timezone', 'SET TIME ZONE UTC'],
    ]));
  });

  test('ignores a SET that failed', () => {
    const st = fresh();
    simple(st, 'SET no_such_setting = 1', [], { error: true });
    expect(st.settings.size).toBe(0);
  });

  test('applies SET with its transaction: kept on COMMIT, dropped on ROLLBACK or error', () => {
    const st = fresh();
    simple(st, 'BEGIN', ['BEGIN'], { status: 'T' });
    simple(st, 'SET a.b = 1', ['SET'], { status: 'T' });
    expect(st.settings.size).toBe(0);
    simple(st, 'ROLLBACK', ['ROLLBACK']);
    expect(st.settings.size).toBe(0);

    simple(st, 'BEGIN', ['BEGIN'], { status: 'T' });
    simple(st, 'SET a.b = 2', ['SET'], { status: 'T' });
    simple(st, 'SELECT 1/0', [], { error: true, status: 'E' });
    simple(st, 'COMMIT', ['ROLLBACK']); // COMMIT of a failed transaction rolls back
    expect(st.settings.size).toBe(0);

    simple(st, 'BEGIN', ['BEGIN'], { status: 'T' });
    simple(st, 'SET a.b = 3', ['SET'], { status: 'T' });
    simple(st, 'COMMIT', ['COMMIT']);
    expect(st.settings.get('a.b')).toBe('SET a.b = 3');
  });

  test('follows each statement of a multi-statement query', () => {
    const st = fresh();
    simple(st, 'SELECT 1; SET x.y = 1; SELECT 1/0', ['SELECT 1', 'SET'], { error: true });
    expect(st.settings.size).toBe(0); // the implicit transaction was rolled back
    simple(st, "SELECT ';'; SET x.y = 2; -- SET x.z = 3", ['SELECT 1', 'SET']);
    expect([...st.settings.keys()]).toEqual(['x.y']);
  });

  test('RESET, RESET ALL and DISCARD ALL', () => {
    const st = fresh();
    simple(st, 'SET a.x = 1; SET a.y = 2; SET a.z = 3', ['SET', 'SET', 'SET']);
    simple(st, 'RESET a.x', ['RESET']);
    expect([...st.settings.keys()]).toEqual(['a.y', 'a.z']);
    simple(st, 'RESET ALL', ['RESET']);
    expect(st.settings.size).toBe(0);
    simple(st, 'SET a.x = 1', ['SET']);
    simple(st, 'LISTEN ch', ['LISTEN']);
    simple(st, 'PREPARE p AS SELECT 1', ['PREPARE']);
    simple(st, 'DISCARD ALL', ['DISCARD ALL']);
    expect(st.snapshot()).toMatchObject({ settings: {}, prepared: [], listens: [], pinned: [] });
  });

  test('tracks named prepared statements from Parse and Close, including pipelined failures', () => {
    const st = fresh();
    client.parse(st, '', 'SELECT 1');         // unnamed: not tracked, but acknowledged in order
    client.parse(st, 's1', 'SELECT $1::int');
    client.sync(st);
    client.parse(st, 's2', 'SELECT * FROM missing');
    client.parse(st, 's3', 'SELECT 3');        // skipped by the server after the error
    client.sync(st);
    client.parse(st, 's4', 'SELECT 4');
    client.sync(st);
    st.onParseComplete(); st.onParseComplete(); server.ready(st, 'I');
    server.error(st); server.ready(st, 'I');
    st.onParseComplete(); server.ready(st, 'I');
    expect([...st.prepared.keys()]).toEqual(['s1', 's4']);
    const replay = st.replayParseMessages();
    expect(replay[0]).toEqual(serialize.parse({ name: 's1', text: 'SELECT $1::int' }));
    client.closeStatement(st, 's1');
    client.sync(st);
    st.onCloseComplete(); server.ready(st, 'I');
    expect([...st.prepared.keys()]).toEqual(['s4']);
    expect(st.idle).toBe(true);
  });

  test('SQL PREPARE and DEALLOCATE; DEALLOCATE ALL clears protocol-level statements too', () => {
    const st = fresh();
    simple(st, 'PREPARE q1 (int) AS SELECT $1', ['PREPARE']);
    simple(st, 'prepare "Q2" as select 2', ['PREPARE']);
    client.parse(st, 'p1', 'SELECT 1'); client.sync(st); st.onParseComplete(); server.ready(st, 'I');
    expect([...st.prepared.keys()]).toEqual(['q1', 'Q2', 'p1']);
    simple(st, 'DEALLOCATE q1', ['DEALLOCATE']);
    expect([...st.prepared.keys()]).toEqual(['Q2', 'p1']);
    expect(st.replaySql()).toEqual(['prepare "Q2" as select 2']);
    simple(st, 'DEALLOCATE ALL', ['DEALLOCATE ALL']);
    expect(st.prepared.size).toBe(0);
  });

  test('LISTEN / UNLISTEN, replayed with quoted names', () => {
    const st = fresh();
    simple(st, 'LISTEN jobs', ['LISTEN']);
    simple(st, 'LISTEN "Mixed Case"', ['LISTEN']);
    simple(st, 'LISTEN other', ['LISTEN']);
    simple(st, 'UNLISTEN other', ['UNLISTEN']);
    expect(st.replaySql()).toEqual(['LISTEN "jobs"', 'LISTEN "Mixed Case"']);
    simple(st, 'UNLISTEN *', ['UNLISTEN']);
    expect(st.listens.size).toBe(0);
  });

  test('marks sessions pinned by state that cannot move, and unpins when it is gone', () => {
    const st = fresh();
    simple(st, 'CREATE TEMP TABLE t (id int)', ['CREATE TABLE']);
    simple(st, 'BEGIN', ['BEGIN'], { status: 'T' });
    simple(st, 'DECLARE c1 CURSOR WITH HOLD FOR SELECT 1', ['DECLARE CURSOR'], { status: 'T' });
    simple(st, 'COMMIT', ['COMMIT']);
    simple(st, 'SELECT pg_advisory_lock(42)', ['SELECT 1']);
    simple(st, 'SELECT pg_advisory_xact_lock(42)', ['SELECT 1']);
    expect(st.pinnedReasons()).toEqual(['temporary table', 'WITH HOLD cursor', 'session advisory lock']);
    simple(st, 'CLOSE c1', ['CLOSE CURSOR']);
    simple(st, 'SELECT pg_advisory_unlock_all()', ['SELECT 1']);
    simple(st, 'DISCARD TEMP', ['DISCARD TEMP']);
    expect(st.pinnedReasons()).toEqual([]);
    simple(st, 'BEGIN', ['BEGIN'], { status: 'T' });
    simple(st, "PREPARE TRANSACTION 'x'", ['PREPARE TRANSACTION']);
    expect(st.pinnedReasons()).toEqual(['prepared transaction']);
  });

  test('does not pin for an advisory lock that failed', () => {
    const st = fresh();
    simple(st, 'SELECT pg_advisory_lock(1/0)', [], { error: true });
    expect(st.pinnedReasons()).toEqual([]);
  });

  test('tracks SET sent through the extended protocol', () => {
    const st = fresh();
    client.parse(st, '', 'SET search_path TO myschema');
    client.bind(st, '');
    client.execute(st);
    client.sync(st);
    st.onParseComplete();
    server.complete(st, 'SET');
    server.ready(st, 'I');
    expect(st.settings.get('search_path')).toBe('SET search_path TO myschema');
    // a plain statement afterwards stops the tracking of Bind
    client.parse(st, '', 'SELECT 1');
    expect(st.wantBind).toBe(false);
  });

  test('follows the transaction status and what is in flight', () => {
    const st = fresh();
    client.query(st, 'BEGIN');
    expect(st.idle).toBe(false);
    server.complete(st, 'BEGIN');
    server.ready(st, 'T');
    expect(st.txStatus).toBe('T');
    expect(st.idle).toBe(false);
    simple(st, 'COMMIT', ['COMMIT']);
    expect(st.idle).toBe(true);
  });
});

describe('SessionState follows PostgreSQL exactly', () => {
  test('ROLLBACK TO SAVEPOINT undoes a SET made after the savepoint, RELEASE keeps it', () => {
    const st = fresh();
    simple(st, 'BEGIN', ['BEGIN'], { status: 'T' });
    simple(st, "SET x.v = 'kept'", ['SET'], { status: 'T' });
    simple(st, 'SAVEPOINT s', ['SAVEPOINT'], { status: 'T' });
    simple(st, "SET x.v = 'undone'", ['SET'], { status: 'T' });
    simple(st, 'ROLLBACK TO s', ['ROLLBACK'], { status: 'T' });
    simple(st, 'COMMIT', ['COMMIT']);
    expect(st.settings.get('x.v')).toBe("SET x.v = 'kept'");
    simple(st, "BEGIN; SAVEPOINT a; SET x.v = 'released'; RELEASE a; COMMIT", ['BEGIN', 'SAVEPOINT', 'SET', 'RELEASE', 'COMMIT']);
    expect(st.settings.get('x.v')).toBe("SET x.v = 'released'");
    // an error inside the savepoint, recovered by ROLLBACK TO
    simple(st, 'BEGIN; SAVEPOINT b', ['BEGIN', 'SAVEPOINT'], { status: 'T' });
    simple(st, "SET x.v = 'lost'", ['SET'], { status: 'T' });
    simple(st, 'SELECT 1/0', [], { error: true, status: 'E' });
    simple(st, 'ROLLBACK TO b', ['ROLLBACK'], { status: 'T' });
    simple(st, 'COMMIT', ['COMMIT']);
    expect(st.settings.get('x.v')).toBe("SET x.v = 'released'");
  });

  test('each statement of a simple query counts: a COMMIT inside keeps what came before it', () => {
    const st = fresh();
    simple(st, 'SET a.x = 1; COMMIT; BEGIN; SET a.y = 2; ROLLBACK', ['SET', 'COMMIT', 'BEGIN', 'SET', 'ROLLBACK']);
    expect([...st.settings.keys()]).toEqual(['a.x']);
    simple(st, 'SET a.z = 3; COMMIT; SET a.w = 4; SELECT 1/0', ['SET', 'COMMIT', 'SET'], { error: true });
    expect([...st.settings.keys()]).toEqual(['a.x', 'a.z']);
  });

  test('SET LOCAL leaves no trace; a later SET in the same transaction wins', () => {
    const st = fresh();
    simple(st, 'BEGIN; SET statement_timeout = 1000; SET LOCAL statement_timeout = 2000; COMMIT', ['BEGIN', 'SET', 'SET', 'COMMIT']);
    expect(st.settings.get('statement_timeout')).toBe('SET statement_timeout = 1000');
    simple(st, 'BEGIN; SET LOCAL work_mem = 100; COMMIT', ['BEGIN', 'SET', 'COMMIT']);
    expect(st.settings.has('work_mem')).toBe(false);
  });

  test('GUC names are folded: SET "TimeZone" then RESET timezone', () => {
    const st = fresh();
    simple(st, `SET "TimeZone" = 'Asia/Tokyo'`, ['SET']);
    expect([...st.settings.keys()]).toEqual(['timezone']);
    simple(st, 'RESET timezone', ['RESET']);
    expect(st.settings.size).toBe(0);
  });

  test('SET SESSION CHARACTERISTICS sets the default_transaction_* GUCs; RESET of one drops it', () => {
    const st = fresh();
    simple(st, 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY', ['SET']);
    expect([...st.settings.keys()]).toEqual(['default_transaction_isolation', 'default_transaction_read_only']);
    simple(st, 'RESET default_transaction_isolation', ['RESET']);
    expect([...st.settings.keys()]).toEqual(['default_transaction_read_only']);
  });

  test('RESET ALL keeps role and session_authorization; SET SESSION AUTHORIZATION resets role; DISCARD ALL resets both', () => {
    const st = fresh();
    simple(st, 'SET ROLE limited', ['SET']);
    simple(st, 'SET work_mem = 100', ['SET']);
    simple(st, 'RESET ALL', ['RESET']);
    expect([...st.settings.keys()]).toEqual(['role']);
    simple(st, 'SET SESSION AUTHORIZATION bob', ['SET']);
    expect([...st.settings.keys()]).toEqual(['session_authorization']);
    simple(st, 'SET ROLE limited', ['SET']);
    simple(st, 'DISCARD ALL', ['DISCARD ALL']);
    expect(st.settings.size).toBe(0);
  });

  test('set_config(…, false) in any query, with literals or bound parameters; set_config(…, true) is local', () => {
    const st = fresh();
    simple(st, "SELECT set_config('search_path', 'other, public', false)", ['SELECT 1']);
    expect(st.settings.get('search_path')).toBe("SELECT pg_catalog.set_config('search_path', 'other, public', false)");
    simple(st, "SELECT set_config('work_mem', '64kB', true)", ['SELECT 1']);
    expect(st.settings.has('work_mem')).toBe(false);
    client.parse(st, 'tenant', 'SELECT set_config($1, $2, false)');
    client.sync(st); st.onParseComplete(); server.ready(st, 'I');
    client.bind(st, 'tenant', ['app.tenant', '42']);
    client.execute(st);
    client.sync(st);
    server.complete(st, 'SELECT 1');
    server.ready(st, 'I');
    expect(st.settings.get('app.tenant')).toBe("SELECT pg_catalog.set_config('app.tenant', '42', false)");
    expect(st.pinnedReasons()).toEqual([]);
    // computed arguments cannot be followed: the session is pinned, not silently wrong
    simple(st, "SELECT set_config('app.x', name, false) FROM pg_roles LIMIT 1", ['SELECT 1']);
    expect(st.pinnedReasons()).toEqual(['settings changed in a way pgflip cannot follow']);
  });

  test('a custom GUC named once exists as a placeholder, even after ROLLBACK', () => {
    const st = fresh();
    simple(st, 'BEGIN; SET a.b = 1; ROLLBACK', ['BEGIN', 'SET', 'ROLLBACK']);
    expect(st.settings.size).toBe(0);
    expect([...st.carried.placeholders]).toEqual(['a.b']);
  });

  test('the unnamed statement lives until the next unnamed Parse or simple Query', () => {
    const st = fresh();
    const parse = serialize.parse({ name: '', text: 'SELECT $1::int' });
    client.parse(st, '', 'SELECT $1::int');
    client.sync(st);
    st.onParseComplete();
    server.ready(st, 'I');
    expect(st.carried.unnamed).toEqual(parse);
    client.bind(st, '');
    client.execute(st);
    client.sync(st);
    server.complete(st, 'SELECT 1');
    server.ready(st, 'I');
    expect(st.carried.unnamed).toEqual(parse);
    simple(st, 'SELECT 1', ['SELECT 1']);
    expect(st.carried.unnamed).toBeNull();
  });

  test('COPY FROM STDIN over the extended protocol: the Sync PostgreSQL ignores is not counted', () => {
    const st = fresh();
    client.parse(st, '', 'COPY t FROM STDIN');
    client.bind(st, '');
    client.execute(st);
    client.sync(st);             // ignored by the server: it is in COPY mode
    st.onParseComplete();
    st.onCopyIn();               // CopyInResponse
    expect(st.idle).toBe(false); // no switch point in the middle of a COPY
    st.onCopyEnd();              // the client's CopyDone
    client.sync(st);
    server.complete(st, 'COPY 2');
    server.ready(st, 'I');
    expect(st.idle).toBe(true);
    // and a simple-query COPY keeps its own ReadyForQuery
    client.query(st, 'COPY t FROM STDIN');
    st.onCopyIn();
    st.onCopyEnd();
    server.complete(st, 'COPY 1');
    server.ready(st, 'I');
    expect(st.idle).toBe(true);
  });

  test('advisory locks are counted: lock/unlock pairs unpin, try_lock counts only when it got the lock', () => {
    const st = fresh();
    const call = (sql: string, values: string[]) => { client.query(st, sql); server.row(st, values); server.complete(st, 'SELECT 1'); server.ready(st, 'I'); };
    call('SELECT pg_advisory_lock(1), pg_advisory_lock(1)', ['', '']);
    call('SELECT pg_advisory_unlock(1)', ['t']);
    expect(st.pinnedReasons()).toEqual(['session advisory lock']);
    call('SELECT pg_advisory_unlock(1)', ['t']);
    expect(st.pinnedReasons()).toEqual([]);
    call('SELECT pg_advisory_unlock(1)', ['f']);
    call('SELECT pg_try_advisory_lock(7)', ['f']);
    expect(st.pinnedReasons()).toEqual([]);
    call('SELECT pg_try_advisory_lock(7)', ['t']);
    expect(st.advisoryLocks).toBe(1);
    call('SELECT pg_advisory_unlock_all()', ['']);
    expect(st.pinnedReasons()).toEqual([]);
    call('SELECT pg_advisory_xact_lock(3)', ['']);
    expect(st.pinnedReasons()).toEqual([]);
    // a lock in a query whose result cannot be read pins until unlock_all
    simple(st, 'SELECT id FROM jobs WHERE pg_try_advisory_lock(id) LIMIT 1', ['SELECT 1']);
    expect(st.pinnedReasons()).toEqual(['session advisory lock']);
    call('SELECT pg_advisory_unlock_all()', ['']);
    expect(st.pinnedReasons()).toEqual([]);
  });

  test('a statement name closed and parsed again in one batch takes the new statement', () => {
    const st = fresh();
    client.parse(st, 'q', 'SELECT 1');
    client.sync(st); st.onParseComplete(); server.ready(st, 'I');
    client.closeStatement(st, 'q');
    client.parse(st, 'q', 'SET x.y = 1');
    client.bind(st, 'q');
    client.execute(st);
    client.sync(st);
    st.onCloseComplete(); st.onParseComplete();
    server.complete(st, 'SET');
    server.ready(st, 'I');
    expect(st.settings.get('x.y')).toBe('SET x.y = 1');
    expect(st.replayParseMessages()).toEqual([serialize.parse({ name: 'q', text: 'SET x.y = 1' })]);
  });

  test('temporary tables and WITH HOLD cursors pin only when their transaction committed', () => {
    const st = fresh();
    simple(st, 'BEGIN; CREATE TEMP TABLE t (a int); ROLLBACK', ['BEGIN', 'CREATE TABLE', 'ROLLBACK']);
    simple(st, 'BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; ROLLBACK', ['BEGIN', 'DECLARE CURSOR', 'ROLLBACK']);
    expect(st.pinnedReasons()).toEqual([]);
  });
});

describe('SQL inspection', () => {
  const may = (sql: string) => { const b = Buffer.from(sql + '\0'); return mayChangeState(b, 0, b.length); };

  test('the byte check lets ordinary queries through without analysis', () => {
    expect(may('SELECT abalance FROM pgbench_accounts WHERE aid = 1;')).toBe(false);
    expect(may('UPDATE t SET x = 1')).toBe(false);
    expect(may('  set x = 1')).toBe(true);
    expect(may('/* hint */ SET x = 1')).toBe(true);
    expect(may('select 1; set x = 1')).toBe(true);
    expect(may('SELECT PG_ADVISORY_LOCK(1)')).toBe(true);
    expect(may('Listen ch')).toBe(true);
    expect(may('SETTINGS')).toBe(false);
  });

  test('splits statements on semicolons outside quotes, dollar quotes and comments', () => {
    expect(splitStatements(`SELECT 'a;b'; SELECT "x;y" FROM t; DO $$ BEGIN PERFORM 1; END $$; SELECT E'\\';'; /* ; */ SELECT 2 -- ;\n;`))
      .toEqual([`SELECT 'a;b'`, `SELECT "x;y" FROM t`, `DO $$ BEGIN PERFORM 1; END $$`, `SELECT E'\\';'`, `/* ; */ SELECT 2 -- ;`]);
    expect(splitStatements(' ; -- only a comment\n')).toEqual([]);
  });

  test('recognises the statement forms that change state', () => {
    expect(analyzeStatement('SET SESSION AUTHORIZATION bob')).toMatchObject({ k: 'set', name: 'session_authorization' });
    expect(analyzeStatement('SET ROLE bob')).toMatchObject({ k: 'set', name: 'role' });
    // GUC names are case-insensitive, quoted or not
    expect(analyzeStatement('SET "MyApp".Tenant = 3')).toMatchObject({ k: 'set', name: 'myapp.tenant' });
    expect(analyzeStatement('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE')).toBeUndefined();
    expect(analyzeStatement('SET CONSTRAINTS ALL DEFERRED')).toBeUndefined();
    expect(analyzeStatement('RESET TIME ZONE')).toEqual({ k: 'reset', name: 'timezone' });
    expect(analyzeStatement('CREATE GLOBAL TEMPORARY TABLE t (a int)')).toEqual({ k: 'tempObject' });
    expect(analyzeStatement('CREATE TEMP TABLE t (a int) ON COMMIT DROP')).toBeUndefined();
    expect(analyzeStatement('SELECT 1 INTO TEMP t')).toEqual({ k: 'tempObject' });
    expect(analyzeStatement('CREATE TABLE t (a int)')).toBeUndefined();
    expect(analyzeStatement('DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1')).toBeUndefined();
    expect(analyzeStatement('DEALLOCATE PREPARE p')).toEqual({ k: 'deallocate', name: 'p' });
  });
});

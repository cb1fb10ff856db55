/**
 * pgjdbc (Debian libpostgresql-jdbc-java) through the proxy with prepareThreshold=1 (named
 * server-side statements from the first execution) and sslmode=disable: batch inserts,
 * transactions, SQLStates. PgjdbcClient.java is compiled with javac into a temp dir.
 */
import path from 'node:path';
import { ClientEnv, requireTool, runProgram, startClientEnv, Target } from './env';

const JDBC_JAR = '/usr/share/java/postgresql.jar';

let env: ClientEnv;
let java: string;
let classDir: string;

beforeAll(async () => {
  requireTool(JDBC_JAR, 'libpostgresql-jdbc-java');
  const javac = requireTool('javac', 'default-jdk-headless');
  java = requireTool('java', 'default-jdk-headless');
  env = await startClientEnv();
  classDir = path.join(env.tmp, 'classes');
  const r = await runProgram(javac, ['-d', classDir, '-cp', JDBC_JAR, path.join(__dirname, 'PgjdbcClient.java')]);
  if (r.code !== 0) throw new Error(`javac PgjdbcClient.java failed:\n${r.stderr}`);
});
afterAll(async () => { await env?.stop(); });

async function session(t: Target): Promise<string> {
  const q = new URLSearchParams({ user: t.user, password: t.password, prepareThreshold: '1', sslmode: 'disable', ApplicationName: 'pgjdbc-test' });
  const url = `jdbc:postgresql://${t.host}:${t.port}/${t.database}?${q}`;
  const r = await runProgram(java, ['-cp', `${classDir}:${JDBC_JAR}`, 'PgjdbcClient', url]);
  return r.code === 0 ? r.stdout : `exit ${r.code}\n${r.stdout}\n${r.stderr}`;
}

describe('pgjdbc', () => {
  it('sees the same batches, transactions and SQLStates through the proxy as directly', async () => {
    const { direct, proxy, pooled } = await env.compare('DROP TABLE IF EXISTS jdbc_items', session);
    expect(direct).toBe([
      'batch: 200 statements, 200 rows',
      'select 7: 7|item 7|0.70',
      'select 150: 150|item 150|15.00',
      'select 999: (no row)',
      'select 7: 7|item 7|0.70',
      'named server-side statements: true',
      'updated: 10',
      'error in transaction: 23502 ERROR: null value in column "name" of relation "jdbc_items" violates not-null constraint',
      'aborted transaction: 25P02 ERROR: current transaction is aborted, commands ignored until end of transaction block',
      'after rollback: 200 rows, total 3010.00',
      'duplicate key: 23505 ERROR: duplicate key value violates unique constraint "jdbc_items_pkey"',
      'division by zero: 22012 ERROR: division by zero',
      'undefined table: 42P01 ERROR: relation "jdbc_nowhere" does not exist',
      'prepared error: 22012',
      'prepared after error: 2',
      'query timeout: 57014 ERROR: canceling statement due to user request',
      'after cancel: usable',
      'notice: 00000 jdbc notice',
      '',
    ].join('\n'));
    expect(proxy).toBe(direct);
    expect(pooled).toBe(direct);
  });
});

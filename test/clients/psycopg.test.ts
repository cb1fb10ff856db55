/**
 * psycopg 3 (Debian python3-psycopg) through the proxy: server-side binding, prepare=True,
 * pipeline mode, COPY and notifies. The session itself is psycopg_client.py.
 */
import path from 'node:path';
import { ClientEnv, requireTool, runProgram, startClientEnv, Target } from './env';

// The system interpreter: Debian's psycopg is installed for it, not for other pythons on PATH.
const PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(__dirname, 'psycopg_client.py');

let env: ClientEnv;
beforeAll(async () => {
  requireTool(PYTHON, 'python3');
  const probe = await runProgram(PYTHON, ['-c', 'import psycopg; assert psycopg.Pipeline.is_supported()']);
  if (probe.code !== 0) throw new Error(`psycopg 3 with pipeline support is missing: install the Debian package python3-psycopg\n${probe.stderr}`);
  env = await startClientEnv();
});
afterAll(async () => { await env?.stop(); });

async function session(t: Target): Promise<Record<string, unknown>> {
  const conninfo = `host=${t.host} port=${t.port} user=${t.user} password=${t.password} dbname=${t.database} sslmode=prefer`;
  const r = await runProgram(PYTHON, [SCRIPT, conninfo], { env: t.env });
  if (r.code !== 0) return { exit: r.code, stderr: r.stderr };
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe('psycopg 3', () => {
  it('sees the same results, errors, COPY data and notifies through the proxy as directly', async () => {
    const { direct, proxy, pooled } = await env.compare('DROP TABLE IF EXISTS pg3_items', session);
    expect(direct).toEqual({
      bound: [42, 'héllo', '00ff', '1.25'],
      named_params: [[42]],
      binary_result: ['0102', 'bin'],
      prepared_rows: [[[2, 'item 2', '3.00']], [[4, 'item 4', '6.00']], []],
      prepared_statements: [
        ['_pg3_0', 'INSERT INTO pg3_items (id, name, price) VALUES ($1, $2, $3)'],
        ['_pg3_1', 'SELECT id, name, price::text FROM pg3_items WHERE id = $1'],
      ],
      pipeline_count: 30,
      pipeline_error: { sqlstate: '23505', message: 'duplicate key value violates unique constraint "pg3_items_pkey"', class: 'UniqueViolation' },
      after_pipeline: null, // one Sync for the block: the error rolls back the insert before it
      copy_out: [['200', 'copied 200\twith tab', '\\xc8c8c8'], ['201', 'copied 201\twith tab', '\\xc9c9c9'], ['202', 'copied 202\twith tab', '\\xcacaca']],
      copy_out_binary_bytes: expect.any(Number),
      copied: [1000, 3000],
      copy_error: { sqlstate: '22P02', message: 'invalid input syntax for type integer: "not a number"', class: 'InvalidTextRepresentation' },
      copy_fail: { sqlstate: '57014', message: 'COPY from stdin failed: error from Python: RuntimeError - client gave up', class: 'QueryCanceled' },
      after_copy_fail: 0,
      error: { sqlstate: '22012', message: 'division by zero', class: 'DivisionByZero' },
      notifies: [['pg3_channel', 'hello'], ['pg3_channel', 'from a transaction'], ['pg3_channel', 'second in transaction']],
      notices: [['NOTICE', '00000', 'notice 1']],
      parameter_status: {
        server_version: true, server_encoding: 'UTF8', client_encoding: 'UTF8', DateStyle: 'ISO, MDY', TimeZone: expect.any(String),
        IntervalStyle: 'postgres', integer_datetimes: 'on', standard_conforming_strings: 'on', application_name: 'psycopg-test',
      },
    });
    expect(proxy).toEqual(direct);
    // in transaction mode the server knows psycopg's statements under pgflip's names (docs/proxy.md, Transaction pooling)
    const serverNamed = direct.prepared_statements as string[][];
    expect(pooled).toEqual({ ...direct, prepared_statements: serverNamed.map(([, text]) => [expect.stringMatching(/^pgflip_\d+$/), text]) });
  });
});

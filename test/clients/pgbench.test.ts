/**
 * pgbench through the proxy: initialisation (COPY FROM STDIN, VACUUM, DDL) and the TPC-B-like
 * workload in all three query modes, with 4 clients, without a single failed transaction.
 */
import { ClientEnv, requireTool, runProgram, startClientEnv, Target } from './env';

let env: ClientEnv;
let pgbench: string;

beforeAll(async () => {
  pgbench = requireTool('pgbench', 'postgresql-client');
  env = await startClientEnv();
});
afterAll(async () => { await env?.stop(); });

const DROP_TABLES = 'DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers';

/** The lines of `pgbench -i` output that do not depend on timing. */
function initSummary(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l && !/elapsed|done in/.test(l));
}

interface BenchOutcome { code: number; mode: string; processed: number; failed: number; aborted: boolean }

function parseRun(r: { code: number; stdout: string; stderr: string }): BenchOutcome {
  const out = r.stdout + r.stderr;
  const mode = /query mode: (\w+)/.exec(out)?.[1] ?? '';
  const processed = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? NaN);
  return { code: r.code, mode, processed, failed, aborted: /aborted/.test(out) };
}

describe('pgbench', () => {
  it('initialises the same tables through the proxy as directly', async () => {
    const { direct, proxy, pooled } = await env.compare(DROP_TABLES, async (t: Target) => {
      const r = await runProgram(pgbench, ['-i', '-q', '-s', '1'], { env: t.env });
      const [row] = await env.blue.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_accounts');
      return { code: r.code, lines: initSummary(r.stderr), accounts: Number(row.n) };
    });
    expect(direct.code).toBe(0);
    expect(direct.accounts).toBe(100000);
    expect(direct.lines).toEqual(expect.arrayContaining(['creating tables...', 'vacuuming...', 'creating primary keys...']));
    expect(proxy).toEqual(direct);
    expect(pooled).toEqual(direct);
  });

  for (const mode of ['simple', 'extended', 'prepared']) {
    it(`runs -M ${mode} with 4 clients and no failed transaction`, async () => {
      const { direct, proxy, pooled } = await env.compare('SELECT 1', async (t: Target) =>
        parseRun(await runProgram(pgbench, ['-n', '-c', '4', '-j', '2', '-T', '2', '-M', mode], { env: t.env })));
      for (const o of [direct, proxy, pooled]) {
        expect(o).toEqual({ code: 0, mode, processed: expect.any(Number), failed: 0, aborted: false });
        expect(o.processed).toBeGreaterThan(0);
      }
    });
  }
});

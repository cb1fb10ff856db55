/**
 * Random client programs drawn from a grammar of client behaviour, from a
 * seed: the same seed gives the same programs (and the same flip schedule).
 * A program is a list of steps; each step's observable result (rows as text,
 * or an error's SQLSTATE) must be the same through pgflip with flips as
 * directly against PostgreSQL.
 */

/** mulberry32: small, fast, seedable */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type ClientKind = 'node-postgres' | 'postgres.js' | 'raw';

export type Step =
  /** one simple-protocol query string (maybe several statements) */
  | { k: 'simple'; sql: string; pins?: boolean; unpins?: boolean }
  /** one statement through the driver's extended protocol: unnamed, or a named prepared statement */
  | { k: 'extended'; sql: string; params: string[]; name?: string }
  /** raw: Parse("")+Describe+Sync now, Bind("")+Execute+Sync later (pgx describe-exec, PQprepare("")) */
  | { k: 'describeExec'; sql: string; params: string[] }
  /** raw: COPY FROM STDIN over the extended protocol (Sync after Execute, Sync after CopyDone) */
  | { k: 'copyInExtended'; rows: number }
  /** raw: COPY FROM STDIN over the simple protocol */
  | { k: 'copyInSimple'; rows: number }
  /** COPY … TO STDOUT */
  | { k: 'copyOut'; rows: number }
  /** raw: a portal read two rows at a time inside a transaction */
  | { k: 'rowLimit'; rows: number }
  /** raw: a CancelRequest for a long statement */
  | { k: 'cancel' }
  /** read everything the session carries */
  | { k: 'observe' };

/** the settings a program changes (and `observe` reads); t.* are placeholders */
const GUCS: Array<{ name: string; sqlName: string[]; values: string[] }> = [
  { name: 'search_path', sqlName: ['search_path', 'SEARCH_PATH', 'SCHEMA'], values: ["other, public", 'public', '"$user", public', "'other'"] },
  { name: 'statement_timeout', sqlName: ['statement_timeout', '"Statement_Timeout"'], values: ["'12s'", '4000', "'1min'"] },
  { name: 'work_mem', sqlName: ['work_mem'], values: ["'8MB'", '2048', "'64kB'"] },
  { name: 'TimeZone', sqlName: ['"TimeZone"', 'timezone', 'TIME ZONE'], values: ["'Asia/Tokyo'", "'UTC'", "'Europe/Paris'"] },
  { name: 'DateStyle', sqlName: ['DateStyle'], values: ["'ISO, DMY'", "'German'", "'SQL, MDY'"] },
  { name: 't.a', sqlName: ['t.a', '"T".a'], values: ["'one'", "'two'", "'x y'"] },
  { name: 't.b', sqlName: ['t.b'], values: ["'1'", "'2'"] },
];

/** what `observe` reads: current role and session user, every GUC above, SQL-prepared and program-named statements, listeners, cursors */
export const OBSERVE_SQL = `SELECT current_user AS cu, session_user AS su, ${GUCS.map((g, i) => `current_setting('${g.name}', true) AS g${i}`).join(', ')},
  current_setting('default_transaction_isolation') AS iso, current_setting('default_transaction_read_only') AS ro,
  (SELECT string_agg(name || ':' || statement, ',' ORDER BY name) FROM pg_catalog.pg_prepared_statements WHERE from_sql OR name LIKE 'q\\_%') AS prepared,
  (SELECT string_agg(c, ',' ORDER BY c) FROM pg_catalog.pg_listening_channels() c) AS listens,
  (SELECT string_agg(name, ',' ORDER BY name) FROM pg_catalog.pg_cursors) AS cursors`;

export interface Program { client: ClientKind; steps: Step[] }

/** the session holds state that pins it after step `i` ran (a pinned window of the program) */
export function pinnedAfter(p: Program, i: number): boolean {
  for (let j = Math.min(i, p.steps.length - 1); j >= 0; j--) {
    const s = p.steps[j];
    if (s.k === 'simple' && s.unpins) return false;
    if (s.k === 'simple' && s.pins) return true;
  }
  return false;
}

export function makeProgram(r: () => number, client: ClientKind, length: number, pins: boolean): Program {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const chance = (p: number) => r() < p;
  const setStmt = (local = false) => {
    const g = pick(GUCS);
    const name = pick(g.sqlName);
    return `SET ${local ? 'LOCAL ' : pick(['', 'SESSION '])}${name}${name === 'TIME ZONE' || name === 'SCHEMA' ? ' ' : pick([' = ', ' TO '])}${name === 'SCHEMA' ? "'other'" : pick(g.values)}`;
  };
  const setConfig = (local: boolean) => {
    const g = pick(GUCS);
    return `SELECT set_config('${pick([g.name, g.name.toUpperCase()])}', '${pick(g.values).replace(/'/g, '')}', ${local})`;
  };
  const reset = () => pick([`RESET ${pick(pick(GUCS).sqlName)}`, 'RESET ALL', 'SET work_mem TO DEFAULT']);
  const privilege = () => pick(['SET ROLE limited', 'RESET ROLE', 'SET SESSION AUTHORIZATION bob', 'RESET SESSION AUTHORIZATION', 'SET SESSION AUTHORIZATION DEFAULT']);
  let savepoints: string[] = [];
  const txBody = (): string[] => {
    const out: string[] = [];
    for (let i = 0, n = 1 + Math.floor(r() * 5); i < n; i++) {
      const x = r();
      if (x < 0.25) out.push(setStmt());
      else if (x < 0.35) out.push(setStmt(true));
      else if (x < 0.45) out.push(setConfig(chance(0.3)));
      else if (x < 0.55) { const s = `s${savepoints.length}`; savepoints.push(s); out.push(`SAVEPOINT ${s}`); } else if (x < 0.63 && savepoints.length) out.push(`ROLLBACK TO ${pick(savepoints)}`);
      else if (x < 0.68 && savepoints.length) { const s = savepoints.pop()!; out.push(`RELEASE SAVEPOINT ${s}`); } else if (x < 0.75) out.push(`LISTEN ch_${Math.floor(r() * 3)}`);
      else if (x < 0.8) out.push(`UNLISTEN ch_${Math.floor(r() * 3)}`);
      else if (x < 0.85) out.push(reset());
      else if (x < 0.9) out.push(privilege());
      else out.push('SELECT 1');
    }
    return out;
  };
  const steps: Step[] = [];
  const simpleOnly = (sql: string): Step => ({ k: 'simple', sql });
  while (steps.length < length) {
    const x = r();
    if (x < 0.12) steps.push(simpleOnly(setStmt()));
    else if (x < 0.18) steps.push(simpleOnly(reset()));
    else if (x < 0.24) steps.push(chance(0.5) ? simpleOnly(setConfig(chance(0.2))) : { k: 'extended', sql: 'SELECT set_config($1, $2, false)', params: [pick(['t.a', 't.b', 'search_path']), pick(['v1', 'other, public', 'v 2'])], name: chance(0.5) ? 'q_cfg' : undefined });
    else if (x < 0.34) {
      // a transaction, each statement its own query; sometimes with an error and a recovery
      savepoints = [];
      steps.push(simpleOnly('BEGIN'));
      for (const s of txBody()) steps.push(simpleOnly(s));
      if (chance(0.2)) {
        steps.push(simpleOnly('SELECT 1/0'));
        steps.push(simpleOnly(savepoints.length && chance(0.5) ? `ROLLBACK TO ${pick(savepoints)}` : 'ROLLBACK'));
      }
      steps.push(simpleOnly(pick(['COMMIT', 'COMMIT', 'ROLLBACK', 'END'])));
    } else if (x < 0.4) {
      // several statements in one query string, transaction control inside
      savepoints = [];
      const parts = [setStmt(), ...(chance(0.5) ? ['COMMIT'] : []), 'BEGIN', ...txBody(), pick(['COMMIT', 'ROLLBACK'])];
      if (chance(0.2)) parts.splice(Math.floor(r() * parts.length), 0, 'SELECT 1/0');
      steps.push(simpleOnly(parts.join('; ')));
    } else if (x < 0.46) steps.push(simpleOnly(pick([`PREPARE p${Math.floor(r() * 3)} AS SELECT $1::int + ${Math.floor(r() * 9)}`, `DEALLOCATE p${Math.floor(r() * 3)}`, `EXECUTE p${Math.floor(r() * 3)}(${Math.floor(r() * 9)})`])));
    else if (x < 0.54) steps.push({ k: 'extended', sql: `SELECT $1::int * ${1 + Math.floor(r() * 5)} AS v`, params: [String(Math.floor(r() * 100))], name: chance(0.6) ? `q_${Math.floor(r() * 3)}` : undefined });
    else if (x < 0.58) steps.push(simpleOnly(pick([`LISTEN ch_${Math.floor(r() * 3)}`, `UNLISTEN ch_${Math.floor(r() * 3)}`, 'UNLISTEN *'])));
    else if (x < 0.62) steps.push(simpleOnly(privilege()));
    else if (x < 0.66) {
      const k = 1000 + Math.floor(r() * 50);
      const sql = pick([`SELECT pg_advisory_lock(${k}), pg_advisory_unlock(${k})`, `SELECT pg_try_advisory_lock(${k})`, `SELECT pg_advisory_unlock(${k})`, 'SELECT pg_advisory_unlock_all()', `SELECT pg_advisory_xact_lock(${k})`]);
      // a lock taken by try_lock pins the session until it is released by the next step
      if (sql.includes('try_advisory_lock')) steps.push({ k: 'simple', sql, pins: true }, { k: 'simple', sql: 'SELECT pg_advisory_unlock_all()', unpins: true });
      else steps.push(simpleOnly(sql));
    } else if (x < 0.7) steps.push({ k: 'copyOut', rows: 1 + Math.floor(r() * 20) });
    else if (x < 0.72 && client !== 'postgres.js') steps.push(simpleOnly(pick(['DISCARD ALL', 'DEALLOCATE ALL', 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'RESET default_transaction_isolation'])));
    else if (x < 0.8 && client === 'raw') {
      steps.push(pick<Step>([
        { k: 'describeExec', sql: 'SELECT $1::text || current_setting(\'t.a\', true) AS v', params: [String(Math.floor(r() * 9))] },
        { k: 'copyInExtended', rows: 1 + Math.floor(r() * 5) },
        { k: 'copyInSimple', rows: 1 + Math.floor(r() * 5) },
        { k: 'rowLimit', rows: 3 + Math.floor(r() * 5) },
        { k: 'cancel' },
      ]));
    } else if (x < 0.83 && pins) {
      // state that pins: taken and dropped again a few steps later (a flip between ends the session)
      const [take, drop] = pick([
        ['CREATE TEMP TABLE tt (x int)', 'DISCARD TEMP'],
        ['DECLARE hc CURSOR WITH HOLD FOR SELECT 1', 'CLOSE hc'],
        ['SELECT pg_advisory_lock(7)', 'SELECT pg_advisory_unlock(7)'],
      ]);
      steps.push({ k: 'simple', sql: take, pins: true }, { k: 'observe' }, { k: 'simple', sql: drop, unpins: true });
    } else steps.push({ k: 'observe' });
    if (chance(0.3)) steps.push({ k: 'observe' });
  }
  steps.push({ k: 'observe' });
  return { client, steps };
}

/**
 * Sends a replay plan (carried.ts) on a backend connection the proxy holds:
 * its simple queries (settings, SQL PREPAREs, LISTENs), then its Parse and
 * Close messages each with its own Sync, all in one write. A failing
 * statement of the SQL part fails the replay (the session would not find what
 * it left); a Parse that fails is reported and skipped, as PostgreSQL itself
 * would fail that statement the next time the session used it (its objects
 * are gone or its settings changed).
 */
import { serialize } from 'pg-protocol';
import type { BackendConnection } from './backend-connect';
import { Carried, emptyCarried, isEmptyPlan, ReplayPlan, replayPlan } from './carried';
import { exchange } from './exchange';
import type { SessionState } from './session-state';

export interface ReplayResult {
  /** Parse/Close messages the backend refused ("SQLSTATE: message") */
  skipped: string[];
}

const SYNC = serialize.sync();

export async function runReplay(conn: BackendConnection, plan: ReplayPlan, timeoutMs = 5000): Promise<ReplayResult> {
  if (isEmptyPlan(plan)) return { skipped: [] };
  const out: Buffer[] = plan.sql.map((q) => serialize.query(q));
  for (const m of plan.messages) out.push(m, SYNC);
  const { errors } = await exchange(conn.socket, Buffer.concat(out), plan.sql.length + plan.messages.length, { timeoutMs, what: 'replay' });
  const fatal = errors.find((e) => e.request < plan.sql.length);
  if (fatal) throw new Error(`replay failed: ${fatal.error} (${plan.sql[fatal.request].slice(0, 200)})`);
  return { skipped: errors.map((e) => e.error) };
}

/**
 * Give a backend a session's state: the difference between what it already
 * carries (`from`, nothing for a fresh connection) and the session's state
 * now. Returns what the backend carries afterwards.
 */
export async function replayState(conn: BackendConnection, state: SessionState, from: Carried = emptyCarried(), timeoutMs = 5000): Promise<Carried> {
  const to = state.snapshotCarried();
  await runReplay(conn, replayPlan(from, to), timeoutMs);
  return to;
}

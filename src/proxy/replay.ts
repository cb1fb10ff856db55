/**
 * Give a fresh backend connection a session's state: its SETs, SQL PREPAREs
 * and LISTENs (one Query each), then its protocol-level prepared statements
 * (the client's own Parse messages) and a Sync. Used by a switch before
 * swapBackend; any error fails the whole replay.
 */
import { serialize } from 'pg-protocol';
import type { BackendConnection } from './backend-connect';
import { exchange } from './exchange';
import type { SessionState } from './session-state';

export async function replayState(conn: BackendConnection, state: SessionState, timeoutMs = 5000): Promise<void> {
  const sql = state.replaySql();
  const parses = state.replayParseMessages();
  if (!sql.length && !parses.length) return;
  const out: Buffer[] = sql.map((q) => serialize.query(q));
  if (parses.length) out.push(...parses, serialize.sync());
  const expectedReady = sql.length + (parses.length ? 1 : 0);
  const { error } = await exchange(conn.socket, Buffer.concat(out), expectedReady, { timeoutMs, what: 'replay' });
  if (error) throw new Error(`replay failed: ${error}`);
}

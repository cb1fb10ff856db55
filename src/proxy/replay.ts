/**
 * Give a fresh backend connection a session's state: its SETs, SQL PREPAREs
 * and LISTENs (one Query each), then its protocol-level prepared statements
 * (the client's own Parse messages) and a Sync. Used by a switch before
 * swapBackend; any error fails the whole replay.
 */
import { serialize } from 'pg-protocol';
import type { BackendConnection } from './backend-connect';
import { parseErrorFields } from './messages';
import type { SessionState } from './session-state';

export async function replayState(conn: BackendConnection, state: SessionState, timeoutMs = 5000): Promise<void> {
  const sql = state.replaySql();
  const parses = state.replayParseMessages();
  if (!sql.length && !parses.length) return;
  const out: Buffer[] = sql.map((q) => serialize.query(q));
  if (parses.length) out.push(...parses, serialize.sync());
  const expectedReady = sql.length + (parses.length ? 1 : 0);
  const s = conn.socket;
  await new Promise<void>((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let ready = 0;
    let error: string | undefined;
    const timer = setTimeout(() => finish(new Error(`replay timed out after ${timeoutMs} ms`)), timeoutMs);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      s.off('data', onData); s.off('close', onClose);
      s.pause();
      if (err) reject(err); else resolve();
    };
    const onData = (c: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, c]) : c;
      let p = 0;
      while (buf.length - p >= 5) {
        const len = buf.readInt32BE(p + 1);
        if (buf.length - p < 1 + len) break;
        const type = buf[p];
        if (type === 0x45 /* E */ && !error) { const f = parseErrorFields(buf, p + 5, p + 1 + len); error = `${f.C}: ${f.M}`; }
        p += 1 + len;
        if (type === 0x5a /* Z */ && ++ready === expectedReady) {
          buf = buf.subarray(p);
          return finish(error ? new Error(`replay failed: ${error}`) : undefined);
        }
      }
      buf = buf.subarray(p);
    };
    const onClose = () => finish(new Error('backend closed the connection during replay'));
    s.on('data', onData);
    s.once('close', onClose);
    s.resume();
    s.write(Buffer.concat(out));
  });
}

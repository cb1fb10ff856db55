/**
 * Type identity across a flip. The idle side's schema is rebuilt, so its
 * user-defined types (enums, domains, composites, their arrays) and tables
 * have other OIDs than the side a session started on; a client that learned
 * them there (pgjdbc, Npgsql and pgx register types by OID, every driver sees
 * RowDescription's type and table OIDs) would find others after the flip.
 *
 * For a session moved away from the side it started on (its OID home), the
 * relay translates the OIDs in the messages that carry them: RowDescription
 * (table and type of each column) and ParameterDescription towards the
 * client, the parameter types of Parse towards the server. Objects are matched
 * by schema and name; OIDs below FirstNormalObjectId (16384, the built-in
 * ones) are the same everywhere and are never translated. Values in binary
 * arrays and records (which name their element types) are not translated.
 */
import type net from 'node:net';
import { MessageCode } from './protocol/codes';

export interface OidTranslation {
  /** server OID → the OID the client knows (its home side's) */
  toClient: Map<number, number>;
  /** client OID → the server's */
  toServer: Map<number, number>;
}

/** schema-qualified name (kind-prefixed) → OID, of every user object that has one in messages */
export type OidCatalog = Map<string, number>;

/** first OID not assigned to a built-in object (FirstNormalObjectId) */
const FIRST_NORMAL_OID = 16384;

export const CATALOG_SQL = `SELECT 'c' || n.nspname || '.' || c.relname, c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid >= ${FIRST_NORMAL_OID} AND n.nspname !~ '^pg_(toast_)?temp_'
UNION ALL SELECT 't' || n.nspname || '.' || t.typname, t.oid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
  WHERE t.oid >= ${FIRST_NORMAL_OID} AND n.nspname !~ '^pg_(toast_)?temp_'`;

/** The translation from `home` (what the client knows) to `server`; null when every shared object has the same OID. */
export function oidTranslation(home: OidCatalog, server: OidCatalog): OidTranslation | null {
  const toClient = new Map<number, number>();
  const toServer = new Map<number, number>();
  for (const [name, serverOid] of server) {
    const homeOid = home.get(name);
    if (homeOid === undefined || homeOid === serverOid) continue;
    toClient.set(serverOid, homeOid);
    toServer.set(homeOid, serverOid);
  }
  return toClient.size ? { toClient, toServer } : null;
}

/** Read the catalog over a backend connection the proxy holds (simple query, text rows). */
export function readOidCatalog(sock: net.Socket, timeoutMs = 5000): Promise<OidCatalog> {
  return new Promise((resolve, reject) => {
    const out: OidCatalog = new Map();
    let buf: Buffer = Buffer.alloc(0);
    let error: string | undefined;
    const timer = setTimeout(() => finish(new Error(`reading the catalog timed out after ${timeoutMs} ms`)), timeoutMs);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      sock.off('data', onData); sock.off('close', onClose);
      sock.pause();
      if (err) reject(err); else if (error) reject(new Error(error)); else resolve(out);
    };
    const onData = (c: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, c]) : c;
      let p = 0;
      while (buf.length - p >= 5) {
        const len = buf.readInt32BE(p + 1);
        if (buf.length - p < 1 + len) break;
        const type = buf[p];
        if (type === MessageCode.DataRow) {
          let q = p + 7;
          const l1 = buf.readInt32BE(q); q += 4;
          const name = buf.toString('utf8', q, q + l1); q += l1;
          const l2 = buf.readInt32BE(q); q += 4;
          out.set(name, Number(buf.toString('latin1', q, q + l2)));
        } else if (type === MessageCode.ErrorResponse) error = 'the catalog query failed';
        p += 1 + len;
        if (type === MessageCode.ReadyForQuery) return finish();
      }
      buf = buf.subarray(p);
    };
    const onClose = () => finish(new Error('backend closed the connection while reading the catalog'));
    sock.on('data', onData);
    sock.once('close', onClose);
    sock.resume();
    const sql = Buffer.from(CATALOG_SQL + '\0', 'utf8');
    const q = Buffer.allocUnsafe(5 + sql.length);
    q[0] = MessageCode.Query;
    q.writeInt32BE(4 + sql.length, 1);
    sql.copy(q, 5);
    sock.write(q);
  });
}

const swap = (buf: Buffer, at: number, map: Map<number, number>): void => {
  const oid = buf.readUInt32BE(at);
  if (oid < FIRST_NORMAL_OID) return;
  const to = map.get(oid);
  if (to !== undefined) buf.writeUInt32BE(to, at);
};

/** Rewrites, in place, the OIDs one whole message (its type at buf[p], `stop` its end) carries. */
function translateMessage(buf: Buffer, p: number, stop: number, map: Map<number, number>): void {
  const type = buf[p];
  const body = p + 5;
  if (type === MessageCode.RowDescription) {
    let q = body + 2;
    for (let i = 0, n = buf.readInt16BE(body); i < n && q < stop; i++) {
      const z = buf.indexOf(0, q);
      if (z < 0 || z + 19 > stop) break;
      swap(buf, z + 1, map); // table OID
      swap(buf, z + 7, map); // type OID
      q = z + 19;
    }
  } else if (type === MessageCode.ParameterDescription) {
    for (let i = 0, n = buf.readInt16BE(body); i < n && body + 2 + 4 * i + 4 <= stop; i++) swap(buf, body + 2 + 4 * i, map);
  } else {
    // Parse: name NUL query NUL int16 n int32[n]
    const z1 = buf.indexOf(0, body);
    const z2 = z1 < 0 || z1 >= stop ? -1 : buf.indexOf(0, z1 + 1);
    if (z2 >= 0 && z2 + 3 <= stop) {
      for (let i = 0, n = buf.readInt16BE(z2 + 1); i < n && z2 + 3 + 4 * i + 4 <= stop; i++) swap(buf, z2 + 3 + 4 * i, map);
    }
  }
}

/**
 * One direction of a translating session's relay: the messages that carry
 * OIDs are translated in place, which needs them whole before they are
 * forwarded — such a message split across reads is kept back until its end
 * arrives. Every other message passes as it comes (a large CopyData is not
 * buffered).
 */
export class OidTranslator {
  private tail: Buffer | null = null;
  /** bytes of a passing message still to come */
  private remain = 0;
  private readonly carries = new Uint8Array(256);

  constructor(private readonly map: Map<number, number>, towardsClient: boolean) {
    const types = towardsClient ? [MessageCode.RowDescription, MessageCode.ParameterDescription] : [MessageCode.Parse];
    for (const t of types) this.carries[t] = 1;
  }

  /** bytes held back (the start of a message), handed to the translator that replaces this one */
  takeTail(): Buffer | null {
    const t = this.tail;
    this.tail = null;
    return t;
  }

  /** what may be forwarded now, translated (a prefix of the bytes received so far) */
  feed(chunk: Buffer): Buffer {
    const buf = this.tail ? Buffer.concat([this.tail, chunk]) : chunk;
    this.tail = null;
    const n = buf.length;
    let p = 0;
    for (;;) {
      if (this.remain > 0) {
        if (this.remain >= n - p) { this.remain -= n - p; return buf; }
        p += this.remain;
        this.remain = 0;
      }
      if (p === n) return buf;
      if (n - p < 5) break;
      const len = buf.readInt32BE(p + 1);
      if (len < 4) return buf; // invalid: left to the framing, which ends the session
      const stop = p + 1 + len;
      if (this.carries[buf[p]] === 1) {
        if (stop > n) break;
        translateMessage(buf, p, stop, this.map);
        p = stop;
      } else if (stop <= n) p = stop;
      else { this.remain = stop - n; return buf; }
    }
    this.tail = Buffer.from(buf.subarray(p));
    return buf.subarray(0, p);
  }
}

/**
 * Backend-format messages the proxy itself sends to clients (authentication,
 * errors, startup replies) and the few client messages it consumes during
 * startup. pg-protocol's serializer only builds frontend messages, so these
 * are built here; everything relayed is never rebuilt.
 */

export const PROTOCOL_3_0 = 196608; // 3 << 16
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
/** PostgreSQL's own limit for a startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10000;

function message(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

const cstr = (s: string): Buffer => Buffer.from(s + '\0', 'utf8');
const int32 = (n: number): Buffer => { const b = Buffer.allocUnsafe(4); b.writeInt32BE(n, 0); return b; };

export type Severity = 'FATAL' | 'ERROR' | 'NOTICE';

/** ErrorResponse (or NoticeResponse) with severity, SQLSTATE and message. */
export function errorResponse(severity: Severity, code: string, msg: string, detail?: string, hint?: string): Buffer {
  const parts = [Buffer.from('S'), cstr(severity), Buffer.from('V'), cstr(severity), Buffer.from('C'), cstr(code), Buffer.from('M'), cstr(msg)];
  if (detail) parts.push(Buffer.from('D'), cstr(detail));
  if (hint) parts.push(Buffer.from('H'), cstr(hint));
  parts.push(Buffer.from([0]));
  return message(severity === 'NOTICE' ? 'N' : 'E', Buffer.concat(parts));
}

export const authenticationOk = (): Buffer => message('R', int32(0));

export const authenticationSASL = (mechanisms: string[]): Buffer =>
  message('R', Buffer.concat([int32(10), ...mechanisms.map(cstr), Buffer.from([0])]));

export const authenticationSASLContinue = (data: string): Buffer =>
  message('R', Buffer.concat([int32(11), Buffer.from(data, 'utf8')]));

export const authenticationSASLFinal = (data: string): Buffer =>
  message('R', Buffer.concat([int32(12), Buffer.from(data, 'utf8')]));

export const parameterStatus = (name: string, value: string): Buffer =>
  message('S', Buffer.concat([cstr(name), cstr(value)]));

export const backendKeyData = (pid: number, secret: number): Buffer =>
  message('K', Buffer.concat([int32(pid), int32(secret)]));

export const readyForQuery = (status: 'I' | 'T' | 'E'): Buffer => message('Z', Buffer.from(status));

/** Sent when a client asks for a newer minor version or unknown `_pq_.` options (as PostgreSQL does). */
export function negotiateProtocolVersion(newestMinor: number, unsupported: string[]): Buffer {
  return message('v', Buffer.concat([int32(newestMinor), int32(unsupported.length), ...unsupported.map(cstr)]));
}

/**
 * StartupMessage v3.0 with exactly the given parameters. (pg-protocol's
 * serializer always appends client_encoding=UTF8, which would override the
 * client's own encoding.)
 */
export function startupMessage(params: Record<string, string>): Buffer {
  const parts: Buffer[] = [Buffer.alloc(8)];
  for (const [k, v] of Object.entries(params)) parts.push(cstr(k), cstr(v));
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(PROTOCOL_3_0, 4);
  return out;
}

/** The CancelRequest the proxy sends to a backend (16 bytes). */
export function cancelRequest(pid: number, secret: number): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  b.writeInt32BE(pid, 8);
  b.writeInt32BE(secret, 12);
  return b;
}

/** Reads NUL-terminated strings out of a message body. */
export class CStringReader {
  constructor(private readonly buf: Buffer, public pos: number, private readonly end: number) {}
  /** next string, or undefined when no terminator is left before `end` */
  next(): string | undefined {
    const z = this.buf.indexOf(0, this.pos);
    if (z < 0 || z >= this.end) return undefined;
    const s = this.buf.toString('utf8', this.pos, z);
    this.pos = z + 1;
    return s;
  }
  int32(): number | undefined {
    if (this.pos + 4 > this.end) return undefined;
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
}

export class ProtocolViolation extends Error {
  constructor(message: string, readonly code = '08P01') { super(message); }
}

/** Key/value pairs of a v3 StartupMessage body (after length and version). */
export function parseStartupParams(buf: Buffer, start: number, end: number): Map<string, string> {
  const r = new CStringReader(buf, start, end);
  const params = new Map<string, string>();
  for (;;) {
    const k = r.next();
    if (k === undefined) throw new ProtocolViolation('invalid startup packet layout: expected terminator as last byte');
    if (k === '') break;
    const v = r.next();
    if (v === undefined) throw new ProtocolViolation('invalid startup packet layout: expected terminator as last byte');
    params.set(k, v);
  }
  if (r.pos !== end) throw new ProtocolViolation('invalid startup packet layout: expected terminator as last byte');
  return params;
}

/** SASLInitialResponse ('p' during SASL): mechanism and client-first-message. */
export function parseSASLInitialResponse(body: Buffer): { mechanism: string; data: string } {
  const r = new CStringReader(body, 0, body.length);
  const mechanism = r.next();
  const len = r.int32();
  if (mechanism === undefined || len === undefined) throw new ProtocolViolation('malformed SASLInitialResponse message');
  if (len === -1) return { mechanism, data: '' };
  if (len < 0 || r.pos + len !== body.length) throw new ProtocolViolation('malformed SASLInitialResponse message');
  return { mechanism, data: body.toString('utf8', r.pos, r.pos + len) };
}

/** The fields of an ErrorResponse / NoticeResponse body. */
export function parseErrorFields(buf: Buffer, start: number, end: number): Record<string, string> {
  const out: Record<string, string> = {};
  let p = start;
  while (p < end && buf[p] !== 0) {
    const code = String.fromCharCode(buf[p]);
    const z = buf.indexOf(0, p + 1);
    if (z < 0 || z >= end) break;
    out[code] = buf.toString('utf8', p + 1, z);
    p = z + 1;
  }
  return out;
}

/** SQLSTATE of an ErrorResponse body without building strings for the other fields. */
export function sqlstateOf(buf: Buffer, start: number, end: number): string {
  let p = start;
  while (p < end && buf[p] !== 0) {
    const z = buf.indexOf(0, p + 1);
    if (z < 0 || z >= end) break;
    if (buf[p] === 0x43 /* C */) return buf.toString('latin1', p + 1, z);
    p = z + 1;
  }
  return '';
}

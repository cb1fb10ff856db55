/**
 * Readers of the messages the proxy consumes itself: startup packets, SASL
 * responses, error fields. Relayed messages are only walked (framing.ts),
 * never decoded.
 */
import { ErrorField } from './codes';

export class ProtocolViolation extends Error {
  constructor(message: string, readonly code = '08P01') { super(message); }
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
    if (buf[p] === ErrorField.Code) return buf.toString('latin1', p + 1, z);
    p = z + 1;
  }
  return '';
}

/** true when an ErrorResponse body's severity (its first field) is FATAL or PANIC: the server ends the connection itself. */
export function isFatalSeverity(buf: Buffer, start: number): boolean {
  return buf[start] === ErrorField.Severity && (buf[start + 1] === 0x46 /* F */ || buf[start + 1] === 0x50 /* P */);
}

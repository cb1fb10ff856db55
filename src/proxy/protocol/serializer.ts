/**
 * Messages the proxy itself builds: backend-format replies to clients
 * (authentication, errors, startup) and the few frontend messages
 * pg-protocol's serializer cannot build as the proxy needs them. Everything
 * relayed is never rebuilt.
 */
import { CANCEL_REQUEST_CODE, MessageCode, PROTOCOL_3_0 } from './codes';

function message(type: MessageCode, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

const cstr = (s: string): Buffer => Buffer.from(s + '\0', 'utf8');
const int32 = (n: number): Buffer => { const b = Buffer.allocUnsafe(4); b.writeInt32BE(n, 0); return b; };

export type Severity = 'FATAL' | 'ERROR' | 'WARNING' | 'NOTICE';

/** ErrorResponse (or NoticeResponse) with severity, SQLSTATE and message. */
export function errorResponse(severity: Severity, code: string, msg: string, detail?: string, hint?: string): Buffer {
  const parts = [Buffer.from('S'), cstr(severity), Buffer.from('V'), cstr(severity), Buffer.from('C'), cstr(code), Buffer.from('M'), cstr(msg)];
  if (detail) parts.push(Buffer.from('D'), cstr(detail));
  if (hint) parts.push(Buffer.from('H'), cstr(hint));
  parts.push(Buffer.from([0]));
  return message(severity === 'NOTICE' || severity === 'WARNING' ? MessageCode.NoticeResponse : MessageCode.ErrorResponse, Buffer.concat(parts));
}

export const authenticationOk = (): Buffer => message(MessageCode.Authentication, int32(0));

export const authenticationSASL = (mechanisms: string[]): Buffer =>
  message(MessageCode.Authentication, Buffer.concat([int32(10), ...mechanisms.map(cstr), Buffer.from([0])]));

export const authenticationSASLContinue = (data: string): Buffer =>
  message(MessageCode.Authentication, Buffer.concat([int32(11), Buffer.from(data, 'utf8')]));

export const authenticationSASLFinal = (data: string): Buffer =>
  message(MessageCode.Authentication, Buffer.concat([int32(12), Buffer.from(data, 'utf8')]));

export const parameterStatus = (name: string, value: string): Buffer =>
  message(MessageCode.ParameterStatus, Buffer.concat([cstr(name), cstr(value)]));

export const backendKeyData = (pid: number, secret: number): Buffer =>
  message(MessageCode.BackendKeyData, Buffer.concat([int32(pid), int32(secret)]));

export const readyForQuery = (status: 'I' | 'T' | 'E'): Buffer => message(MessageCode.ReadyForQuery, Buffer.from(status));

export const commandComplete = (tag: string): Buffer => message(MessageCode.CommandComplete, cstr(tag));

/** Sent when a client asks for a newer minor version or unknown `_pq_.` options (as PostgreSQL does). */
export function negotiateProtocolVersion(newestMinor: number, unsupported: string[]): Buffer {
  return message(MessageCode.NegotiateProtocolVersion, Buffer.concat([int32(newestMinor), int32(unsupported.length), ...unsupported.map(cstr)]));
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

/**
 * Terminate, sent before closing a backend connection so the server does not
 * log an unexpected EOF. One shared buffer: it is never modified.
 */
export const TERMINATE: Buffer = Buffer.from([MessageCode.Terminate, 0, 0, 0, 4]);

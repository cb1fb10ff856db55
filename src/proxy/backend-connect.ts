/**
 * Opens an authenticated backend connection for one side: TCP (+ TLS as the
 * side's sslmode asks), StartupMessage with the client's parameters but the
 * side's user and database, then whatever authentication the server asks for
 * (SCRAM-SHA-256, md5, cleartext, trust), up to the first ReadyForQuery.
 * After that the raw socket belongs to the relay.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { Parser } from 'pg-protocol/dist/parser';
import type { BackendMessage } from 'pg-protocol/dist/messages';
import type { Side } from '../side';
import { SSL_ACCEPTED } from './protocol/codes';
import { parseErrorFields } from './protocol/parser';
import { startupMessage } from './protocol/serializer';
import { ScramClient, SCRAM_MECHANISM } from './scram';

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export interface BackendTarget {
  side: Side;
  host: string;
  port: number;
  user: string;
  password?: string;
  /** database from the URL; the client's database name is used when the proxy maps names through */
  database: string;
  sslmode: SslMode;
  sslrootcert?: string;
}

/** Parse a side's postgres:// URL into what the proxy needs to reach it. */
export function parseBackendUrl(side: Side, url: string): BackendTarget {
  const u = new URL(url);
  const q = u.searchParams;
  const sslmode = (q.get('sslmode') ?? (q.get('ssl') === 'true' ? 'require' : 'prefer')) as SslMode;
  if (!['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'].includes(sslmode)) {
    throw new Error(`${side}.url: unknown sslmode ${JSON.stringify(sslmode)}`);
  }
  const host = decodeURIComponent(u.hostname.replace(/^\[|\]$/g, '')) || q.get('host') || '127.0.0.1';
  return {
    side,
    host,
    port: u.port ? Number(u.port) : Number(q.get('port') ?? 5432),
    user: decodeURIComponent(u.username) || q.get('user') || 'postgres',
    password: u.password ? decodeURIComponent(u.password) : q.get('password') ?? undefined,
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || decodeURIComponent(u.username) || 'postgres',
    sslmode: (sslmode as string) === 'no-verify' ? 'require' : sslmode,
    sslrootcert: q.get('sslrootcert') ?? undefined,
  };
}

export interface BackendConnection {
  socket: net.Socket;
  target: BackendTarget;
  /** the backend's own cancel key */
  pid: number;
  secret: number;
  /** ParameterStatus messages as the server sent them (raw, for relaying to the client) */
  parameterStatus: Buffer[];
  /** bytes that arrived after the first ReadyForQuery (normally none) */
  leftover: Buffer;
}

/**
 * A failure to get a backend. `serverError` is the server's own ErrorResponse
 * when it refused the connection for a reason the client should see as is
 * (unknown database, too many connections, shutting down…).
 */
export class BackendConnectError extends Error {
  constructor(message: string, readonly code: string, readonly serverError?: Buffer, private readonly noServer = false) { super(message); }

  /** no server there, or one not accepting connections yet: `sideDown` */
  static unreachable(message: string): BackendConnectError { return new BackendConnectError(message, '08006', undefined, true); }

  /**
   * The side is not there (refused, timed out, closed, starting up or shutting down), as opposed
   * to a side that answers and refuses this connection: worth waiting for (lost-backend.ts).
   */
  get sideDown(): boolean { return this.noServer || this.code === '57P03'; }
}

const AUTH_ERROR_CLASS = '28';

function describe(t: BackendTarget): string { return `${t.side} backend at ${t.host}:${t.port}`; }

function openSocket(t: BackendTarget, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: t.host, port: t.port });
    const timer = setTimeout(() => { s.destroy(); reject(BackendConnectError.unreachable(`cannot connect to the ${describe(t)}: timeout after ${timeoutMs} ms`)); }, timeoutMs);
    s.once('connect', () => { clearTimeout(timer); s.removeAllListeners('error'); resolve(s); });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(BackendConnectError.unreachable(`cannot connect to the ${describe(t)}: ${e.code ?? e.message}`));
    });
  });
}

function readOne(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer) => { cleanup(); if (b.length > n) s.unshift(b.subarray(n)); resolve(b.subarray(0, n)); };
    const onErr = () => { cleanup(); reject(new Error('connection closed')); };
    const cleanup = () => { s.off('data', onData); s.off('error', onErr); s.off('close', onErr); };
    s.on('data', onData); s.once('error', onErr); s.once('close', onErr);
  });
}

async function negotiateTls(s: net.Socket, t: BackendTarget): Promise<net.Socket> {
  if (t.sslmode === 'disable' || t.sslmode === 'allow') return s;
  s.write(serialize.requestSsl());
  const answer = (await readOne(s, 1).catch(() => { throw BackendConnectError.unreachable(`the ${describe(t)} closed the connection during SSL negotiation`); }))[0];
  if (answer !== SSL_ACCEPTED) {
    if (t.sslmode === 'prefer') return s;
    throw new BackendConnectError(`the ${describe(t)} does not support SSL, but sslmode=${t.sslmode}`, '08006');
  }
  const verify = t.sslmode === 'verify-ca' || t.sslmode === 'verify-full';
  return new Promise((resolve, reject) => {
    const ts = tls.connect({
      socket: s,
      servername: net.isIP(t.host) ? undefined : t.host,
      rejectUnauthorized: verify,
      ca: t.sslrootcert ? readFileSync(t.sslrootcert) : undefined,
      checkServerIdentity: t.sslmode === 'verify-full' ? tls.checkServerIdentity : () => undefined,
    });
    ts.once('secureConnect', () => { ts.removeAllListeners('error'); resolve(ts); });
    ts.once('error', (e) => reject(new BackendConnectError(`TLS with the ${describe(t)} failed: ${e.message}`, '08006')));
  });
}

const md5hex = (s: string | Buffer): string => createHash('md5').update(s).digest('hex');

/**
 * Connect and authenticate. `params` are the client's startup parameters
 * (user and database replaced by the side's), `database` the database to open.
 */
export async function connectBackend(t: BackendTarget, params: Map<string, string>, database: string, timeoutMs: number): Promise<BackendConnection> {
  const raw = await openSocket(t, timeoutMs);
  const timer = setTimeout(() => raw.destroy(new Error('timeout')), timeoutMs);
  try {
    const s = await negotiateTls(raw, t);
    s.setNoDelay(true);
    const startup: Record<string, string> = {};
    for (const [k, v] of params) if (k !== 'user' && k !== 'database' && !k.startsWith('_pq_.') && k !== 'replication') startup[k] = v;
    startup.user = t.user;
    startup.database = database;
    s.write(startupMessage(startup));
    const conn = await authenticate(s, t);
    clearTimeout(timer);
    return conn;
  } catch (e) {
    clearTimeout(timer);
    raw.destroy();
    if (e instanceof BackendConnectError) throw e;
    throw new BackendConnectError(`cannot connect to the ${describe(t)}: ${(e as Error).message}`, '08006');
  }
}

/** Frames whole messages out of the startup stream and decodes each with pg-protocol's Parser. */
function authenticate(s: net.Socket, t: BackendTarget): Promise<BackendConnection> {
  return new Promise((resolve, reject) => {
    const parser = new Parser();
    let buf: Buffer = Buffer.alloc(0);
    let scram: ScramClient | undefined;
    let pid = 0;
    let secret = 0;
    const parameterStatus: Buffer[] = [];
    const password = (): string => {
      if (t.password === undefined) throw new BackendConnectError(`the ${describe(t)} asks for a password and its URL has none`, '08006');
      return t.password;
    };
    const finish = (err?: Error, leftover?: Buffer) => {
      s.off('data', onData); s.off('error', onClose); s.off('close', onClose);
      s.pause(); // the relay takes over; no byte may be emitted without a listener
      if (err) reject(err);
      else resolve({ socket: s, target: t, pid, secret, parameterStatus, leftover: leftover ?? Buffer.alloc(0) });
    };
    const handle = (m: BackendMessage, raw: Buffer): boolean => {
      switch (m.name) {
        case 'authenticationOk': return false;
        case 'authenticationCleartextPassword': s.write(serialize.password(password())); return false;
        case 'authenticationMD5Password': {
          const salt = (m as unknown as { salt: Buffer }).salt;
          const inner = md5hex(password() + t.user);
          s.write(serialize.password('md5' + md5hex(Buffer.concat([Buffer.from(inner), salt]))));
          return false;
        }
        case 'authenticationSASL': {
          const mechs = (m as unknown as { mechanisms: string[] }).mechanisms;
          if (!mechs.includes(SCRAM_MECHANISM)) throw new BackendConnectError(`the ${describe(t)} offers no supported SASL mechanism (${mechs.join(', ')})`, '08006');
          scram = new ScramClient(password());
          s.write(serialize.sendSASLInitialResponseMessage(SCRAM_MECHANISM, scram.first()));
          return false;
        }
        case 'authenticationSASLContinue':
          if (!scram) throw new BackendConnectError('unexpected SASL message from the backend', '08P01');
          s.write(serialize.sendSCRAMClientFinalMessage(scram.final((m as unknown as { data: string }).data)));
          return false;
        case 'authenticationSASLFinal':
          if (!scram) throw new BackendConnectError('unexpected SASL message from the backend', '08P01');
          scram.verify((m as unknown as { data: string }).data);
          return false;
        case 'parameterStatus': parameterStatus.push(Buffer.from(raw)); return false;
        case 'backendKeyData': pid = (m as unknown as { processID: number }).processID; secret = (m as unknown as { secretKey: number }).secretKey; return false;
        case 'notice': return false;
        case 'readyForQuery': return true;
        case 'error': {
          const f = parseErrorFields(raw, 5, raw.length);
          const code = f.C ?? '08006';
          if (code.startsWith(AUTH_ERROR_CLASS)) {
            throw new BackendConnectError(`the ${describe(t)} rejected pgflip's credentials: ${f.M ?? 'authentication failed'}`, '08006');
          }
          throw new BackendConnectError(`the ${describe(t)} refused the connection: ${f.M ?? code}`, code, Buffer.from(raw));
        }
        default:
          throw new BackendConnectError(`unexpected message "${m.name}" from the ${describe(t)} during startup`, '08P01');
      }
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      try {
        let p = 0;
        while (buf.length - p >= 5) {
          const len = buf.readInt32BE(p + 1);
          if (len < 4 || len > 1 << 24) throw new BackendConnectError(`invalid message length from the ${describe(t)}`, '08P01');
          if (buf.length - p < 1 + len) break;
          const raw = buf.subarray(p, p + 1 + len);
          p += 1 + len;
          let msg: BackendMessage | undefined;
          parser.parse(raw, (m) => { msg = m; });
          if (msg && handle(msg, raw)) return finish(undefined, buf.subarray(p));
        }
        buf = buf.subarray(p);
      } catch (e) {
        finish(e as Error);
      }
    };
    const onClose = () => finish(BackendConnectError.unreachable(`the ${describe(t)} closed the connection during startup`));
    s.on('data', onData);
    s.once('error', onClose);
    s.once('close', onClose);
  });
}

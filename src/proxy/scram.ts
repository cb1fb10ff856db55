/**
 * SCRAM-SHA-256 (RFC 5802 / RFC 7677) on both ends: the server side that
 * authenticates clients at the proxy, and the client side the proxy uses
 * towards a backend. No channel binding: the proxy advertises only
 * SCRAM-SHA-256 and answers backends with gs2 flag "n".
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import saslprep from '@mongodb-js/saslprep';

export const SCRAM_MECHANISM = 'SCRAM-SHA-256';
export const DEFAULT_ITERATIONS = 4096;

export interface ScramSecret {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();
const xor = (a: Buffer, b: Buffer): Buffer => { const o = Buffer.allocUnsafe(a.length); for (let i = 0; i < a.length; i++) o[i] = a[i] ^ b[i]; return o; };

/**
 * The password as SCRAM hashes it, as PostgreSQL and libpq prepare it
 * (pg_saslprep): ASCII as it is; otherwise SASLprep (RFC 4013: non-ASCII
 * spaces to space, some characters mapped to nothing, NFKC), and where
 * SASLprep refuses it (prohibited or unassigned code points) the raw password.
 */
export function preparePassword(password: string): string {
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  try {
    return saslprep(password);
  } catch {
    return password;
  }
}

export function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(Buffer.from(preparePassword(password), 'utf8'), salt, iterations, 32, 'sha256');
}

export function secretFromPassword(password: string, salt: Buffer = randomBytes(16), iterations = DEFAULT_ITERATIONS): ScramSecret {
  const salted = saltedPassword(password, salt, iterations);
  return { iterations, salt, storedKey: sha256(hmac(salted, 'Client Key')), serverKey: hmac(salted, 'Server Key') };
}

/** `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` as in pg_authid.rolpassword. */
export function parseVerifier(v: string): ScramSecret {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(v);
  if (!m) throw new Error('not a SCRAM-SHA-256 verifier');
  return { iterations: Number(m[1]), salt: Buffer.from(m[2], 'base64'), storedKey: Buffer.from(m[3], 'base64'), serverKey: Buffer.from(m[4], 'base64') };
}

export function formatVerifier(s: ScramSecret): string {
  return `SCRAM-SHA-256$${s.iterations}:${s.salt.toString('base64')}$${s.storedKey.toString('base64')}:${s.serverKey.toString('base64')}`;
}

/** Attributes `k=v` of a SCRAM message (values may contain '='). */
function attributes(msg: string): Array<[string, string]> {
  return msg.split(',').map((part) => [part.slice(0, 1), part.slice(2)] as [string, string]);
}

const PRINTABLE_NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;

export class ScramError extends Error {}

/**
 * One server-side exchange. `secret` undefined means an unknown user: the
 * exchange runs with a made-up salt and always fails at the end, so the reply
 * does not reveal whether the user exists (as PostgreSQL does).
 */
export class ScramServerExchange {
  private clientFirstBare = '';
  private serverFirst = '';
  private gs2Header = '';
  private nonce = '';
  private readonly secret: ScramSecret;

  constructor(secret: ScramSecret | undefined, mockSalt: Buffer) {
    this.secret = secret ?? { iterations: DEFAULT_ITERATIONS, salt: mockSalt, storedKey: randomBytes(32), serverKey: randomBytes(32) };
    this.known = secret !== undefined;
  }
  private readonly known: boolean;

  /** client-first-message → server-first-message (`serverNonce` fixed only by tests) */
  first(clientFirst: string, serverNonce = randomBytes(18).toString('base64')): string {
    const m = /^([ny]|p=[^,]*),(a=[^,]*)?,(.*)$/.exec(clientFirst);
    if (!m) throw new ScramError('malformed SCRAM message');
    if (m[1].startsWith('p')) throw new ScramError('channel binding is not supported');
    this.gs2Header = `${m[1]},${m[2] ?? ''},`;
    this.clientFirstBare = m[3];
    const attrs = attributes(this.clientFirstBare);
    let i = 0;
    if (attrs[i]?.[0] === 'm') throw new ScramError('unsupported SCRAM extension');
    if (attrs[i]?.[0] !== 'n') throw new ScramError('malformed SCRAM message: expected username');
    i++;
    if (attrs[i]?.[0] !== 'r' || !PRINTABLE_NONCE.test(attrs[i][1])) throw new ScramError('malformed SCRAM message: expected nonce');
    this.nonce = attrs[i][1] + serverNonce;
    this.serverFirst = `r=${this.nonce},s=${this.secret.salt.toString('base64')},i=${this.secret.iterations}`;
    return this.serverFirst;
  }

  /** client-final-message → server-final-message, or undefined when the proof is wrong */
  final(clientFinal: string): string | undefined {
    const p = clientFinal.lastIndexOf(',p=');
    if (p < 0) throw new ScramError('malformed SCRAM message: expected proof');
    const withoutProof = clientFinal.slice(0, p);
    const proof = Buffer.from(clientFinal.slice(p + 3), 'base64');
    const attrs = attributes(withoutProof);
    if (attrs[0]?.[0] !== 'c' || Buffer.from(attrs[0][1], 'base64').toString('latin1') !== this.gs2Header) {
      throw new ScramError('SCRAM channel binding check failed');
    }
    if (attrs[1]?.[0] !== 'r' || attrs[1][1] !== this.nonce) throw new ScramError('SCRAM nonce mismatch');
    if (proof.length !== 32) throw new ScramError('malformed SCRAM message: invalid proof');
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const clientKey = xor(proof, hmac(this.secret.storedKey, authMessage));
    if (!this.known || !timingSafeEqual(sha256(clientKey), this.secret.storedKey)) return undefined;
    return `v=${hmac(this.secret.serverKey, authMessage).toString('base64')}`;
  }
}

/**
 * SaltedPassword per (password, salt, iterations) of the backends this proxy
 * logs in to. A server keeps one salt per role, so after the first login each
 * backend connection costs a few HMACs instead of 4096 PBKDF2 rounds — which
 * matters when a switch opens one connection per session at once. Keyed by a
 * hash, never by the password itself; bounded.
 */
const saltedCache = new Map<string, Buffer>();
const SALTED_CACHE_MAX = 64;

function cachedSaltedPassword(password: string, salt: string, iterations: number): Buffer {
  const key = createHash('sha256').update(password).update('\0').update(salt).update('\0').update(String(iterations)).digest('base64');
  let v = saltedCache.get(key);
  if (!v) {
    v = saltedPassword(password, Buffer.from(salt, 'base64'), iterations);
    if (saltedCache.size >= SALTED_CACHE_MAX) saltedCache.delete(saltedCache.keys().next().value!);
    saltedCache.set(key, v);
  }
  return v;
}

/** Client side towards a backend that asked for SCRAM-SHA-256. */
export class ScramClient {
  private clientFirstBare = '';
  private serverSignature: Buffer | undefined;

  constructor(private readonly password: string, private readonly clientNonce = randomBytes(18).toString('base64')) {}

  first(): string {
    this.clientFirstBare = `n=*,r=${this.clientNonce}`;
    return `n,,${this.clientFirstBare}`;
  }

  /** server-first-message → client-final-message */
  final(serverFirst: string): string {
    const a = new Map(attributes(serverFirst));
    const nonce = a.get('r');
    const salt = a.get('s');
    const iterations = Number(a.get('i'));
    if (!nonce || !nonce.startsWith(this.clientNonce) || !salt || !Number.isInteger(iterations) || iterations <= 0) {
      throw new ScramError('backend sent an invalid SCRAM server-first-message');
    }
    const salted = cachedSaltedPassword(this.password, salt, iterations);
    const clientKey = hmac(salted, 'Client Key');
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
    this.serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  verify(serverFinal: string): void {
    const v = new Map(attributes(serverFinal)).get('v');
    const got = v ? Buffer.from(v, 'base64') : undefined;
    if (!got || !this.serverSignature || got.length !== this.serverSignature.length || !timingSafeEqual(got, this.serverSignature)) {
      throw new ScramError('backend SCRAM server signature does not match');
    }
  }
}

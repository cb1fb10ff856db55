/**
 * Reading a live socket into a buffer the relay owns (net.Socket's `onread`
 * mode), instead of one freshly allocated Buffer per read pushed through the
 * Readable stream machinery. On pgbench -S this saves about 1.5 µs of the
 * proxy's CPU per transaction (bench/proxy/cpu.js).
 *
 * Node offers `onread` only as an option of `new net.Socket()`/`net.connect()`,
 * not for sockets accepted by a server nor for one already in use (startup and
 * authentication read with 'data' events). The switch therefore sets the same
 * three fields the option sets; they are found by their description on a probe
 * socket built with the public option, so a Node version without them simply
 * keeps 'data' events (`supported` is false). TLS sockets always keep 'data'.
 *
 * The bytes handed to `onRead` are only valid during the call: whatever keeps
 * them (a write that did not complete at once, a message assembled across
 * reads) must copy them or move the socket to a new buffer (`setReadBuffer`).
 */
import net from 'node:net';
import tls from 'node:tls';

/** called with the buffer and the number of bytes read into its start */
export type OnRead = (buf: Buffer, n: number) => void;

interface Internals { kBuffer: symbol; kBufferCb: symbol; kBufferGen: symbol }

type HandleWithUserBuffer = { useUserBuffer?: (b: Uint8Array) => void; reading?: boolean };

/** a socket made with the public `onread` option (typed in net.connect's options, not the constructor's) */
const probeSocket = (): net.Socket =>
  new net.Socket({ onread: { buffer: Buffer.alloc(1), callback: () => undefined } } as net.SocketConstructorOpts);

function findInternals(): Internals | undefined {
  const probe = probeSocket();
  const byName = new Map(Object.getOwnPropertySymbols(probe).map((s) => [s.description, s]));
  probe.destroy();
  const kBuffer = byName.get('kBuffer');
  const kBufferCb = byName.get('kBufferCb');
  const kBufferGen = byName.get('kBufferGen');
  if (!kBuffer || !kBufferCb || !kBufferGen) return undefined;
  // the option must have landed in exactly these fields
  const check = probeSocket() as unknown as Record<symbol, unknown>;
  const ok = check[kBuffer] instanceof Uint8Array && typeof check[kBufferCb] === 'function' && check[kBufferGen] === null;
  (check as unknown as net.Socket).destroy();
  return ok ? { kBuffer, kBufferCb, kBufferGen } : undefined;
}

const internals = findInternals();

/** whether this Node.js lets the relay read into its own buffers (else it uses 'data' events) */
export const supported = internals !== undefined;

function handleOf(sock: net.Socket): HandleWithUserBuffer | undefined {
  return (sock as unknown as { _handle?: HandleWithUserBuffer })._handle ?? undefined;
}

/**
 * Switch `sock` to reading into `buf`, calling `onRead` for every read. Returns
 * the bytes the socket had already buffered for 'data' listeners (to be handled
 * first), or undefined when the socket cannot be switched (TLS, no handle, no
 * support): then the caller keeps using 'data' events. The socket is left paused.
 */
export function readInto(sock: net.Socket, buf: Buffer, onRead: OnRead): Buffer | undefined {
  // PGFLIP_RELAY_READS=stream keeps 'data' events (for comparison, and a way out should a Node version misbehave)
  if (!internals || process.env.PGFLIP_RELAY_READS === 'stream' || sock instanceof tls.TLSSocket || sock.destroyed) return undefined;
  const h = handleOf(sock);
  if (!h || typeof h.useUserBuffer !== 'function') return undefined;
  sock.pause();
  // what the Readable already holds was read the ordinary way; nothing more lands there after the switch
  const held: Buffer[] = [];
  for (let c: Buffer | null; (c = sock.read() as Buffer | null) !== null;) held.push(c);
  const s = sock as unknown as Record<symbol, unknown>;
  s[internals.kBuffer] = buf;
  s[internals.kBufferGen] = null;
  s[internals.kBufferCb] = (n: number, b: Buffer): void => { onRead(b, n); };
  h.useUserBuffer(buf);
  // read() may have restarted reading; stop it under the new mode
  sock.pause();
  return held.length === 1 ? held[0] : Buffer.concat(held);
}

/** Give a switched socket another buffer (the previous one is kept by a pending write). */
export function setReadBuffer(sock: net.Socket, buf: Buffer): void {
  const h = handleOf(sock);
  if (!internals || !h || typeof h.useUserBuffer !== 'function') return;
  (sock as unknown as Record<symbol, unknown>)[internals.kBuffer] = buf;
  h.useUserBuffer(buf);
}

/**
 * Stop delivering a switched socket's reads to its relay: from now on its bytes
 * are dropped, read into a small buffer of its own (the relay's buffer may be
 * kept by a pending write later).
 */
export function discardReads(sock: net.Socket): void {
  if (!internals) return;
  const s = sock as unknown as Record<symbol, unknown>;
  if (!s[internals.kBuffer]) return;
  s[internals.kBufferCb] = (): void => undefined;
  setReadBuffer(sock, Buffer.allocUnsafe(512));
}

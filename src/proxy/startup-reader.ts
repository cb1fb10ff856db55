/**
 * Reads the startup phase of a client connection (startup packets, then the
 * authentication messages) with async waits; not used once the relay runs.
 */
import net from 'node:net';

export class ConnectionClosed extends Error { constructor() { super('client closed the connection'); } }

export class StartupReader {
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(private readonly sock: net.Socket) {
    sock.on('data', this.onData);
    sock.on('close', this.onClose);
    sock.on('end', this.onClose);
  }

  private readonly onData = (c: Buffer): void => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
    const w = this.wake; this.wake = undefined; w?.();
  };

  private readonly onClose = (): void => {
    this.closed = true;
    const w = this.wake; this.wake = undefined; w?.();
  };

  get buffered(): number { return this.buf.length; }

  async need(n: number): Promise<void> {
    while (this.buf.length < n) {
      if (this.closed) throw new ConnectionClosed();
      await new Promise<void>((r) => { this.wake = r; });
    }
  }

  peekInt32(at: number): number { return this.buf.readInt32BE(at); }
  peekByte(at: number): number { return this.buf[at]; }

  take(n: number): Buffer {
    const b = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return b;
  }

  /** Stop reading; returns bytes received but not consumed. The socket is left paused. */
  detach(): Buffer {
    this.sock.pause();
    this.sock.off('data', this.onData);
    this.sock.off('close', this.onClose);
    this.sock.off('end', this.onClose);
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }
}

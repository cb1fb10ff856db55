/** A PostgreSQL client at the byte level, for tests that need exact control over the protocol. */
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { parseErrorFields } from '../../src/proxy/protocol/parser';
import { startupMessage } from '../../src/proxy/protocol/serializer';
import { ScramClient } from '../../src/proxy/scram';

export interface RawMessage { type: string; body: Buffer }

export class RawClient {
  private buf: Buffer = Buffer.alloc(0);
  private readonly queue: RawMessage[] = [];
  private wake: (() => void) | undefined;
  closed = false;
  pid = 0;
  secret = 0;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
      let p = 0;
      while (this.buf.length - p >= 5) {
        const len = this.buf.readInt32BE(p + 1);
        if (this.buf.length - p < 1 + len) break;
        this.queue.push({ type: String.fromCharCode(this.buf[p]), body: Buffer.from(this.buf.subarray(p + 5, p + 1 + len)) });
        p += 1 + len;
      }
      this.buf = this.buf.subarray(p);
      this.poke();
    });
    socket.on('close', () => { this.closed = true; this.poke(); });
    socket.on('error', () => undefined);
  }

  private poke(): void { const w = this.wake; this.wake = undefined; w?.(); }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** Connect and log in (SCRAM when asked, trust otherwise) up to the first ReadyForQuery. */
  static async login(port: number, user: string, password: string | undefined, database = 'app', extra: Record<string, string> = {}): Promise<RawClient> {
    const c = await RawClient.open(port);
    c.send(startupMessage({ user, database, ...extra }));
    let scram: ScramClient | undefined;
    for (;;) {
      const m = await c.next();
      if (m.type === 'E') throw new Error(`login failed: ${JSON.stringify(parseErrorFields(m.body, 0, m.body.length))}`);
      if (m.type === 'R') {
        const code = m.body.readInt32BE(0);
        if (code === 10) { scram = new ScramClient(password ?? ''); c.send(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.first())); }
        if (code === 11) c.send(serialize.sendSCRAMClientFinalMessage(scram!.final(m.body.toString('utf8', 4))));
        if (code === 12) scram!.verify(m.body.toString('utf8', 4));
      }
      if (m.type === 'K') { c.pid = m.body.readInt32BE(0); c.secret = m.body.readInt32BE(4); }
      if (m.type === 'Z') return c;
    }
  }

  send(b: Buffer | Buffer[]): void { this.socket.write(Array.isArray(b) ? Buffer.concat(b) : b); }

  async next(timeoutMs = 10_000): Promise<RawMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timeout waiting for a message');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => { clearTimeout(t); r(); };
      });
    }
    return this.queue.shift()!;
  }

  /** Messages up to and including the next one of `type`. */
  async until(type: string, timeoutMs?: number): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    for (;;) { const m = await this.next(timeoutMs); out.push(m); if (m.type === type) return out; }
  }

  /** resolves once the server closed the connection */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('connection still open');
      await new Promise<void>((r) => { this.wake = r; setTimeout(r, 50); });
    }
  }

  close(): void { this.socket.destroy(); }
}

export const fields = (m: RawMessage): Record<string, string> => parseErrorFields(m.body, 0, m.body.length);

/** Raw bytes as the server would read them: type + length + body. */
export function rawMessage(type: string, body: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h[0] = type.charCodeAt(0);
  h.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}

/**
 * Table data from `COPY … TO STDOUT` on one connection into `COPY … FROM STDIN`
 * on another, without re-chunking: the CopyData messages a server sends have
 * exactly the framing a server expects to receive, so the bytes read from the
 * source socket are written to the target socket as they are. Only message
 * headers are read (to find where the data ends); no row is parsed, copied or
 * re-framed.
 *
 * Both halves are custom node-postgres submittables, queued on their clients
 * like any query. The source socket is taken from pg's parser for the length
 * of the COPY (as pg-copy-streams does) and handed back at CopyDone or an
 * error, together with the bytes that follow. A target socket more than 1 MiB
 * behind pauses the source socket until it drains: memory stays bounded.
 */
import type { Client, Connection } from 'pg';

interface SocketLike {
  readonly writableLength: number;
  write(b: Buffer): boolean;
  on(ev: string, f: (...a: unknown[]) => void): unknown;
  once(ev: string, f: () => void): unknown;
  removeListener(ev: string, f: (...a: unknown[]) => void): unknown;
  listeners(ev: string): ((...a: unknown[]) => void)[];
  pause(): void;
  resume(): void;
}

interface WireConnection {
  stream: SocketLike;
  query(text: string): void;
  sendCopyFail(msg: string): void;
}

const COPY_DATA = 0x64; // d
const COPY_DONE = 0x63; // c
const ERROR = 0x45; // E
// framing states
const TYPE = 0;
const LENGTH = 1;
const BODY = 2;
/** bytes queued for the target socket before the source socket is paused */
const RELAY_BUFFER_BYTES = 1024 * 1024;
const COPY_DONE_MESSAGE = Buffer.from([COPY_DONE, 0, 0, 0, 4]);

function rowsOf(tag: string): number {
  const m = /^COPY (\d+)/.exec(tag);
  return m ? Number(m[1]) : 0;
}

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void; reject(e: Error): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => undefined); // observed by the caller; not an unhandled rejection meanwhile
  return { promise, resolve, reject };
}

/** `COPY … FROM STDIN` that takes raw CopyData messages once the server is ready. */
export class CopyInSink {
  private con?: WireConnection;
  private readonly readyD = deferred<void>();
  private readonly doneD = deferred<number>();
  private rows = 0;
  private failed = false;
  readonly ready = this.readyD.promise;
  /** rows loaded, once the server confirmed the COPY */
  readonly done = this.doneD.promise;

  constructor(readonly text: string) {}

  submit(connection: Connection): void {
    this.con = connection as unknown as WireConnection;
    this.con.query(this.text);
  }

  get socket(): SocketLike {
    return this.con!.stream;
  }

  /** Write whole or partial CopyData messages; false when the socket's buffer is full. */
  write(bytes: Buffer): boolean {
    return this.failed ? true : this.con!.stream.write(bytes);
  }

  end(): void {
    if (!this.failed) this.con!.stream.write(COPY_DONE_MESSAGE);
  }

  /** Abort the COPY (only between messages): the server rolls it back and reports an error. */
  abort(reason: string): void {
    if (this.failed || !this.con) return;
    this.failed = true;
    this.con.sendCopyFail(reason);
  }

  handleCopyInResponse(): void { this.readyD.resolve(); }
  handleCommandComplete(msg: { text: string }): void { this.rows = rowsOf(msg.text); }
  handleError(err: Error): void {
    this.failed = true;
    this.readyD.reject(err);
    this.doneD.reject(err);
  }
  handleReadyForQuery(): void { this.doneD.resolve(this.rows); }
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}
}

/** `COPY … TO STDOUT` whose CopyData messages go unchanged into a sink. */
export class CopyOutRelay {
  private con?: WireConnection;
  private pgHandler?: (...a: unknown[]) => void;
  private readonly doneD = deferred<void>();
  /** resolves when the server finished the COPY (rejects with its error) */
  readonly done = this.doneD.promise;
  /** row bytes relayed (without message headers) */
  bytes = 0;

  // framing state, carried across socket chunks
  private state = TYPE;
  private relaying = false;
  private lengthBytes = 0;
  private remaining = 0;
  private paused = false;
  private readonly onData = (chunk: unknown) => this.relay(chunk as Buffer);

  constructor(readonly text: string, private readonly sink: CopyInSink, private readonly onBytes?: (n: number) => void) {}

  submit(connection: Connection): void {
    const con = connection as unknown as WireConnection;
    this.con = con;
    const handlers = con.stream.listeners('data');
    if (handlers.length !== 1) throw new Error(`copy relay: expected one data listener on the source socket, found ${handlers.length}`);
    this.pgHandler = handlers[0];
    con.stream.removeListener('data', this.pgHandler);
    con.stream.on('data', this.onData);
    con.query(this.text);
  }

  private relay(chunk: Buffer): void {
    const len = chunk.length;
    let pos = 0;
    let bytes = this.bytes;
    // a CopyData message continued from the previous chunk
    let runStart = this.state !== TYPE && this.relaying ? 0 : -1;
    while (pos < len) {
      const state = this.state;
      if (state === TYPE) {
        const code = chunk[pos];
        if (code === COPY_DONE || code === ERROR) {
          if (runStart >= 0) this.forward(chunk.subarray(runStart, pos));
          this.bytes = bytes;
          if (code === COPY_DONE) this.sink.end();
          else this.sink.abort('source COPY failed');
          this.detach(chunk.subarray(pos));
          return;
        }
        // CopyOutResponse, notices and parameter changes are not part of the data.
        const relaying = code === COPY_DATA;
        if (relaying && runStart < 0) runStart = pos;
        else if (!relaying && runStart >= 0) {
          this.forward(chunk.subarray(runStart, pos));
          runStart = -1;
        }
        this.relaying = relaying;
        if (pos + 5 <= len) {
          // whole header in this chunk (the usual case): skip the message in one step
          const body = chunk.readUInt32BE(pos + 1) - 4;
          if (relaying) bytes += body;
          pos += 5;
          if (pos + body <= len) pos += body;
          else {
            this.remaining = body - (len - pos);
            this.state = BODY;
            pos = len;
          }
        } else {
          this.state = LENGTH;
          this.lengthBytes = 0;
          this.remaining = 0;
          pos++;
        }
      } else if (state === LENGTH) {
        while (this.lengthBytes < 4 && pos < len) {
          this.remaining = this.remaining * 256 + chunk[pos++];
          this.lengthBytes++;
        }
        if (this.lengthBytes === 4) {
          this.remaining -= 4;
          if (this.relaying) bytes += this.remaining;
          this.state = this.remaining > 0 ? BODY : TYPE;
        }
      } else {
        const n = Math.min(this.remaining, len - pos);
        pos += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = TYPE;
      }
    }
    if (runStart >= 0) this.forward(chunk.subarray(runStart, len));
    this.bytes = bytes;
    this.onBytes?.(bytes);
  }

  private forward(bytes: Buffer): void {
    if (!bytes.length) return;
    this.sink.write(bytes);
    // The socket's own mark (16 KiB) is below one read from the source: pausing at it would
    // stop the source after nearly every chunk. Pause only when the target really falls behind.
    if (this.paused || this.sink.socket.writableLength < RELAY_BUFFER_BYTES) return;
    this.paused = true;
    this.con!.stream.pause();
    this.sink.socket.once('drain', () => {
      this.paused = false;
      this.con?.stream.resume();
    });
  }

  /** Give the socket back to pg's parser with what follows the data (CopyDone, CommandComplete, ReadyForQuery or an error). */
  private detach(rest: Buffer): void {
    const con = this.con!;
    con.stream.removeListener('data', this.onData);
    con.stream.on('data', this.pgHandler!);
    this.onBytes?.(this.bytes);
    this.pgHandler!(rest);
    if (this.paused) {
      this.paused = false;
      con.stream.resume();
    }
  }

  handleCommandComplete(): void {}
  handleError(err: Error): void { this.doneD.reject(err); }
  handleReadyForQuery(): void { this.doneD.resolve(); }
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}
  handleCopyData(): void {}
}

/**
 * Copy the rows `sourceSql` produces into `targetSql`, between two idle clients.
 * Resolves to the rows loaded; rejects with the first error of either side.
 */
export async function relayCopy(source: Client, target: Client, sourceSql: string, targetSql: string, onBytes?: (n: number) => void): Promise<{ rows: number; bytes: number }> {
  const sink = new CopyInSink(targetSql);
  target.query(sink);
  await sink.ready;
  const relay = new CopyOutRelay(sourceSql, sink, onBytes);
  source.query(relay);
  const rows = await new Promise<number>((resolve, reject) => {
    relay.done.catch(reject);
    sink.done.catch(reject);
    Promise.all([relay.done, sink.done]).then(([, n]) => resolve(n), reject);
  });
  return { rows, bytes: relay.bytes };
}

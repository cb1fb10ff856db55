/**
 * A batch of prepared-statement executions sent to PostgreSQL in one round
 * trip: Parse (only the first time a statement is used on the connection),
 * Bind and Execute per statement, one Sync at the end. Values travel as text
 * parameters, so nothing is quoted or escaped and the server neither parses nor
 * plans a statement again.
 *
 * Passed to `client.query()` as a custom submittable, it queues behind other
 * queries on the connection like any query. If a statement fails, the server
 * skips the rest of the batch up to the Sync, and an open transaction stays
 * aborted until ROLLBACK, so no later statement can take effect unnoticed.
 */
import type { Connection } from 'pg';

/** A statement prepared by name on one connection (`name` '' = unnamed, parsed every time). */
export interface TargetStatement {
  readonly name: string;
  readonly text: string;
  /** Parse has been sent on the connection this statement belongs to */
  parsed: boolean;
}

export interface Execution {
  stmt: TargetStatement;
  /** text parameters; null = SQL NULL */
  values: (string | null)[];
}

/** An execution that failed: the index into the batch and the server's error. */
export class BatchError extends Error {
  constructor(readonly index: number, readonly error: Error & { code?: string }) {
    super(error.message);
  }
}

interface WireConnection {
  stream: { write(b: Buffer): boolean };
}

/**
 * The batch's protocol messages, written into one buffer: one socket write per
 * round trip instead of one buffer per message.
 */
export class WireWriter {
  // Batches are carved one after another out of a shared slab, so a round trip costs no
  // allocation of its own; a slab is dropped (and collected once written) when it is full.
  private static slab = Buffer.allocUnsafe(256 * 1024);
  private static slabUsed = 0;
  private buf: Buffer;
  private readonly base: number;
  private at: number;

  constructor() {
    if (WireWriter.slab.length - WireWriter.slabUsed < 16 * 1024) {
      WireWriter.slab = Buffer.allocUnsafe(256 * 1024);
      WireWriter.slabUsed = 0;
    }
    this.buf = WireWriter.slab;
    this.base = WireWriter.slabUsed;
    this.at = this.base;
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    // Outgrew the slab: continue in a buffer of its own (same offsets, so message starts stay valid).
    const next = this.alloc(this.base + Math.max(64 * 1024, (this.at - this.base + n) * 2));
    this.buf.copy(next, this.base, this.base, this.at);
    this.buf = next;
  }

  /** uninitialised memory: every byte of it is written before it is sent */
  protected alloc(size: number): Buffer {
    return Buffer.allocUnsafe(size);
  }

  private int16(v: number): void { this.room(2); this.buf.writeInt16BE(v, this.at); this.at += 2; }
  private int32(v: number): void { this.room(4); this.buf.writeInt32BE(v, this.at); this.at += 4; }

  private cstring(s: string): void {
    this.room(s.length * 3 + 1);
    this.at += this.buf.write(s, this.at, 'utf8');
    this.buf[this.at++] = 0;
  }

  /** Message type byte and a length placeholder; returns where the length goes. */
  private start(code: number): number {
    this.room(5);
    this.buf[this.at] = code;
    const lengthAt = this.at + 1;
    this.at += 5;
    return lengthAt;
  }

  private end(lengthAt: number): void {
    this.buf.writeInt32BE(this.at - lengthAt, lengthAt);
  }

  parse(name: string, text: string): void {
    const l = this.start(0x50 /* P */);
    this.cstring(name);
    this.cstring(text);
    this.int16(0); // parameter types: inferred by the server
    this.end(l);
  }

  /** Bind to the unnamed portal, every parameter and result in text format. */
  bind(statement: string, values: (string | null)[]): void {
    const l = this.start(0x42 /* B */);
    // start() reserved only the header: a byte written past the end of a typed array is dropped
    this.room(1);
    this.buf[this.at++] = 0; // unnamed portal
    this.cstring(statement);
    this.int16(0); // parameter formats: all text
    this.int16(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null) { this.int32(-1); continue; }
      this.room(4 + v.length * 3);
      const n = this.buf.write(v, this.at + 4, 'utf8');
      this.buf.writeInt32BE(n, this.at);
      this.at += 4 + n;
    }
    this.int16(0); // result formats: text
    this.end(l);
  }

  /** Execute the unnamed portal to completion. */
  execute(): void {
    this.room(10);
    this.buf[this.at] = 0x45; /* E */
    this.buf.writeInt32BE(9, this.at + 1);
    this.buf[this.at + 5] = 0;
    this.buf.writeInt32BE(0, this.at + 6);
    this.at += 10;
  }

  sync(): void {
    this.room(5);
    this.buf[this.at] = 0x53; /* S */
    this.buf.writeInt32BE(4, this.at + 1);
    this.at += 5;
  }

  /** The finished messages; the slab's next batch starts after them. */
  take(): Buffer {
    if (this.buf === WireWriter.slab) WireWriter.slabUsed = this.at;
    return this.buf.subarray(this.base, this.at);
  }
}

export class StatementBatch {
  /** CommandComplete tags, one per finished execution ("UPDATE 1", "COMMIT", …) */
  readonly tags: string[] = [];
  /** named statements this batch prepared (sent Parse for) */
  prepared = 0;
  readonly done: Promise<string[]>;
  private settle!: { resolve(tags: string[]): void; reject(err: BatchError): void };
  private settled = false;

  constructor(readonly executions: Execution[]) {
    this.done = new Promise((resolve, reject) => { this.settle = { resolve, reject }; });
    // The owner always attaches handlers; this keeps an early failure from being reported as unhandled.
    this.done.catch(() => undefined);
  }

  submit(connection: Connection): void {
    const w = new WireWriter();
    for (const e of this.executions) {
      if (!e.stmt.parsed || e.stmt.name === '') {
        w.parse(e.stmt.name, e.stmt.text);
        if (e.stmt.name) this.prepared++;
        e.stmt.parsed = true;
      }
      w.bind(e.stmt.name, e.values);
      w.execute();
    }
    w.sync();
    (connection as unknown as WireConnection).stream.write(w.take());
  }

  handleCommandComplete(msg: { text: string }): void {
    this.tags.push(msg.text);
  }

  /** Server error (the server then skips to the Sync) or a dead connection. */
  handleError(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.settle.reject(new BatchError(this.tags.length, err));
  }

  handleReadyForQuery(): void {
    if (this.settled) return;
    this.settled = true;
    this.settle.resolve(this.tags);
  }

  // None of the statements returns rows or uses COPY.
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}
  handleCopyData(): void {}
}

/** Affected rows of a CommandComplete tag ("UPDATE 3" → 3, "BEGIN" → 0). */
export function affectedRows(tag: string | undefined): number {
  if (!tag) return 0;
  const sp = tag.lastIndexOf(' ');
  const n = sp < 0 ? NaN : Number(tag.slice(sp + 1));
  return Number.isFinite(n) ? n : 0;
}

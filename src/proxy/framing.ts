/**
 * Message framing on a byte stream without copying: the walker reads each
 * 1-byte type + int32 length header where it lies in the received chunk,
 * skips bodies, and hands only the message types marked in its table to the
 * sink — in place when the message lies whole in the chunk, assembled (rarely)
 * when it straddles chunks. The caller forwards the chunk itself.
 *
 * A chunk is only valid during walk() (the relay reads into a buffer it
 * reuses), so the parts of a straddling message are copied.
 */

import type { MessageCode } from './protocol/codes';

export interface MessageSink {
  /** body is buf[start, end); it may be cut to the type's inspect limit */
  onMessage(type: number, buf: Buffer, start: number, end: number): void;
}

/** walk() result: every message header in the chunk was acceptable */
export const WALK_OK = -1;

export class FrameWalker {
  /** bytes of the current message body still to skip */
  private remain = 0;
  /** a header split across chunks */
  private readonly hdr = Buffer.allocUnsafe(5);
  private hdrLen = 0;
  /** an inspected message split across chunks */
  private pendType = 0;
  private pendParts: Buffer[] | null = null;
  private pendHave = 0;
  private pendWant = 0;
  /** bytes after the inspected prefix of a pending message that are still to skip */
  private pendSkip = 0;
  /** type and declared length of the message that broke the limits (for the error) */
  badType = 0;
  badLength = 0;
  /** type of the last message whose header was read (0 before the first): tells a Sync point from the middle of an extended-protocol batch */
  lastType = 0;

  /**
   * @param inspect per message type: 0 = skip, otherwise the most body bytes the sink needs;
   *   the owner may swap tables between chunks (e.g. to look at Bind only while needed)
   * @param maxLength largest accepted length field (PostgreSQL's includes its own 4 bytes)
   */
  constructor(public inspect: Uint32Array, private readonly sink: MessageSink, private readonly maxLength: number) {}

  /** true when the stream so far ends exactly at a message boundary */
  get atBoundary(): boolean { return this.remain === 0 && this.hdrLen === 0 && this.pendParts === null; }

  /**
   * Walk one chunk. Returns WALK_OK, or the offset in the chunk of the first
   * message whose length is invalid (the bytes before it are whole messages).
   */
  walk(chunk: Buffer): number {
    const n = chunk.length;
    let p = 0;
    // resume what the previous chunk left open: an inspected message, a body to skip, a header
    for (;;) {
      if (this.pendParts !== null) {
        p = this.continuePending(chunk, p);
        if (this.pendParts !== null) return WALK_OK;
      }
      if (this.remain > 0) {
        if (this.remain >= n - p) { this.remain -= n - p; return WALK_OK; }
        p += this.remain;
        this.remain = 0;
      }
      if (this.hdrLen === 0) break;
      const take = Math.min(5 - this.hdrLen, n - p);
      chunk.copy(this.hdr, this.hdrLen, p, p + take);
      this.hdrLen += take;
      p += take;
      if (this.hdrLen < 5) return WALK_OK;
      this.hdrLen = 0;
      const type = this.hdr[0];
      this.lastType = type;
      const len = this.hdr.readInt32BE(1);
      // the bad message began in an earlier chunk: nothing of this chunk may be forwarded
      if (len < 4 || len > this.maxLength) { this.badType = type; this.badLength = len; return 0; }
      const limit = this.inspect[type];
      if (limit !== 0) this.startPending(type, Buffer.from(this.hdr), Math.min(len - 4, limit), len - 4);
      else this.remain = len - 4;
    }
    while (p < n) {
      if (n - p < 5) {
        chunk.copy(this.hdr, 0, p, n);
        this.hdrLen = n - p;
        return WALK_OK;
      }
      const type = chunk[p];
      this.lastType = type;
      const len = ((chunk[p + 1] << 24) | (chunk[p + 2] << 16) | (chunk[p + 3] << 8) | chunk[p + 4]);
      if (len < 4 || len > this.maxLength) { this.badType = type; this.badLength = len; return p; }
      const end = p + 1 + len;
      const limit = this.inspect[type];
      if (end <= n) {
        if (limit !== 0) this.sink.onMessage(type, chunk, p + 5, limit >= len - 4 ? end : p + 5 + limit);
        p = end;
        continue;
      }
      // the message continues in the next chunk(s)
      if (limit !== 0) {
        this.startPending(type, chunk.subarray(p, n), Math.min(len - 4, limit), len - 4, n - p - 5);
        return WALK_OK;
      }
      this.remain = end - n;
      return WALK_OK;
    }
    return WALK_OK;
  }

  private startPending(type: number, first: Buffer, want: number, bodyLen: number, bodyHave = 0): void {
    this.pendType = type;
    this.pendWant = want;
    this.pendSkip = bodyLen - want;
    const useful = Math.min(bodyHave, want);
    this.pendParts = [Buffer.from(first.subarray(0, 5 + useful))];
    this.pendHave = useful;
    const extra = bodyHave - useful; // bytes of the skipped tail already in this chunk
    this.pendSkip -= extra;
    if (this.pendHave === this.pendWant) this.finishPending();
  }

  /** Feed chunk[from..] into the pending message; returns the offset after what it used. */
  private continuePending(chunk: Buffer, from = 0): number {
    if (this.pendParts === null) return from;
    const take = Math.min(this.pendWant - this.pendHave, chunk.length - from);
    if (take > 0) {
      this.pendParts.push(Buffer.from(chunk.subarray(from, from + take)));
      this.pendHave += take;
    }
    let p = from + take;
    if (this.pendHave < this.pendWant) return p;
    this.finishPending();
    return p;
  }

  private finishPending(): void {
    const parts = this.pendParts!;
    const whole = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    this.pendParts = null;
    this.remain = this.pendSkip;
    this.pendSkip = 0;
    this.sink.onMessage(this.pendType, whole, 5, whole.length);
  }
}

/** An inspect table: message code → body bytes needed (WHOLE for the whole body). */
export function inspectTable(entries: Array<[MessageCode, number]>): Uint32Array {
  const t = new Uint32Array(256);
  for (const [code, limit] of entries) t[code] = limit;
  return t;
}

export const WHOLE = 0xffffffff;

/**
 * Decoder for the messages of PostgreSQL's built-in `pgoutput` logical decoding
 * plugin (protocol version 1, text tuple format), as carried inside XLogData.
 *
 * Values stay text: the apply side writes them back as SQL literals, so no
 * type parsing happens here. `undefined` in a tuple marks an unchanged TOAST
 * value ('u'), which must never be written.
 */
import { Lsn, pgMicrosToMs } from './lsn';

/** A column value: text, SQL NULL, or undefined = unchanged TOAST value (not sent). */
export type TupleValue = string | null | undefined;
export type Tuple = TupleValue[];

export interface RelationColumn {
  name: string;
  /** part of the replica identity (primary key, identity index, or every column for FULL) */
  isKey: boolean;
  typeOid: number;
  typmod: number;
}

export type PgoutputMessage =
  | { tag: 'begin'; finalLsn: Lsn; commitTime: number; xid: number }
  | { tag: 'commit'; commitLsn: Lsn; endLsn: Lsn; commitTime: number }
  | { tag: 'origin'; lsn: Lsn; name: string }
  | { tag: 'relation'; relid: number; schema: string; name: string; replicaIdentity: string; columns: RelationColumn[] }
  | { tag: 'type'; oid: number; schema: string; name: string }
  | { tag: 'insert'; relid: number; newTuple: Tuple }
  | { tag: 'update'; relid: number; keyTuple?: Tuple; oldTuple?: Tuple; newTuple: Tuple }
  | { tag: 'delete'; relid: number; keyTuple?: Tuple; oldTuple?: Tuple }
  | { tag: 'truncate'; relids: number[]; cascade: boolean; restartIdentity: boolean }
  | { tag: 'message'; transactional: boolean; lsn: Lsn; prefix: string; content: Buffer };

class Reader {
  constructor(private readonly buf: Buffer, public pos: number) {}
  u8(): number { return this.buf[this.pos++]; }
  i16(): number { const v = this.buf.readInt16BE(this.pos); this.pos += 2; return v; }
  i32(): number { const v = this.buf.readInt32BE(this.pos); this.pos += 4; return v; }
  u32(): number { const v = this.buf.readUInt32BE(this.pos); this.pos += 4; return v; }
  u64(): bigint { const v = this.buf.readBigUInt64BE(this.pos); this.pos += 8; return v; }
  i64(): bigint { const v = this.buf.readBigInt64BE(this.pos); this.pos += 8; return v; }
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new Error('pgoutput: unterminated string');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  bytes(n: number): Buffer { const b = this.buf.subarray(this.pos, this.pos + n); this.pos += n; return b; }
  text(n: number): string { const s = this.buf.toString('utf8', this.pos, this.pos + n); this.pos += n; return s; }
  tuple(): Tuple {
    const n = this.i16();
    const values: Tuple = new Array(n);
    for (let i = 0; i < n; i++) {
      const kind = this.u8();
      if (kind === 0x6e /* n */) values[i] = null;
      else if (kind === 0x75 /* u */) values[i] = undefined;
      else if (kind === 0x74 /* t */) values[i] = this.text(this.i32());
      else throw new Error(`pgoutput: unsupported tuple value kind ${String.fromCharCode(kind)} (binary mode is not requested)`);
    }
    return values;
  }
}

/** Decode one pgoutput message starting at `offset` of `buf` (copies everything it keeps). */
export function decodePgoutput(buf: Buffer, offset = 0): PgoutputMessage {
  const r = new Reader(buf, offset);
  const tag = r.u8();
  switch (tag) {
    case 0x42 /* B */: {
      const finalLsn = r.u64();
      const commitTime = pgMicrosToMs(r.i64());
      return { tag: 'begin', finalLsn, commitTime, xid: r.u32() };
    }
    case 0x43 /* C */: {
      r.u8(); // flags, unused
      const commitLsn = r.u64();
      const endLsn = r.u64();
      return { tag: 'commit', commitLsn, endLsn, commitTime: pgMicrosToMs(r.i64()) };
    }
    case 0x4f /* O */: {
      const lsn = r.u64();
      return { tag: 'origin', lsn, name: r.cstring() };
    }
    case 0x52 /* R */: {
      const relid = r.u32();
      const schema = r.cstring();
      const name = r.cstring();
      const replicaIdentity = String.fromCharCode(r.u8());
      const n = r.i16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < n; i++) {
        const flags = r.u8();
        columns.push({ isKey: (flags & 1) === 1, name: r.cstring(), typeOid: r.u32(), typmod: r.i32() });
      }
      return { tag: 'relation', relid, schema, name, replicaIdentity, columns };
    }
    case 0x59 /* Y */: {
      const oid = r.u32();
      const schema = r.cstring();
      return { tag: 'type', oid, schema, name: r.cstring() };
    }
    case 0x49 /* I */: {
      const relid = r.u32();
      r.u8(); // 'N'
      return { tag: 'insert', relid, newTuple: r.tuple() };
    }
    case 0x55 /* U */: {
      const relid = r.u32();
      let kind = r.u8();
      let keyTuple: Tuple | undefined;
      let oldTuple: Tuple | undefined;
      if (kind === 0x4b /* K */) { keyTuple = r.tuple(); kind = r.u8(); }
      else if (kind === 0x4f /* O */) { oldTuple = r.tuple(); kind = r.u8(); }
      if (kind !== 0x4e /* N */) throw new Error(`pgoutput: update without new tuple (got ${String.fromCharCode(kind)})`);
      return { tag: 'update', relid, keyTuple, oldTuple, newTuple: r.tuple() };
    }
    case 0x44 /* D */: {
      const relid = r.u32();
      const kind = r.u8();
      const t = r.tuple();
      return kind === 0x4b ? { tag: 'delete', relid, keyTuple: t } : { tag: 'delete', relid, oldTuple: t };
    }
    case 0x54 /* T */: {
      const n = r.i32();
      const options = r.u8();
      const relids: number[] = [];
      for (let i = 0; i < n; i++) relids.push(r.u32());
      return { tag: 'truncate', relids, cascade: (options & 1) === 1, restartIdentity: (options & 2) === 2 };
    }
    case 0x4d /* M */: {
      const transactional = r.u8() === 1;
      const lsn = r.u64();
      const prefix = r.cstring();
      const len = r.i32();
      return { tag: 'message', transactional, lsn, prefix, content: Buffer.from(r.bytes(len)) };
    }
    default:
      throw new Error(`pgoutput: unknown message type ${JSON.stringify(String.fromCharCode(tag))} (0x${tag.toString(16)})`);
  }
}

/** Rough in-memory size of a decoded message, for flow control. */
export function messageSize(m: PgoutputMessage): number {
  switch (m.tag) {
    case 'insert': return 64 + tupleSize(m.newTuple);
    case 'update': return 64 + tupleSize(m.newTuple) + tupleSize(m.keyTuple) + tupleSize(m.oldTuple);
    case 'delete': return 64 + tupleSize(m.keyTuple) + tupleSize(m.oldTuple);
    default: return 128;
  }
}

function tupleSize(t?: Tuple): number {
  if (!t) return 0;
  let s = 32;
  for (let i = 0; i < t.length; i++) {
    const v = t[i];
    s += typeof v === 'string' ? 16 + v.length * 2 : 16;
  }
  return s;
}

/**
 * The apply's wire writer at the edge of its buffer: a Bind whose header ends
 * exactly at the end of the buffer must still carry its portal byte. Before the
 * fix that byte was written past the end (a typed array drops such a write), and
 * the message went out with an uninitialised byte as the portal name: under load
 * the target answered "invalid byte sequence for encoding UTF8" (SQLSTATE 22021).
 */
import { WireWriter } from '../../src/sync/statement-batch';

interface Frame { type: string; body: Buffer }

function frames(buf: Buffer): Frame[] {
  const out: Frame[] = [];
  for (let p = 0; p < buf.length;) {
    const len = buf.readInt32BE(p + 1);
    out.push({ type: String.fromCharCode(buf[p]), body: buf.subarray(p + 5, p + 1 + len) });
    p += 1 + len;
  }
  return out;
}

/** Bind body: portal, statement, formats, values, result formats */
function decodeBind(b: Buffer): { portal: string; statement: string; values: (string | null)[] } {
  let p = 0;
  const cstring = () => { const z = b.indexOf(0, p); const s = b.toString('utf8', p, z); p = z + 1; return s; };
  const portal = cstring();
  const statement = cstring();
  const formats = b.readInt16BE(p); p += 2 + 2 * formats;
  const n = b.readInt16BE(p); p += 2;
  const values: (string | null)[] = [];
  for (let i = 0; i < n; i++) {
    const len = b.readInt32BE(p); p += 4;
    if (len < 0) { values.push(null); continue; }
    values.push(b.toString('utf8', p, p + len)); p += len;
  }
  expect(b.readInt16BE(p)).toBe(0); // result formats
  expect(p + 2).toBe(b.length);
  return { portal, statement, values };
}

/** A writer whose fresh buffers hold garbage, as uninitialised memory may (often it is zeros). */
class PoisonedWriter extends WireWriter {
  protected override alloc(size: number): Buffer {
    return Buffer.alloc(size, 0xb3);
  }
}

test('a Bind whose header ends at the end of the write buffer keeps its portal byte and values', () => {
  const values = ['héllo wörld', null, 'ü'.repeat(40), '42'];
  for (const left of [5, 6, 7, 9, 10, 11]) {
    const w = new PoisonedWriter();
    // as if earlier messages of the batch had filled the buffer up to `left` bytes before its end
    const raw = w as unknown as { buf: Buffer; at: number; base: number };
    const start = raw.buf.length - left;
    raw.buf.fill(0xb3, raw.at, raw.buf.length); // what uninitialised memory may hold
    raw.at = start;
    w.bind('pgflip_s1', values);
    w.execute();
    w.sync();
    const out = w.take();
    const ours = frames(out.subarray(start - raw.base));
    expect([left, ours.map((f) => f.type).join('')]).toEqual([left, 'BES']);
    expect(decodeBind(ours[0].body)).toEqual({ portal: '', statement: 'pgflip_s1', values });
  }
});

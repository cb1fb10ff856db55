import { serialize } from 'pg-protocol';
import { FrameWalker, inspectTable, MessageSink, WALK_OK, WHOLE } from '../../src/proxy/framing';
import { MessageCode } from '../../src/proxy/protocol/codes';

class Recorder implements MessageSink {
  seen: Array<[string, string]> = [];
  onMessage(type: number, buf: Buffer, start: number, end: number): void {
    this.seen.push([String.fromCharCode(type), buf.toString('latin1', start, end)]);
  }
}

const stream = Buffer.concat([
  serialize.query('SELECT 1'),
  serialize.parse({ name: 's1', text: 'SELECT $1::int', types: [23] }),
  serialize.bind({ statement: 's1', values: ['x'.repeat(300)] }),
  serialize.execute({ rows: 0 }),
  serialize.sync(),
  serialize.copyData(Buffer.alloc(1000, 7)),
  serialize.query('SET a = 1'),
]);

const table = inspectTable([[MessageCode.Query, WHOLE], [MessageCode.Parse, WHOLE], [MessageCode.Sync, WHOLE], [MessageCode.Bind, 8]]);

function walkInPieces(sizes: (i: number) => number): { rec: Recorder; w: FrameWalker } {
  const rec = new Recorder();
  const w = new FrameWalker(table, rec, 1 << 20);
  let p = 0;
  let i = 0;
  while (p < stream.length) {
    const n = Math.max(1, Math.min(sizes(i++), stream.length - p));
    expect(w.walk(stream.subarray(p, p + n))).toBe(WALK_OK);
    p += n;
  }
  return { rec, w };
}

describe('FrameWalker', () => {
  const whole = walkInPieces(() => stream.length);

  test('reports the inspected messages of a stream in one chunk', () => {
    expect(whole.rec.seen.map(([t]) => t)).toEqual(['Q', 'P', 'B', 'S', 'Q']);
    expect(whole.rec.seen[0][1]).toBe('SELECT 1\0');
    // Bind is cut to its 8-byte inspect limit
    expect(whole.rec.seen[2][1]).toHaveLength(8);
    expect(whole.w.atBoundary).toBe(true);
  });

  test.each([1, 2, 3, 4, 5, 6, 7, 13, 64, 333])('gives the same result when chunks are %i bytes', (size) => {
    const r = walkInPieces(() => size);
    expect(r.rec.seen).toEqual(whole.rec.seen);
    expect(r.w.atBoundary).toBe(true);
  });

  test('gives the same result for irregular chunks', () => {
    const r = walkInPieces((i) => [1, 9, 2, 700, 3, 5, 40][i % 7]);
    expect(r.rec.seen).toEqual(whole.rec.seen);
  });

  test('knows when a chunk ends inside a message', () => {
    const w = new FrameWalker(table, new Recorder(), 1 << 20);
    w.walk(stream.subarray(0, 3));
    expect(w.atBoundary).toBe(false);
    w.walk(stream.subarray(3, serialize.query('SELECT 1').length));
    expect(w.atBoundary).toBe(true);
  });

  test('points at the first message with a bad length', () => {
    const bad = Buffer.from([0x51, 0, 0, 0, 2]);
    const w = new FrameWalker(table, new Recorder(), 1 << 20);
    const q = serialize.query('SELECT 1');
    expect(w.walk(Buffer.concat([q, bad]))).toBe(q.length);
    expect(w.badLength).toBe(2);
    const big = Buffer.from([0x51, 0x7f, 0, 0, 0]);
    const w2 = new FrameWalker(table, new Recorder(), 1 << 20);
    expect(w2.walk(big)).toBe(0);
    expect(w2.badLength).toBe(0x7f000000);
    // a bad header split across chunks is caught when it completes
    const w3 = new FrameWalker(table, new Recorder(), 1 << 20);
    expect(w3.walk(big.subarray(0, 2))).toBe(WALK_OK);
    expect(w3.walk(big.subarray(2))).toBe(0);
  });
});

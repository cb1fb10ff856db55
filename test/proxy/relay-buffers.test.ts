/**
 * The relay reads each socket into a buffer it reuses (src/proxy/user-buffer-reads.ts).
 * A write the kernel cannot take at once keeps a reference to those bytes, so
 * the relay must move to a fresh buffer then: these tests push large, varied
 * data through a slow reader in both directions and compare every byte. The
 * same runs with PGFLIP_RELAY_READS=stream ('data' events) check the fallback.
 */
import { createHash } from 'node:crypto';
import { serialize } from 'pg-protocol';
import { startPair, TestCluster } from '../harness/clusters';
import { PROXY_PASSWORD, PROXY_USER, startProxyFor, TestProxy } from '../harness/proxy';
import { supported } from '../../src/proxy/user-buffer-reads';
import { RawClient } from './raw-client';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let px: TestProxy;

beforeAll(async () => {
  pair = await startPair();
  px = await startProxyFor(pair);
  await pair.blue.query('CREATE TABLE IF NOT EXISTS sink (i int, t text)');
});
afterAll(async () => {
  delete process.env.PGFLIP_RELAY_READS;
  await px?.stop();
  await pair?.stop();
});

/**
 * Sends `sql`, then `more` small queries one every few ms while the answers
 * stream in; every message up to the last ReadyForQuery, hashed. The client
 * stops reading for a while every few ms.
 */
async function slowlyRead(c: RawClient, sql: string, more = 0): Promise<{ hash: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  const toggle = setInterval(() => { if (c.socket.isPaused()) c.socket.resume(); else c.socket.pause(); }, 15);
  let sent = 0;
  const sender = setInterval(() => { if (sent < more) c.send(serialize.query(`SELECT ${++sent} AS n, repeat('z', ${sent * 37}) AS pad`)); }, 3);
  try {
    c.send(serialize.query(sql));
    for (let ready = 0; ready <= more;) {
      const m = await c.next(30_000);
      h.update(m.type).update(m.body);
      bytes += 5 + m.body.length;
      if (m.type === 'Z') ready++;
    }
  } finally {
    clearInterval(toggle);
    clearInterval(sender);
    c.socket.resume();
  }
  return { hash: h.digest('hex'), bytes };
}

const RESULT = 'SELECT i, md5(i::text) || repeat(chr(65 + i % 26), i % 300) AS t FROM generate_series(1, 150000) i';

describe.each([['the relay\'s own read buffers', 'user'], ["'data' events", 'stream']])('reading with %s', (_name, mode) => {
  beforeAll(() => {
    if (mode === 'stream') process.env.PGFLIP_RELAY_READS = 'stream';
    else delete process.env.PGFLIP_RELAY_READS;
  });

  test('a large result read slowly by the client arrives byte for byte as directly', async () => {
    if (mode === 'user') expect(supported).toBe(true);
    const viaProxy = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD);
    const direct = await RawClient.login(pair.blue.port, 'postgres', 'postgres');
    try {
      const [a, b] = [await slowlyRead(viaProxy, RESULT), await slowlyRead(direct, RESULT)];
      expect(a.bytes).toBeGreaterThan(20 * 1024 * 1024);
      expect(a).toEqual(b);
    } finally {
      viaProxy.close();
      direct.close();
    }
  }, 60_000);

  test('queries sent while a large result is still being read arrive intact, and so do their answers', async () => {
    const viaProxy = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD);
    const direct = await RawClient.login(pair.blue.port, 'postgres', 'postgres');
    try {
      const [a, b] = [await slowlyRead(viaProxy, RESULT, 300), await slowlyRead(direct, RESULT, 300)];
      expect(a).toEqual(b);
    } finally {
      viaProxy.close();
      direct.close();
    }
  }, 60_000);

  test('a large COPY written in one go reaches the server byte for byte', async () => {
    await pair.blue.query('TRUNCATE sink');
    const lines: string[] = [];
    for (let i = 0; i < 120_000; i++) lines.push(`${i}\t${createHash('md5').update(String(i)).digest('hex')}${String.fromCharCode(97 + (i % 26)).repeat(i % 200)}\n`);
    const data = Buffer.from(lines.join(''));
    const c = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD);
    try {
      c.send(serialize.query('COPY sink FROM STDIN'));
      expect((await c.next()).type).toBe('G');
      // CopyData messages of 10,000 bytes, cut anywhere in the lines, all written at once
      const out: Buffer[] = [];
      for (let p = 0; p < data.length; p += 10_000) out.push(serialize.copyData(data.subarray(p, p + 10_000)));
      out.push(serialize.copyDone());
      c.send(out);
      const done = await c.until('Z', 60_000);
      expect(done.map((m) => m.type)).toEqual(['C', 'Z']);
    } finally {
      c.close();
    }
    const want = createHash('md5').update(lines.map((l) => l.slice(0, -1)).join('\n')).digest('hex');
    const [{ got }] = await pair.blue.query<{ got: string }>("SELECT md5(string_agg(i || E'\\t' || t, E'\\n' ORDER BY i)) AS got FROM sink");
    expect(got).toBe(want);
  }, 60_000);
});

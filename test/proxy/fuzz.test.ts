/**
 * Malformed protocol bytes from many clients at once, before and after login:
 * the proxy must answer or close each of those sockets, never crash, and never
 * disturb a well-behaved session running queries the whole time. The bytes come
 * from a seeded generator, so a failure is reproducible (PGFLIP_FUZZ_SEED).
 */
import net from 'node:net';
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { startPair, TestCluster } from '../harness/clusters';
import { PROXY_PASSWORD, PROXY_USER, startProxyFor, TestProxy } from '../harness/proxy';
import { RawClient } from './raw-client';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let px: TestProxy;

beforeAll(async () => {
  pair = await startPair();
  px = await startProxyFor(pair);
});
afterAll(async () => {
  await px?.stop();
  await pair?.stop();
});

/** mulberry32: a small seeded generator */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.PGFLIP_FUZZ_SEED ?? 20261122);
const MESSAGE_TYPES = 'QPBEDSCHFdcfXp!\0\xff';

function bytes(r: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

/** One frame: a known or random type, a length that may or may not fit the body. */
function frame(r: () => number): Buffer {
  const type = MESSAGE_TYPES.charCodeAt(Math.floor(r() * MESSAGE_TYPES.length));
  const body = bytes(r, Math.floor(r() * 64));
  const lengths = [body.length + 4, body.length + 4, Math.floor(r() * 8), body.length + 4 + Math.floor(r() * 100_000), -Math.floor(r() * 1e9), 0x7fffffff];
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeInt32BE(lengths[Math.floor(r() * lengths.length)], 1);
  return Buffer.concat([head, body]);
}

/** Wait until the proxy closes the socket, or give up after `ms` (the frame may wait for more bytes). */
function closedWithin(s: net.Socket, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) { resolve(); return; }
    const t = setTimeout(() => { s.destroy(); resolve(); }, ms);
    s.once('close', () => { clearTimeout(t); resolve(); });
  });
}

async function beforeLogin(r: () => number): Promise<void> {
  const s = net.connect({ host: '127.0.0.1', port: px.proxy.port });
  s.on('error', () => undefined);
  await new Promise((resolve) => s.once('connect', resolve));
  const kind = Math.floor(r() * 3);
  if (kind === 0) s.write(bytes(r, 1 + Math.floor(r() * 300)));
  else if (kind === 1) {
    // a plausible length, then a random version and parameters
    const body = bytes(r, Math.floor(r() * 200));
    const head = Buffer.alloc(4);
    head.writeInt32BE(body.length + 4, 0);
    s.write(Buffer.concat([head, body]));
  } else {
    // a real protocol 3.0 startup whose parameters are cut short or garbled
    const params = Buffer.from(`user\0${PROXY_USER}\0database\0app\0`);
    const cut = params.subarray(0, Math.floor(r() * params.length));
    const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), cut, bytes(r, Math.floor(r() * 10))]);
    const head = Buffer.alloc(4);
    head.writeInt32BE(body.length + 4, 0);
    s.write(Buffer.concat([head, body]));
  }
  await closedWithin(s, 300);
}

async function afterLogin(r: () => number): Promise<void> {
  const c = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD);
  const out: Buffer[] = [];
  // sometimes a valid query first, sometimes split at random points
  if (r() < 0.5) out.push(serialize.query('SELECT 1'));
  for (let i = 1 + Math.floor(r() * 4); i > 0; i--) out.push(frame(r));
  const all = Buffer.concat(out);
  for (let p = 0; p < all.length;) {
    const n = 1 + Math.floor(r() * all.length);
    c.socket.write(all.subarray(p, p + n));
    p += n;
  }
  await closedWithin(c.socket, 300);
}

test('random bytes from 240 clients, before and after login: the proxy stays up, keeps no session of theirs, and a bystander session never notices', async () => {
  const bystander = new Client({ connectionString: px.url() });
  await bystander.connect();
  let queries = 0;
  const failures: string[] = [];
  let stop = false;
  const steady = (async () => {
    while (!stop) {
      try {
        await bystander.query('BEGIN');
        const { rows } = await bystander.query('SELECT $1::int + 1 AS n, repeat($2, 100) AS s', [queries, 'x']);
        await bystander.query('COMMIT');
        if (rows[0].n !== queries + 1 || rows[0].s.length !== 100) failures.push(`wrong result at query ${queries}`);
        queries++;
      } catch (err) {
        failures.push((err as Error).message);
        return;
      }
    }
  })();

  // one generator per client: what each sends does not depend on how the others are scheduled
  for (let batch = 0; batch < 24; batch++) {
    await Promise.all(Array.from({ length: 10 }, (_, i) => {
      const r = rng(SEED + batch * 10 + i);
      return r() < 0.5 ? beforeLogin(r) : afterLogin(r);
    }));
  }
  stop = true;
  await steady;
  await bystander.end();

  expect(failures).toEqual([]);
  expect(queries).toBeGreaterThan(24);
  // the proxy is up, serves new sessions, and holds no session of the fuzzing clients
  expect((await fetch(`${px.adminUrl}/healthz`)).status).toBe(200);
  const fresh = new Client({ connectionString: px.url() });
  await fresh.connect();
  expect((await fresh.query('SELECT 42 AS n')).rows).toEqual([{ n: 42 }]);
  await fresh.end();
  for (let i = 0; i < 50 && px.proxy.sessions().length > 0; i++) await new Promise((res) => setTimeout(res, 100));
  expect(px.proxy.sessions()).toEqual([]);
}, 120_000);

/**
 * Startup and authentication at the proxy: TLS negotiation, protocol
 * versions, SCRAM and trust, limits, and bad input — each answered the way
 * PostgreSQL answers it, without disturbing other sessions.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import { startPair, TestCluster } from '../harness/clusters';
import { PROXY_PASSWORD, PROXY_USER, startProxyFor, TestProxy } from '../harness/proxy';
import { fields, RawClient, rawMessage } from './raw-client';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let px: TestProxy;
const extra: TestProxy[] = [];
const clients: Client[] = [];
let tlsDir: string;

async function connect(url: string, more: Record<string, unknown> = {}): Promise<Client> {
  const c = new Client({ connectionString: url, ...more });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}
async function connectError(url: string, more: Record<string, unknown> = {}): Promise<{ code?: string; message: string }> {
  const c = new Client({ connectionString: url, ...more });
  c.on('error', () => undefined);
  try { await c.connect(); } catch (e) { return { code: (e as { code?: string }).code, message: (e as Error).message }; }
  await c.end();
  throw new Error('connection succeeded');
}

/** the first bytes the proxy answers to `packet` on a fresh connection */
function firstReply(port: number, packet: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(packet));
    const parts: Buffer[] = [];
    s.on('data', (c) => { parts.push(c); if (Buffer.concat(parts).length >= 1 && parts[0][0] === 0x4e /* N */) { s.destroy(); resolve(Buffer.concat(parts)); } });
    s.on('close', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
}

function startupPacket(version: number, params: Record<string, string>): Buffer {
  const body = Buffer.concat([...Object.entries(params).flatMap(([k, v]) => [Buffer.from(k + '\0'), Buffer.from(v + '\0')]), Buffer.from([0])]);
  const b = Buffer.alloc(8);
  b.writeInt32BE(8 + body.length, 0);
  b.writeInt32BE(version, 4);
  return Buffer.concat([b, body]);
}

beforeAll(async () => {
  pair = await startPair();
  px = await startProxyFor(pair);
  tlsDir = mkdtempSync(path.join(os.tmpdir(), 'pgflip-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(tlsDir, 'key.pem'), '-out', path.join(tlsDir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await Promise.all([px, ...extra].map((p) => p?.stop()));
  await pair?.stop();
  if (tlsDir) rmSync(tlsDir, { recursive: true, force: true });
});

async function another(overrides: Parameters<typeof startProxyFor>[1]): Promise<TestProxy> {
  const p = await startProxyFor(pair, overrides);
  extra.push(p);
  return p;
}

describe('authentication', () => {
  test('SCRAM-SHA-256 with the configured password; the backend uses the side credentials', async () => {
    const c = await connect(px.url());
    const r = await c.query('SELECT current_user AS u, current_database() AS db');
    expect(r.rows).toEqual([{ u: 'postgres', db: 'app' }]);
  });

  test('a wrong password and an unknown user both get 28P01 like PostgreSQL', async () => {
    const wrong = await connectError(px.url().replace(PROXY_PASSWORD, 'not-it'));
    expect(wrong).toEqual({ code: '28P01', message: `password authentication failed for user "${PROXY_USER}"` });
    const unknown = await connectError(`postgres://mallory:whatever@127.0.0.1:${px.proxy.port}/app`);
    expect(unknown).toEqual({ code: '28P01', message: 'password authentication failed for user "mallory"' });
  });

  test('a stored SCRAM verifier (as in pg_authid) works as a proxy user', async () => {
    await pair.blue.query("CREATE ROLE verifier_user LOGIN PASSWORD 'v-secret'");
    const [{ rolpassword }] = await pair.blue.query<{ rolpassword: string }>("SELECT rolpassword FROM pg_authid WHERE rolname = 'verifier_user'");
    expect(rolpassword).toMatch(/^SCRAM-SHA-256\$/);
    const p = await another({ proxy: { users: { vu: { scramVerifier: rolpassword } } } });
    const c = await connect(`postgres://vu:v-secret@127.0.0.1:${p.proxy.port}/app`);
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect((await connectError(`postgres://vu:nope@127.0.0.1:${p.proxy.port}/app`)).code).toBe('28P01');
  });

  test('passwords are prepared with SASLprep as PostgreSQL and libpq do, at the proxy and towards a backend', async () => {
    // a ligature and a non-ASCII space: SASLprep (NFKC, space mapping) turns this into "fish cake"
    const pw = '\ufb01sh\u00a0cake';
    const p = await another({ proxy: { users: { prep: { password: pw } } } });
    const c = await connect(`postgres://prep:${encodeURIComponent(pw)}@127.0.0.1:${p.proxy.port}/app`);
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect((await connectError(`postgres://prep:${encodeURIComponent('fish cake!')}@127.0.0.1:${p.proxy.port}/app`)).code).toBe('28P01');
    // a side whose role's password SASLprep changes (PostgreSQL stored its verifier from the prepared form)
    await pair.blue.query(`CREATE ROLE prep_side LOGIN SUPERUSER PASSWORD '${pw}'`);
    const side = await another({ blue: { url: `postgres://prep_side:${encodeURIComponent(pw)}@127.0.0.1:${pair.blue.port}/app` } });
    const viaSide = await connect(side.url());
    expect((await viaSide.query('SELECT current_user AS u')).rows).toEqual([{ u: 'prep_side' }]);
  });

  test('trust lets any user in, mapped to the side credentials', async () => {
    const p = await another({ proxy: { auth: 'trust' } });
    const c = await connect(`postgres://whoever@127.0.0.1:${p.proxy.port}/app`);
    expect((await c.query('SELECT current_user AS u')).rows).toEqual([{ u: 'postgres' }]);
    expect(p.proxy.sessions().map((s) => s.user)).toEqual(['whoever']);
  });
});

describe('startup parameters', () => {
  test('application_name, options and GUCs reach the backend; the database name maps through', async () => {
    const c = await connect(px.url(PROXY_USER, 'postgres'), { application_name: 'startup-test', options: '-c search_path=elsewhere -c work_mem=5MB' });
    const r = await c.query("SELECT current_database() AS db, current_setting('application_name') AS app, current_setting('search_path') AS sp, current_setting('work_mem') AS wm");
    expect(r.rows).toEqual([{ db: 'postgres', app: 'startup-test', sp: 'elsewhere', wm: '5MB' }]);
  });

  test('client_encoding from the startup packet is the one the server uses', async () => {
    const c = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD, 'app', { client_encoding: 'LATIN1', DateStyle: 'German' });
    c.send(serialize.query("SELECT current_setting('client_encoding') || ' ' || current_setting('DateStyle')"));
    const row = (await c.until('Z')).find((m) => m.type === 'D')!;
    expect(row.body.toString('latin1', 6)).toBe('LATIN1 German, DMY');
    c.close();
  });

  test("the server's own startup errors are relayed (unknown database)", async () => {
    const e = await connectError(px.url(PROXY_USER, 'no_such_db'));
    expect(e.code).toBe('3D000');
    expect(e.message).toBe('database "no_such_db" does not exist');
  });

  test('replication connections are refused clearly', async () => {
    const c = await RawClient.open(px.proxy.port);
    c.send(startupPacket(196608, { user: PROXY_USER, database: 'app', replication: 'database' }));
    const m = await c.next();
    expect(fields(m)).toMatchObject({ S: 'FATAL', C: '0A000' });
    await c.waitClosed();
  });
});

describe('TLS and protocol negotiation', () => {
  test('SSLRequest gets N without a certificate; GSSENCRequest gets N', async () => {
    const ssl = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    const gss = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
    expect((await firstReply(px.proxy.port, ssl)).toString('latin1')).toBe('N');
    expect((await firstReply(px.proxy.port, gss)).toString('latin1')).toBe('N');
    // after an N the client continues in plain text on the same connection
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port: px.proxy.port }, () => sock.write(ssl));
      let got = Buffer.alloc(0);
      sock.on('data', (d) => {
        if (got.length === 0 && d[0] === 0x4e) sock.write(startupPacket(196608, { user: PROXY_USER, database: 'app' }));
        got = Buffer.concat([got, d]);
        if (got.length >= 10) { sock.destroy(); resolve(got); }
      });
      sock.on('error', reject);
    });
    expect(reply.toString('latin1', 0, 2)).toBe('NR');
    expect(reply.readInt32BE(6)).toBe(10); // AuthenticationSASL
  });

  test('TLS with the configured certificate', async () => {
    const p = await another({ proxy: { tls: { cert: path.join(tlsDir, 'cert.pem'), key: path.join(tlsDir, 'key.pem') } } });
    const c = await connect(p.url(), { ssl: { rejectUnauthorized: false } });
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect((c as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream.encrypted).toBe(true);
    // plain clients are still served
    const plain = await connect(p.url());
    expect((await plain.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
  });

  test('protocol 3.2 and _pq_ options get NegotiateProtocolVersion, then 3.0 continues', async () => {
    const c = await RawClient.open(px.proxy.port);
    c.send(startupPacket((3 << 16) | 2, { user: PROXY_USER, database: 'app', '_pq_.future_feature': 'on' }));
    const v = await c.next();
    expect(v.type).toBe('v');
    expect(v.body.readInt32BE(0)).toBe(0);
    expect(v.body.readInt32BE(4)).toBe(1);
    expect(v.body.toString('utf8', 8)).toBe('_pq_.future_feature\0');
    const r = await c.next();
    expect(r.type).toBe('R');
    expect(r.body.readInt32BE(0)).toBe(10); // SASL
    c.close();
  });

  test.each([[2, 0], [4, 0]])('protocol %i.%i is refused with a FATAL like PostgreSQL', async (major, minor) => {
    const c = await RawClient.open(px.proxy.port);
    c.send(startupPacket((major << 16) | minor, { user: PROXY_USER, database: 'app' }));
    const m = await c.next();
    expect(fields(m)).toMatchObject({ S: 'FATAL', C: '0A000', M: `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0` });
    await c.waitClosed();
  });
});

describe('bad input and limits', () => {
  test('a startup packet with a broken layout gets 08P01 and a closed socket', async () => {
    const c = await RawClient.open(px.proxy.port);
    c.send(Buffer.concat([startupPacket(196608, { user: 'x' }).subarray(0, -1), Buffer.from('z')]));
    expect(fields(await c.next())).toMatchObject({ S: 'FATAL', C: '08P01' });
    await c.waitClosed();
  });

  test('an invalid startup packet length (a Terminate before the StartupMessage) closes without a word, as PostgreSQL does', async () => {
    // node-postgres's end() right after connect() sends Terminate where the StartupMessage would be
    for (const bad of [Buffer.from([0x58, 0, 0, 0, 4]), Buffer.from([0, 0, 0, 4]), Buffer.from([0x7f, 0, 0, 0, 0, 3, 0, 0])]) {
      const c = await RawClient.open(px.proxy.port);
      c.send(bad);
      await c.waitClosed();
      await expect(c.next(1)).rejects.toThrow('connection closed');
    }
  });

  test('a message with an invalid length ends that session only', async () => {
    const bystander = await connect(px.url());
    const c = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD);
    c.send(Buffer.from([0x51, 0, 0, 0, 2]));
    const m = await c.next();
    expect(fields(m)).toMatchObject({ S: 'FATAL', C: '08P01' });
    await c.waitClosed();
    expect((await bystander.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });

  test('a message above proxy.maxMessageBytes gets 54000 and a closed socket; others go on', async () => {
    const p = await another({ proxy: { maxMessageBytes: 1024 * 1024 } });
    const bystander = await connect(p.url());
    const c = await RawClient.login(p.proxy.port, PROXY_USER, PROXY_PASSWORD);
    c.send(serialize.query(`SELECT '${'x'.repeat(2 * 1024 * 1024)}'`));
    const m = await c.next();
    expect(fields(m)).toMatchObject({ S: 'FATAL', C: '54000' });
    expect(fields(m).M).toContain('exceeds the limit of 1048576 bytes');
    await c.waitClosed();
    expect((await bystander.query("SELECT length(repeat('y', 2000000)) AS n")).rows).toEqual([{ n: 2000000 }]);
    // a large message under the limit passes
    expect((await bystander.query('SELECT length($1::text) AS n', ['z'.repeat(900_000)])).rows).toEqual([{ n: 900_000 }]);
  });

  test('garbage after login is left to the server, which ends just that session', async () => {
    const c = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD);
    c.send(rawMessage('!', Buffer.from('garbage')));
    const m = await c.next();
    expect(fields(m)).toMatchObject({ S: 'FATAL', C: '08P01' });
    await c.waitClosed();
  });

  test('the client limit answers 53300 "sorry, too many clients already"', async () => {
    const p = await another({ proxy: { maxClientConnections: 2 } });
    const a = await connect(p.url());
    const b = await connect(p.url());
    const e = await connectError(p.url());
    expect(e).toEqual({ code: '53300', message: 'sorry, too many clients already' });
    await a.end();
    for (let i = 0; i < 50 && p.proxy.sessionCount() > 1; i++) await new Promise((r) => setTimeout(r, 20));
    const c = await connect(p.url());
    expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    expect((await b.query('SELECT 2 AS ok')).rows).toEqual([{ ok: 2 }]);
  });
});

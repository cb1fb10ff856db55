'use strict';
/**
 * Opens many raw, authenticated PostgreSQL connections and leaves them idle, to measure what
 * an idle client costs a proxy. Speaks just enough of the protocol: StartupMessage, then
 * SCRAM-SHA-256, md5, cleartext or trust, until the first ReadyForQuery.
 */
const crypto = require('node:crypto');
const net = require('node:net');

function startupMessage(user, database) {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0application_name\0idle-client\0\0`);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(196608, 4); // protocol 3.0
  return Buffer.concat([head, body]);
}

function message(type, body) {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

const LOGIN_TIMEOUT_MS = 15_000;
const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const saltedCache = new Map(); // one PBKDF2 per (password, salt, iterations), not per connection

/** The SCRAM-SHA-256 client side (RFC 5802/7677), without channel binding. */
function scram(password) {
  const nonce = crypto.randomBytes(18).toString('base64');
  const clientFirstBare = `n=,r=${nonce}`;
  return {
    first() {
      const mech = Buffer.from('SCRAM-SHA-256\0');
      const data = Buffer.from(`n,,${clientFirstBare}`);
      const len = Buffer.alloc(4);
      len.writeInt32BE(data.length, 0);
      return message('p', Buffer.concat([mech, len, data]));
    },
    final(serverFirst) {
      const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
      if (!attrs.r || !attrs.r.startsWith(nonce)) throw new Error('SCRAM: server nonce does not extend ours');
      const key = `${password}\0${attrs.s}\0${attrs.i}`;
      let salted = saltedCache.get(key);
      if (!salted) {
        salted = crypto.pbkdf2Sync(password, Buffer.from(attrs.s, 'base64'), Number(attrs.i), 32, 'sha256');
        saltedCache.set(key, salted);
      }
      const clientKey = hmac(salted, 'Client Key');
      const storedKey = crypto.createHash('sha256').update(clientKey).digest();
      const withoutProof = `c=biws,r=${attrs.r}`;
      const signature = hmac(storedKey, `${clientFirstBare},${serverFirst},${withoutProof}`);
      const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i])).toString('base64');
      return message('p', Buffer.from(`${withoutProof},p=${proof}`));
    },
  };
}

function md5Password(user, password, salt) {
  const inner = crypto.createHash('md5').update(password + user).digest('hex');
  return 'md5' + crypto.createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
}

/** One connection: resolves with the idle socket after ReadyForQuery. */
function connectOne({ host, port, user, password, database }) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    let sasl;
    const timer = setTimeout(() => fail(new Error(`no ReadyForQuery from ${host}:${port} within ${LOGIN_TIMEOUT_MS} ms`)), LOGIN_TIMEOUT_MS);
    const fail = (err) => { clearTimeout(timer); sock.destroy(); reject(err); };
    sock.on('error', fail);
    sock.on('connect', () => sock.write(startupMessage(user, database)));
    sock.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 5) {
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) break;
        const type = String.fromCharCode(buf[0]);
        const body = buf.subarray(5, 1 + len);
        buf = buf.subarray(1 + len);
        try {
          if (type === 'R') {
            const code = body.readInt32BE(0);
            if (code === 10) { sasl = scram(password); sock.write(sasl.first()); }
            else if (code === 11) sock.write(sasl.final(body.subarray(4).toString()));
            else if (code === 3) sock.write(message('p', Buffer.from(`${password}\0`)));
            else if (code === 5) sock.write(message('p', Buffer.from(`${md5Password(user, password, body.subarray(4, 8))}\0`)));
            else if (code !== 0 && code !== 12) throw new Error(`unsupported authentication request ${code}`);
          } else if (type === 'E') {
            throw new Error(`server error: ${body.toString().split('\0').filter((f) => f[0] === 'M').map((f) => f.slice(1)).join(' ')}`);
          } else if (type === 'Z') {
            clearTimeout(timer);
            sock.removeAllListeners('data');
            sock.removeListener('error', fail);
            sock.on('error', () => undefined); // a closing proxy at the end is not our concern
            resolve(sock);
            return;
          }
        } catch (err) {
          fail(err);
          return;
        }
      }
    });
  });
}

/** Opens `count` idle connections, `batch` at a time; close() ends them all with Terminate. */
async function openIdleClients(target, count, batch = 50) {
  const sockets = [];
  try {
    for (let i = 0; i < count; i += batch) {
      const n = Math.min(batch, count - i);
      sockets.push(...(await Promise.all(Array.from({ length: n }, () => connectOne(target)))));
    }
  } catch (err) {
    for (const s of sockets) s.destroy();
    throw err;
  }
  return {
    sockets,
    async close() {
      const terminate = message('X', Buffer.alloc(0));
      await Promise.all(sockets.map((s) => new Promise((r) => { s.once('close', r); s.end(terminate); setTimeout(() => { s.destroy(); r(); }, 2000).unref(); })));
    },
  };
}

module.exports = { openIdleClients };

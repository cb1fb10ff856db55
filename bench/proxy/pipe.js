'use strict';
/**
 * The floor a Node.js relay starts from: a bare socket pipe ('data' events, one backend per
 * client, backpressure, nothing else). Used by bench/proxy/cpu.js.
 * Usage: node pipe.js LISTEN_PORT BACKEND_PORT
 */
const net = require('node:net');

const [port, backendPort] = process.argv.slice(2).map(Number);
net.createServer({ noDelay: true }, (c) => {
  const b = net.connect({ host: '127.0.0.1', port: backendPort, noDelay: true });
  c.on('data', (d) => { if (!b.write(d)) c.pause(); });
  b.on('data', (d) => { if (!c.write(d)) b.pause(); });
  b.on('drain', () => c.resume());
  c.on('drain', () => b.resume());
  c.on('close', () => b.destroy());
  b.on('close', () => c.destroy());
  c.on('error', () => undefined);
  b.on('error', () => undefined);
}).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));

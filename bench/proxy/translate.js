'use strict';
/**
 * What OID translation costs a moved session per read (needs `npm run build`): the relay's
 * FrameWalker alone vs the translator in front of it, on the reads of a pgbench -S session in
 * prepared mode (server: BindComplete, DataRow, CommandComplete, ReadyForQuery) and simple mode
 * (RowDescription, DataRow, CommandComplete, ReadyForQuery). Sessions that did not move (or
 * whose sides' OIDs agree) pay nothing beyond a null check.
 */
const { FrameWalker, inspectTable, WHOLE } = require('../../dist/proxy/framing');
const { OidTranslator } = require('../../dist/proxy/type-identity');

const msg = (type, body) => { const h = Buffer.alloc(5); h[0] = type.charCodeAt(0); h.writeInt32BE(body.length + 4, 1); return Buffer.concat([h, body]); };
const rowDesc = () => { const f = Buffer.alloc(18); f.writeUInt32BE(16400, 0); f.writeUInt32BE(23, 6); return msg('T', Buffer.concat([Buffer.from([0, 1]), Buffer.from('abalance\0'), f])); };
const dataRow = msg('D', Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 4]), Buffer.from('1234')]));
const reads = {
  prepared: Buffer.concat([msg('2', Buffer.alloc(0)), dataRow, msg('C', Buffer.from('SELECT 1\0')), msg('Z', Buffer.from('I'))]),
  simple: Buffer.concat([rowDesc(), dataRow, msg('C', Buffer.from('SELECT 1\0')), msg('Z', Buffer.from('I'))]),
};
const table = inspectTable([[0x5a, WHOLE], [0x45, WHOLE], [0x43, WHOLE]]);
const sink = { onMessage() {} };
const N = Number(process.env.N || 2e6);
for (const [mode, read] of Object.entries(reads)) {
  const map = new Map([[16400, 17000]]);
  const time = (withTranslator) => {
    const w = new FrameWalker(table, sink, 0x7fffffff);
    const tr = new OidTranslator(map, true);
    const buf = Buffer.from(read);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) { const b = withTranslator ? tr.feed(buf) : buf; w.walk(b); }
    return Number(process.hrtime.bigint() - t0) / N;
  };
  time(false); time(true);
  const plain = Math.min(time(false), time(false), time(false));
  const translated = Math.min(time(true), time(true), time(true));
  console.log(`${mode}: walker ${plain.toFixed(0)} ns/read, with translation ${translated.toFixed(0)} ns/read (+${(translated - plain).toFixed(0)} ns)`);
}

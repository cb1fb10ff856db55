import { serialize } from 'pg-protocol';
import { OidTranslator, oidTranslation } from '../../src/proxy/type-identity';
import { rawMessage } from './raw-client';

/** RowDescription with one column of the given table and type OIDs */
function rowDescription(table: number, type: number): Buffer {
  const f = Buffer.alloc(18);
  f.writeUInt32BE(table, 0); f.writeInt16BE(1, 4); f.writeUInt32BE(type, 6); f.writeInt16BE(4, 10); f.writeInt32BE(-1, 12); f.writeInt16BE(0, 16);
  const n = Buffer.alloc(2); n.writeInt16BE(1);
  return rawMessage('T', Buffer.concat([n, Buffer.from('m\0'), f]));
}

describe('OID translation', () => {
  const t = oidTranslation(new Map([['tpublic.mood', 16386], ['cpublic.feelings', 16391]]), new Map([['tpublic.mood', 16393], ['cpublic.feelings', 16397], ['tpublic.other', 16386]]))!;

  test('maps by name; objects with equal OIDs or only on one side are left alone', () => {
    expect([...t.toClient]).toEqual([[16393, 16386], [16397, 16391]]);
    expect(oidTranslation(new Map([['tpublic.mood', 1]]), new Map([['tpublic.mood', 1]]))).toBeNull();
  });

  test('RowDescription towards the client, also when cut across reads; other messages pass as they come', () => {
    const tr = new OidTranslator(t.toClient, true);
    const data = Buffer.concat([rowDescription(16397, 16393), rawMessage('D', Buffer.alloc(10)), rowDescription(20000, 23)]);
    const out: Buffer[] = [];
    for (let i = 0; i < data.length; i += 7) out.push(Buffer.from(tr.feed(Buffer.from(data.subarray(i, i + 7)))));
    expect(Buffer.concat(out)).toEqual(Buffer.concat([rowDescription(16391, 16386), rawMessage('D', Buffer.alloc(10)), rowDescription(20000, 23)]));
  });

  test('Parse parameter types towards the server', () => {
    const tr = new OidTranslator(t.toServer, false);
    const got = tr.feed(Buffer.from(serialize.parse({ name: 's', text: 'SELECT $1, $2', types: [16386, 25] })));
    expect(got).toEqual(serialize.parse({ name: 's', text: 'SELECT $1, $2', types: [16393, 25] }));
  });
});

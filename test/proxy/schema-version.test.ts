/**
 * The search_path changes of a session served the previous schema version: every spelling a
 * driver uses keeps the compatibility schema in front (what the drivers do through the proxy is
 * in test/compat/drivers.test.ts).
 */
import { rewriteSetSearchPath } from '../../src/proxy/schema-version';

const S = 'pgflip_compat_x';

test.each([
  ['SET search_path TO public', 'SET search_path TO "pgflip_compat_x", public'],
  ['set search_path = app, public;', 'SET search_path TO "pgflip_compat_x", app, public'],
  ['SET SESSION search_path TO \'$user\', public', 'SET SESSION search_path TO "pgflip_compat_x", \'$user\', public'],
  ['SET LOCAL search_path = app', 'SET LOCAL search_path TO "pgflip_compat_x", app'],
  ["SET SCHEMA 'app'", 'SET search_path TO "pgflip_compat_x", \'app\''],
  ["SET SESSION SCHEMA 'it''s'", 'SET SESSION search_path TO "pgflip_compat_x", \'it\'\'s\''],
  ["SELECT set_config('search_path', 'app, public', false)", "SELECT set_config('search_path', '\"pgflip_compat_x\", ' || 'app, public', false)"],
  ["select pg_catalog.set_config( 'search_path' , $1, true);", "SELECT pg_catalog.set_config('search_path', CASE WHEN $1::text = '' THEN $1::text ELSE '\"pgflip_compat_x\", ' || $1::text END, true)"],
])('%s → %s', (sql, out) => {
  expect(rewriteSetSearchPath(sql, S)).toBe(out);
});

test.each([
  'SET search_path TO DEFAULT',
  'SET search_path TO "pgflip_compat_x", public',
  'SELECT 1',
  'SET search_path TO a; SELECT 1',
  "SELECT set_config('work_mem', '1MB', false)",
  // pg_dump's empty path, a call inside a function body or another expression: as they are
  "SELECT pg_catalog.set_config('search_path', '', false);",
  "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ SELECT set_config('search_path', 'public', false) $$",
  "SELECT set_config('search_path', 'public', false) IS NOT NULL",
  'SET work_mem = 1',
])('%s is left as it is', (sql) => {
  expect(rewriteSetSearchPath(sql, S)).toBeUndefined();
});

describe('the messages rewritten on the wire', () => {
  const { compatParseMessage, compatQueryMessage, mayChangePath } = require('../../src/proxy/schema-version') as typeof import('../../src/proxy/schema-version');
  const { serialize } = require('pg-protocol') as typeof import('pg-protocol');

  test('a Query keeps every byte the client sent (client_encoding LATIN1: é is one byte 0xE9)', () => {
    const sql = Buffer.concat([Buffer.from("SET search_path TO 'caf", 'latin1'), Buffer.from([0xe9]), Buffer.from("'", 'latin1')]);
    const msg = Buffer.concat([Buffer.from([0x51]), Buffer.alloc(4), sql, Buffer.from([0])]);
    msg.writeInt32BE(msg.length - 1, 1);
    expect(mayChangePath(msg)).toBe(true);
    const out = compatQueryMessage(msg, S);
    expect(out.readInt32BE(1)).toBe(out.length - 1);
    expect(out.subarray(5, out.length - 1)).toEqual(Buffer.concat([Buffer.from('SET search_path TO "pgflip_compat_x", \'caf', 'latin1'), Buffer.from([0xe9]), Buffer.from("'")]));
  });

  test('a Parse keeps its name and parameter types; other messages and other SQL stay the same object', () => {
    const msg = serialize.parse({ name: 's1', text: 'SET search_path TO public', types: [25, 23] });
    const out = compatParseMessage(msg, S);
    expect(out).toEqual(serialize.parse({ name: 's1', text: 'SET search_path TO "pgflip_compat_x", public', types: [25, 23] }));
    const other = serialize.parse({ name: 's2', text: 'SELECT 1', types: [] });
    expect(mayChangePath(other)).toBe(false);
    const bind = serialize.bind({ statement: 'search_path', values: [] });
    expect(mayChangePath(bind)).toBe(false);
  });
});

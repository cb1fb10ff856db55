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
  ["select pg_catalog.set_config( 'search_path' , $1, true)", "select pg_catalog.set_config('search_path', '\"pgflip_compat_x\", ' || $1, true)"],
])('%s → %s', (sql, out) => {
  expect(rewriteSetSearchPath(sql, S)).toBe(out);
});

test.each([
  'SET search_path TO DEFAULT',
  'SET search_path TO "pgflip_compat_x", public',
  'SELECT 1',
  'SET search_path TO a; SELECT 1',
  "SELECT set_config('work_mem', '1MB', false)",
  'SET work_mem = 1',
])('%s is left as it is', (sql) => {
  expect(rewriteSetSearchPath(sql, S)).toBeUndefined();
});

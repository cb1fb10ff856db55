/**
 * The statements sync apply prepares on the target, as text: built from a
 * relation's plan with no database. Each one must also parse with the
 * PostgreSQL parser and number its parameters exactly as its blocks say.
 */
import { loadModule, parseSync } from 'libpg-query';
import { RelationPlan, RelationSql, STATE_TABLE_DDL, STATE_UPSERT, truncateSql } from '../../src/sync/apply-sql';
import type { ColumnPlan } from '../../src/sync/plan';

beforeAll(async () => { await loadModule(); });

function relation(columns: (string | ColumnPlan)[], o: { key?: number[]; full?: boolean; overriding?: boolean; types?: string[]; target?: string } = {}): RelationSql {
  const cols = columns.map((c) => (typeof c === 'string' ? { source: c, target: c } : c));
  const rp: RelationPlan = {
    relid: 1,
    plan: { source: { schema: 'public', name: 'users' }, target: { schema: 'public', name: o.target ?? 'users' }, dropped: false, columns: cols },
    sourceTypes: o.types ?? cols.map(() => 'integer'),
    keyIdx: o.key ?? (o.full ? cols.map((_, i) => i) : [0]),
    full: o.full ?? false,
    overriding: o.overriding ?? false,
  };
  return new RelationSql(rp);
}

/** The statement parses as PostgreSQL SQL and uses parameters $1..$n, every one of them. */
function expectValid(sql: string, params: number): void {
  expect(() => parseSync(sql)).not.toThrow();
  const used = new Set([...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
  expect([...used].sort((a, b) => a - b)).toEqual(Array.from({ length: params }, (_, i) => i + 1));
}

test('insert: one block of the written columns per row, target names, dropped columns left out', () => {
  const r = relation(['id', { source: 'name', target: 'full_name' }, { source: 'legacy' }, 'email']);
  expect(r.insertNeed).toEqual([0, 1, 3]);
  expect(r.insert(1)).toBe('INSERT INTO "public"."users" ("id", "full_name", "email") VALUES ($1, $2, $3)');
  expect(r.insert(2)).toBe('INSERT INTO "public"."users" ("id", "full_name", "email") VALUES ($1, $2, $3), ($4, $5, $6)');
  expectValid(r.insert(2), 6);
});

test('insert into a table with GENERATED ALWAYS identity: OVERRIDING SYSTEM VALUE', () => {
  const r = relation(['id', 'name'], { overriding: true });
  expect(r.insert(1)).toBe('INSERT INTO "public"."users" ("id", "name") OVERRIDING SYSTEM VALUE VALUES ($1, $2)');
  expectValid(r.insert(1), 2);
});

test('identifiers are always quoted, quotes inside them doubled', () => {
  const r = relation(['id', { source: 'Name', target: 'Full "Name"' }], { target: 'User Table' });
  expect(r.insert(1)).toBe('INSERT INTO "public"."User Table" ("id", "Full ""Name""") VALUES ($1, $2)');
  expectValid(r.insert(1), 2);
});

test('delete by key: = for one row, IN for several, row constructors for a composite key', () => {
  const single = relation(['id', 'name']);
  expect(single.deleteByKey(1)).toBe('DELETE FROM "public"."users" WHERE "id" = $1');
  expect(single.deleteByKey(3)).toBe('DELETE FROM "public"."users" WHERE "id" IN ($1, $2, $3)');
  expectValid(single.deleteByKey(3), 3);
  const composite = relation(['tenant', 'id', 'name'], { key: [0, 1] });
  expect(composite.deleteByKey(1)).toBe('DELETE FROM "public"."users" WHERE ("tenant", "id") IN (($1, $2))');
  expect(composite.deleteByKey(2)).toBe('DELETE FROM "public"."users" WHERE ("tenant", "id") IN (($1, $2), ($3, $4))');
  expectValid(composite.deleteByKey(2), 4);
});

test('update: SET the values the change carries, then the old key; an unchanged key stays out of SET', () => {
  const r = relation(['id', 'name', 'email']);
  const moved = r.update(['2', 'n', 'e'], ['1'], false);
  expect(moved).toEqual({ text: 'UPDATE "public"."users" SET "id" = $1, "name" = $2, "email" = $3 WHERE "id" = $4', setNeed: [0, 1, 2], identNeed: [0] });
  expectValid(moved.text!, 4);
  const same = r.update(['1', 'n', 'e'], ['1'], true);
  expect(same).toEqual({ text: 'UPDATE "public"."users" SET "name" = $1, "email" = $2 WHERE "id" = $3', setNeed: [1, 2], identNeed: [0] });
  // an unchanged TOAST value (undefined) is left out of SET
  const toast = r.update(['1', undefined, 'e'], ['1'], true);
  expect(toast).toEqual({ text: 'UPDATE "public"."users" SET "email" = $1 WHERE "id" = $2', setNeed: [2], identNeed: [0] });
  expectValid(toast.text!, 2);
});

test('update that changes nothing the target keeps: no statement', () => {
  const r = relation(['id', { source: 'legacy' }]);
  expect(r.update(['1', 'x'], ['1'], true)).toEqual({ text: undefined, setNeed: [], identNeed: [0] });
});

test('a type change without USING casts through the source type to the new one', () => {
  const r = relation(['id', { source: 'balance', target: 'balance', newType: 'bigint' }], { types: ['integer', 'integer'] });
  expect(r.insert(1)).toBe('INSERT INTO "public"."users" ("id", "balance") VALUES ($1, $2::integer::bigint)');
  expect(r.update(['1', '5'], ['1'], true).text).toBe('UPDATE "public"."users" SET "balance" = $1::integer::bigint WHERE "id" = $2');
  expectValid(r.insert(1), 2);
});

test('a USING expression reads the whole source row: every parameter of its block cast to its source type', () => {
  const r = relation(['id', { source: 'first', target: 'first' }, { source: 'amount', target: 'amount', newType: 'numeric(12,2)', using: 'amount / 100.0' }], { types: ['integer', 'text', 'integer'] });
  expect(r.insertNeed).toEqual([0, 1, 2]);
  expect(r.usingReads).toEqual(new Map([[2, [2]]]));
  expect(r.insert(2)).toBe(
    'INSERT INTO "public"."users" ("id", "first", "amount") VALUES ' +
    '($1::integer, $2::text, (SELECT (amount / 100.0)::numeric(12,2) FROM (VALUES ($1::integer, $2::text, $3::integer)) AS "users"("id", "first", "amount"))), ' +
    '($4::integer, $5::text, (SELECT (amount / 100.0)::numeric(12,2) FROM (VALUES ($4::integer, $5::text, $6::integer)) AS "users"("id", "first", "amount")))');
  expectValid(r.insert(2), 6);
  const u = r.update(['1', 'a', '250'], ['1'], true);
  expect(u.setNeed).toEqual([0, 1, 2]);
  expect(u.text).toBe('UPDATE "public"."users" SET "first" = $2::text, "amount" = (SELECT (amount / 100.0)::numeric(12,2) FROM (VALUES ($1::integer, $2::text, $3::integer)) AS "users"("id", "first", "amount")) WHERE "id" = $4');
  expectValid(u.text!, 4);
});

test('REPLICA IDENTITY FULL: the first row equal to the old one in the columns the change carries', () => {
  const r = relation(['a', 'b', 'c'], { full: true });
  expect(r.fullDelete(['1', null, '3'])).toBe('DELETE FROM "public"."users" WHERE ctid = (SELECT ctid FROM "public"."users" WHERE "a" IS NOT DISTINCT FROM $1 AND "b" IS NOT DISTINCT FROM $2 AND "c" IS NOT DISTINCT FROM $3 LIMIT 1)');
  expect(r.fullDeleteNeed(['1', null, '3'])).toEqual([0, 1, 2]);
  // an old value the change does not carry (unchanged TOAST) is not compared
  expect(r.fullDelete(['1', undefined, '3'])).toBe('DELETE FROM "public"."users" WHERE ctid = (SELECT ctid FROM "public"."users" WHERE "a" IS NOT DISTINCT FROM $1 AND "c" IS NOT DISTINCT FROM $2 LIMIT 1)');
  expect(r.fullDeleteNeed(['1', undefined, '3'])).toEqual([0, 2]);
  const u = r.update(['1', '2', '9'], ['1', '2', '3'], false);
  expect(u).toEqual({
    text: 'UPDATE "public"."users" SET "a" = $1, "b" = $2, "c" = $3 WHERE ctid = (SELECT ctid FROM "public"."users" WHERE "a" IS NOT DISTINCT FROM $4 AND "b" IS NOT DISTINCT FROM $5 AND "c" IS NOT DISTINCT FROM $6 LIMIT 1)',
    setNeed: [0, 1, 2], identNeed: [0, 1, 2],
  });
  expectValid(u.text!, 6);
});

test('truncate, and the position bookkeeping statements', () => {
  expect(truncateSql(['"public"."a"', '"public"."B"'], false)).toBe('TRUNCATE ONLY "public"."a", "public"."B"');
  expect(truncateSql(['"public"."a"'], true)).toBe('TRUNCATE ONLY "public"."a" RESTART IDENTITY');
  expect(() => parseSync(STATE_TABLE_DDL)).not.toThrow();
  expectValid(STATE_UPSERT, 4);
});

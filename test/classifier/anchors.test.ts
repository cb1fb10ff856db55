/**
 * Parity with Squawk, strong_migrations and Eugene: for every rule, pgflip's answer to a migration
 * that triggers it (the class, the operations, the warning or error that covers it), and the table
 * in docs/classifier.md that names the row or check — or why pgflip decides differently.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { classifySqlSync, loadParser } from '../../src/classifier';
import { anchorAnswer, ANCHOR_RULES, AnchorRule } from './anchors';

beforeAll(() => loadParser());

const rows = ANCHOR_RULES.map((a) => [`${a.tool} ${a.rule}`, a] as [string, AnchorRule]);

test.each(rows)('%s', (_name, a) => {
  const r = classifySqlSync(a.sql, { pgVersion: a.pgVersion ?? 15 });
  expect(r.operations.map((o) => o.type).filter((t, i, all) => all.indexOf(t) === i)).toEqual(a.expect.ops);
  expect(r.classification).toBe(a.expect.class);
  if (a.expect.error) expect(r.errors.some((e) => a.expect.error!.test(e))).toBe(true);
  else expect(r.errors).toEqual([]);
  if (a.expect.warning) expect(r.warnings.some((w) => a.expect.warning!.test(w))).toBe(true);
  // a rule pgflip agrees with is never answered "safe" without the warning or error that covers it
  if (!a.differs && r.classification === 'safe') expect(a.expect.warning ?? a.expect.error).toBeDefined();
  // and one it decides differently about is one it really answers safe
  if (a.differs) expect(r.classification).toBe('safe');
});

test('every rule once, and the docs table is the list', () => {
  const names = rows.map(([n]) => n);
  expect(new Set(names).size).toBe(names.length);
  expect(ANCHOR_RULES.filter((a) => a.tool === 'squawk')).toHaveLength(78);
  expect(ANCHOR_RULES.filter((a) => a.tool === 'eugene').map((a) => a.rule)).toEqual(
    ['E1', 'E2', 'E3', 'E4', 'E5', 'E6', 'E7', 'E8', 'E9', 'E10', 'E11', 'W12', 'W13', 'W14', 'E15', 'E16']);
  const doc = readFileSync(path.resolve(__dirname, '../../docs/classifier.md'), 'utf8');
  const table = doc.split('\n').filter((l) => /^\| (squawk|strong_migrations|eugene) \|/.test(l));
  expect(table).toEqual(ANCHOR_RULES.map((a) => `| ${a.tool} | ${a.rule} | ${anchorAnswer(a)} |`));
});

/** docs/classifier.md documents every row of the operation table with the code's answers. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { OPERATIONS, OperationRule } from '../../src/classifier';

const doc = readFileSync(path.resolve(__dirname, '../../docs/classifier.md'), 'utf8');

test.each(Object.entries(OPERATIONS) as Array<[string, OperationRule]>)('%s is documented as in the code', (type, rule) => {
  const row = doc.split('\n').find((l) => l.startsWith(`| ${type} |`));
  expect(row).toBeDefined();
  const cells = row!.split('|').map((c) => c.trim());
  expect(cells.slice(2, 8)).toEqual([rule.lock, rule.rewrite ? 'yes' : 'no', rule.scan ? 'yes' : 'no', rule.backwardCompatible ? 'yes' : 'no', rule.classification, rule.risk]);
  expect(cells[9].startsWith(rule.reason)).toBe(true);
});

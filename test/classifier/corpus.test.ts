/**
 * Every file of the shared corpus (real migrations from public projects) gets a report without
 * a crash; the ones PostgreSQL's parser rejects are invalid with the parser's line and column.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as lq from 'libpg-query';
import { classifySqlSync, loadParser } from '../../src/classifier';

/** PGFLIP_CORPUS, or the shared corpus next to the repository's checkout */
const CORPUS = path.resolve(process.env.PGFLIP_CORPUS ?? path.join(__dirname, '../../../shared/corpus'));
const MANIFEST = path.join(CORPUS, 'MANIFEST.tsv');
const present = existsSync(MANIFEST);
if (!present) process.stderr.write(`corpus tests did not run: no ${MANIFEST} (set PGFLIP_CORPUS to the corpus directory)\n`);
const files = present ? readFileSync(MANIFEST, 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t')[3]) : [];
const corpusTest = present ? test : test.skip;

/** where the parser itself says the error is, counted independently of the classifier */
function parserError(sql: string): { line: number; column: number } | undefined {
  if (sql.trim() === '') return undefined;
  try { lq.parseSync(sql); return undefined; } catch (err) {
    const before = sql.slice(0, (err as lq.SqlError).sqlDetails!.cursorPosition);
    const lines = before.split('\n');
    return { line: lines.length, column: lines[lines.length - 1].length + 1 };
  }
}

beforeAll(() => loadParser());

corpusTest('the corpus manifest lists 1,183 files', () => {
  expect(files).toHaveLength(1183);
});

corpusTest('every corpus file gets a report; files the parser rejects are invalid with line and column', () => {
  let rejected = 0;
  for (const f of files) {
    const sql = readFileSync(path.join(CORPUS, f), 'utf8');
    const r = classifySqlSync(sql, { fileName: f });
    expect(['safe', 'risky', 'maintenance']).toContain(r.classification);
    expect(['LOW', 'MEDIUM', 'HIGH']).toContain(r.riskLevel);
    expect(r.isValid).toBe(r.errors.length === 0);
    for (const op of r.operations) expect(op.line).toBeGreaterThan(0);
    const bad = parserError(sql);
    if (bad) {
      rejected++;
      expect({ file: f, isValid: r.isValid }).toEqual({ file: f, isValid: false });
      expect(r.errors[0]).toMatch(/^line \d+, column \d+: /);
      // the first error the classifier reports is at or before where the whole-file parse stopped
      const [, line, column] = /^line (\d+), column (\d+)/.exec(r.errors[0])!.map(Number);
      expect(line < bad.line || (line === bad.line && column <= bad.column)).toBe(true);
      expect(r.classification).not.toBe('safe');
    }
  }
  expect(rejected).toBeGreaterThan(0);
});

corpusTest('comment-only corpus files are valid and safe', () => {
  const statements = (sql: string) => { try { return (lq.parseSync(sql).stmts ?? []).length; } catch { return -1; } };
  const commentOnly = files.filter((f) => statements(readFileSync(path.join(CORPUS, f), 'utf8')) === 0);
  expect(commentOnly).toHaveLength(5); // as the corpus README says
  for (const f of commentOnly) {
    expect(classifySqlSync(readFileSync(path.join(CORPUS, f), 'utf8'))).toMatchObject({ isValid: true, classification: 'safe', operations: [] });
  }
});

/**
 * Validation reports for CI systems: GitHub workflow commands (annotations on the file and
 * line of each finding) and SARIF 2.1.0 (code scanning). Both say the same as the table: an
 * invalid file is an error at the parser's line and column; a risky or maintenance operation is
 * a warning at its statement's line, with the reason and the safer alternative; the report's
 * warnings are notes (warnings when they name a line).
 */
import type { ReportOperation, ValidationReport } from './types';

interface Finding {
  level: 'error' | 'warning' | 'note';
  /** operation type, `invalid-sql` or `pgflip-warning` */
  rule: string;
  title: string;
  message: string;
  line?: number;
  column?: number;
}

const LOCATED = /^line (\d+), column (\d+): ([\s\S]*)$/;
const LINE_IN = /\bline (\d+)\b/;

function opMessage(op: ReportOperation): string {
  const target = op.table ? ` on ${op.column ? `${op.table}.${op.column}` : op.table}` : '';
  return `${op.type}${target} is ${op.classification} (${op.riskLevel}, ${op.lock} lock${op.rewrite ? ', rewrites the table' : ''}): ${op.reason}${op.saferAlternative ? `. Safer: ${op.saferAlternative}` : ''}`;
}

function findings(r: ValidationReport): Finding[] {
  const out: Finding[] = [];
  for (const e of r.errors) {
    const m = LOCATED.exec(e);
    out.push(m
      ? { level: 'error', rule: 'invalid-sql', title: 'pgflip: invalid SQL', message: m[3], line: Number(m[1]), column: Number(m[2]) }
      : { level: 'error', rule: 'invalid-sql', title: 'pgflip: invalid', message: e });
  }
  for (const op of r.operations) {
    if (op.classification === 'safe') continue;
    out.push({ level: 'warning', rule: op.type, title: `pgflip: ${op.classification} ${op.type}`, message: opMessage(op), line: op.line });
  }
  for (const w of r.warnings) {
    const line = LINE_IN.exec(w);
    out.push({ level: line ? 'warning' : 'note', rule: 'pgflip-warning', title: 'pgflip: warning', message: w, ...(line ? { line: Number(line[1]) } : {}) });
  }
  return out;
}

// GitHub workflow commands: data escapes %, CR, LF; property values also : and ,
const escData = (s: string) => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
const escProp = (s: string) => escData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');

/** One workflow command per finding, then one notice per file with its class. */
export function formatGithub(reports: ValidationReport[]): string {
  const lines: string[] = [];
  for (const r of reports) {
    for (const f of findings(r)) {
      const props = [`file=${escProp(r.file)}`, ...(f.line ? [`line=${f.line}`] : []), ...(f.column ? [`col=${f.column}`] : []), `title=${escProp(f.title)}`];
      lines.push(`::${f.level === 'note' ? 'notice' : f.level} ${props.join(',')}::${escData(f.message)}`);
    }
    lines.push(`::notice file=${escProp(r.file)},title=${escProp('pgflip')}::${escData(`${r.file}: ${r.isValid ? 'valid' : 'invalid'}, ${r.classification} (${r.riskLevel}), PostgreSQL ${r.pgVersion}`)}`);
  }
  return lines.join('\n');
}

/** A SARIF 2.1.0 log with one run: a rule per operation type found, a result per finding. */
export function formatSarif(reports: ValidationReport[], version: string): object {
  const rules = new Map<string, { id: string; shortDescription: { text: string } }>();
  const results = [];
  for (const r of reports) {
    for (const f of findings(r)) {
      if (!rules.has(f.rule)) rules.set(f.rule, { id: f.rule, shortDescription: { text: f.rule === 'invalid-sql' ? 'SQL PostgreSQL rejects' : f.rule === 'pgflip-warning' ? 'pgflip warning' : `${f.rule}: not safe to run on the live side` } });
      results.push({
        ruleId: f.rule,
        level: f.level,
        message: { text: f.message },
        locations: [{ physicalLocation: { artifactLocation: { uri: r.file }, ...(f.line ? { region: { startLine: f.line, ...(f.column ? { startColumn: f.column } : {}) } } : {}) } }],
        properties: { classification: r.classification, riskLevel: r.riskLevel },
      });
    }
  }
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [{ tool: { driver: { name: 'pgflip', version, rules: [...rules.values()] } }, results }],
  };
}

/**
 * Programmatic API of the classifier: the validation report (docs/classifier.md) for a file or a SQL string.
 */
import { readFile } from 'node:fs/promises';
import { analyze } from './analyze';
import { Catalog, loadCatalog } from './catalog';
import { loadParser, parseFile, ParsedFile } from './parser';
import { ClassifyOptions, DEFAULT_PG_VERSION, ValidationReport } from './types';
import { extract } from './extract';

export * from './types';
export type { SchemaMapping, TableMapping, AddedColumn, ColumnTypeChange } from './mapping';
export { OPERATIONS, ruleFor } from './operations';
export type { OperationRule, OperationType } from './operations';
export { VERSION_FEATURES } from './features';
export { loadParser } from './parser';

/** Relations a parsed file names, to ask the live catalog about (schema.name keys). */
function referencedRelations(parsed: ParsedFile): string[] {
  const keys = new Set<string>();
  for (const s of parsed.statements) {
    try {
      for (const c of extract(s.kind, s.node, { text: s.text, base: s.start })) {
        if (c.table) keys.add(c.table.key);
        if (c.partition) keys.add(c.partition.key);
        for (const e of c.effects) if (e.kind === 'renameTable') keys.add(e.to.key);
      }
    } catch { /* a statement the extractor cannot read is classified (and reported) later */ }
  }
  return [...keys];
}

/**
 * Classifies SQL text. With `databaseUrl` the target version is the server's and the live
 * catalog adds table sizes and existence checks; `catalog` lets a caller reuse one it loaded.
 */
export async function classifySql(sql: string, opts: ClassifyOptions & { catalog?: Catalog } = {}): Promise<ValidationReport> {
  await loadParser();
  const parsed = parseFile(sql);
  let catalog = opts.catalog;
  if (!catalog && opts.databaseUrl) catalog = await loadCatalog(opts.databaseUrl, referencedRelations(parsed));
  const report = analyze({ file: opts.fileName ?? '<sql>', parsed, pgVersion: catalog?.serverVersion ?? opts.pgVersion ?? DEFAULT_PG_VERSION, catalog });
  if (catalog && opts.pgVersion !== undefined && opts.pgVersion !== catalog.serverVersion) {
    report.warnings.unshift(`--pg-version ${opts.pgVersion} ignored: the server is PostgreSQL ${catalog.serverVersion}`);
  }
  return report;
}

/** Synchronous variant without a live database (the parser must be loaded: `await loadParser()`). */
export function classifySqlSync(sql: string, opts: Omit<ClassifyOptions, 'databaseUrl'> & { catalog?: Catalog } = {}): ValidationReport {
  return analyze({ file: opts.fileName ?? '<sql>', parsed: parseFile(sql), pgVersion: opts.catalog?.serverVersion ?? opts.pgVersion ?? DEFAULT_PG_VERSION, catalog: opts.catalog });
}

/**
 * Classifies a file. A file that cannot be read gives an invalid report naming the problem
 * (not an exception), so one bad path does not hide the reports of the others.
 */
export async function classifyFile(path: string, opts: ClassifyOptions & { catalog?: Catalog } = {}): Promise<ValidationReport> {
  let sql: string;
  try {
    sql = await readFile(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return {
      file: path, isValid: false, classification: 'risky', riskLevel: 'MEDIUM', pgVersion: opts.pgVersion ?? DEFAULT_PG_VERSION,
      operations: [], warnings: [], errors: [`cannot read ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory' : e.message}`],
    };
  }
  return classifySql(sql, { ...opts, fileName: opts.fileName ?? path });
}

export { loadCatalog };
export type { Catalog };

import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { classifyFile, loadParser, MAX_PG_VERSION, MIN_PG_VERSION, ValidationReport } from '../classifier';
import { loadCatalog } from '../classifier/catalog';
import { formatReport } from '../classifier/format';
import { formatGithub, formatSarif } from '../classifier/ci-formats';
import { redactUrl } from '../observability/logger';
import { oldVersionPlan } from '../controller/compat';
import { readCatalog } from '../sync';
import { withClient } from '../util/pg';
import { MigrationTracer } from '../trace';

function pgVersion(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < MIN_PG_VERSION || n > MAX_PG_VERSION) {
    throw new InvalidArgumentError(`expected a PostgreSQL major version from ${MIN_PG_VERSION} to ${MAX_PG_VERSION}`);
  }
  return n;
}

type Format = 'table' | 'json' | 'github' | 'sarif';
interface ValidateFlags { json?: boolean; format?: Format; pgVersion?: number; databaseUrl?: string; trace?: boolean }

/**
 * `pgflip validate [--json | --format table|json|github|sarif] [--pg-version N] [--database-url URL] [--trace] FILE...`
 * (docs/classifier.md). With --trace the files also run on a throwaway local cluster
 * (src/trace), started while the files are classified.
 * Exit 0 when every file is valid without errors, 1 otherwise (an unreadable file is an
 * invalid report), 2 for usage errors (commander).
 */
export function registerValidate(program: Command): void {
  program.command('validate')
    .description('classify migration files as safe, risky or maintenance, and say why')
    .argument('<file...>', 'SQL migration files')
    .option('--json', 'print the JSON report (one object for one file, an array for several); same as --format json')
    .addOption(new Option('--format <format>', 'table (default), json, github (workflow annotations on file and line), sarif (code scanning)').choices(['table', 'json', 'github', 'sarif']))
    .addOption(new Option('--pg-version <N>', 'target PostgreSQL major version (default 15, or the server\'s with --database-url)').argParser(pgVersion))
    .option('--database-url <url>', 'read version, table sizes and the catalog from this database (read-only)')
    .option('--trace', 'also run the files on a throwaway local PostgreSQL cluster (with --database-url: on its schema, without data) and report what PostgreSQL did per statement')
    .action(async (files: string[], flags: ValidateFlags, cmd: Command) => {
      const format: Format = flags.format ?? (flags.json ? 'json' : 'table');
      if (flags.json && format !== 'json') cmd.error(`error: --json and --format ${format} ask for two formats`, { exitCode: 2 });
      // the cluster starts (and the schema is read) while the files are classified
      const tracer = flags.trace ? MigrationTracer.start({ databaseUrl: flags.databaseUrl }) : undefined;
      tracer?.catch(() => undefined); // awaited below
      try {
        await validate(files, flags, format, tracer);
      } finally {
        await tracer?.then((t) => t.close(), () => undefined);
      }
    });
}

async function validate(files: string[], flags: ValidateFlags, format: Format, tracer?: Promise<MigrationTracer>): Promise<void> {
  await loadParser();
  const reports: ValidationReport[] = [];
  if (flags.databaseUrl) {
    // one connection per file keeps the catalog query to the tables each file names
    try { await loadCatalog(flags.databaseUrl, []); } catch (err) {
      process.stderr.write(`pgflip validate: cannot read the catalog from ${redactUrl(flags.databaseUrl)}: ${(err as Error).message}\n`);
      process.exitCode = 1;
      return;
    }
  }
  for (const f of files) reports.push(await classifyFile(f, { pgVersion: flags.pgVersion, databaseUrl: flags.databaseUrl }));
  // a risky file, planned against the database's catalog: what the old application version keeps after the flip
  if (flags.databaseUrl) {
    for (const r of reports.filter((x) => x.isValid && x.classification === 'risky')) {
      const catalog = await withClient(flags.databaseUrl, readCatalog, 'pgflip-validate');
      r.oldVersion = oldVersionPlan('validate', r.mapping, catalog, true);
    }
  }
  if (tracer) {
    try {
      const texts = await Promise.all(files.map((f) => readFile(f, 'utf8').catch(() => undefined)));
      await (await tracer).traceFiles(reports.map((report, i) => ({ report, sql: texts[i] })));
    } catch (err) {
      process.stderr.write(`pgflip validate: --trace: ${(err as Error).message}\n`);
      process.exitCode = 1;
      return;
    }
  }
  const out = {
    table: () => reports.map((r) => [formatReport(r), ...(r.oldVersion ?? [])].join('\n')).join('\n\n'),
    json: () => JSON.stringify(reports.length === 1 ? reports[0] : reports, null, 2),
    github: () => formatGithub(reports),
    sarif: () => JSON.stringify(formatSarif(reports, require('../../package.json').version), null, 2),
  }[format]();
  process.stdout.write(`${out}\n`);
  process.exitCode = reports.every((r) => r.isValid && r.errors.length === 0) ? 0 : 1;
}

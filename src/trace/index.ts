/**
 * `pgflip validate --trace` (docs/classifier.md, "Trace on a real server"): migration files run
 * on a throwaway local cluster, statement by statement, and what PostgreSQL did — locks,
 * rewrites, validations, new objects, errors — put into their validation reports.
 *
 * One cluster serves a whole call. With a database URL, the scratch database holds that
 * database's schema (no data; its roles copied first) and every file runs on a fresh copy of
 * it; without one, the files run one after the other on one empty database, so each sees what
 * the files before it made.
 */
import type { Client } from 'pg';
import { parseFile } from '../classifier/parser';
import type { ValidationReport } from '../classifier/types';
import { copyRoles } from '../sync/roles';
import { dumpSchema, replaySchema, SchemaTool } from '../sync/schema';
import { qi } from '../sync/sql';
import { createDatabaseLikeSql, databaseShape } from '../sync/database';
import { connectClient, withClient } from '../util/pg';
import { ScratchCluster, traceInterrupted } from './cluster';
import { mergeTrace, needsAutocommit, statementsOfOperations } from './merge';
import { runTraced, TracedStatement } from './run';

const APP = 'pgflip-trace';
/** the scratch database that holds the source's schema; every file runs on a copy (the last one on it, renamed) */
const SCHEMA_DB = 'pgflip_trace_schema';

export interface TraceOptions {
  /** the schema to run on (no data is copied); without it, an empty database */
  databaseUrl?: string;
  /** remove the cluster and exit the process on SIGINT / SIGTERM (default true: a command; false in a server, which closes it) */
  exitOnSignal?: boolean;
}

export interface TracedFile {
  report: ValidationReport;
  /** the file's text; undefined when it could not be read (not traced) */
  sql?: string;
}

/** A throwaway cluster ready to trace files on; close() removes it. */
export class MigrationTracer {
  /** how the source's schema was read, with a database URL */
  schemaTool?: SchemaTool;
  private database = 'postgres';

  private constructor(private readonly cluster: ScratchCluster, private readonly opts: TraceOptions) {}

  /** Starts the cluster and, with a database URL, loads that database's schema and roles (read while the cluster starts). */
  static async start(opts: TraceOptions = {}): Promise<MigrationTracer> {
    const cluster = new ScratchCluster({ exitOnSignal: opts.exitOnSignal });
    const tracer = new MigrationTracer(cluster, opts);
    try {
      const url = opts.databaseUrl;
      const [, source] = await Promise.all([
        cluster.start(),
        url ? Promise.all([dumpSchema(url, 'pre-data'), dumpSchema(url, 'post-data'), withClient(url, databaseShape, APP)]) : undefined,
      ]);
      if (url && source) {
        const [pre, post, info] = source;
        tracer.schemaTool = pre.tool;
        tracer.database = ['template0', 'template1', SCHEMA_DB].includes(info.name) ? 'pgflip_trace' : info.name;
        await withClient(url, (src) => withClient(cluster.url(), (dst) => copyRoles(src, dst), APP), APP);
        // the throwaway cluster's locales may not include the source's: the encoding is what matters to a trace
        await withClient(cluster.url(), (c) => c.query(createDatabaseLikeSql(SCHEMA_DB, info, { locale: 'C' })), APP);
        await replaySchema(cluster.url(SCHEMA_DB), pre.sql, {}, 'pre-data of the database');
        await replaySchema(cluster.url(SCHEMA_DB), post.sql, {}, 'post-data of the database');
      }
    } catch (err) {
      await cluster.destroy().catch(() => undefined);
      throw err;
    }
    return tracer;
  }

  /** the throwaway cluster's PostgreSQL major version */
  get pgVersion(): number { return this.cluster.major; }

  /** the cluster's directory (removed by close()) */
  get dir(): string { return this.cluster.dir; }

  /** Traces the files in order and puts each trace into its report. */
  async traceFiles(files: TracedFile[]): Promise<void> {
    const traced = files.filter((f) => f.sql !== undefined);
    for (const [i, f] of traced.entries()) {
      try {
        const database = this.opts.databaseUrl ? await this.freshCopy(i === traced.length - 1) : this.database;
        await this.traceOne(f.report, f.sql!, database);
      } finally {
        // the cluster is going away under the statement: its error is not the file's
        if (traceInterrupted()) throw new Error('interrupted');
      }
    }
  }

  async close(): Promise<void> {
    await this.cluster.destroy();
  }

  /** A database holding the source's schema, named as the source's: a copy, or for the last file the original itself. */
  private async freshCopy(last: boolean): Promise<string> {
    await withClient(this.cluster.url('template1'), async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${qi(this.database)}`);
      await c.query(last ? `ALTER DATABASE ${qi(SCHEMA_DB)} RENAME TO ${qi(this.database)}` : `CREATE DATABASE ${qi(this.database)} TEMPLATE ${qi(SCHEMA_DB)}`);
    }, APP);
    return this.database;
  }

  private async traceOne(report: ValidationReport, sql: string, database: string): Promise<void> {
    const parsed = parseFile(sql);
    if (parsed.failures.length) {
      report.warnings.push('not traced: PostgreSQL\'s parser rejects the file');
      return;
    }
    const lineOf = (byte: number) => parsed.source.at(byte).line;
    const statementOf = statementsOfOperations(report.operations, parsed.statements, lineOf);
    const statements: TracedStatement[] = parsed.statements.map((st) => ({
      ...st,
      noTransaction: needsAutocommit(st, report.operations.filter((_, i) => statementOf[i] === st), report.pgVersion),
    }));
    let c: Client | undefined;
    try {
      c = await connectClient(this.cluster.url(database), APP);
      mergeTrace(report, statementOf, await runTraced(c, parsed.source, statements));
    } finally {
      await c?.end().catch(() => undefined);
    }
    if (this.cluster.major !== report.pgVersion) report.warnings.push(`the trace ran on PostgreSQL ${this.cluster.major} while the target is PostgreSQL ${report.pgVersion}`);
  }
}


/**
 * Schema transfer with PostgreSQL's own tools: `pg_dump --schema-only` split
 * into pre-data (types, tables, functions) loaded before the copy and post-data
 * (indexes, constraints, triggers) built after it, replayed with `psql`.
 *
 * Credentials go to the tools through the environment, never the command line.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { clientTool } from '../pgcluster/binaries';
import { HELPER_SCHEMA } from './catalog';
import { COMPAT_SCHEMA_PATTERN } from '../compat/serving';

/** libpq environment for a postgres:// URL (host, port, user, password, database, sslmode). */
export function libpqEnv(url: string): Record<string, string> {
  const u = new URL(url);
  const env: Record<string, string> = {};
  if (u.hostname) env.PGHOST = decodeURIComponent(u.hostname);
  if (u.port) env.PGPORT = u.port;
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  const db = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (db) env.PGDATABASE = db;
  for (const [k, v] of u.searchParams) {
    if (k === 'sslmode') env.PGSSLMODE = v;
    else if (k === 'host') env.PGHOST = v;
  }
  return env;
}

export class ToolError extends Error {
  override name = 'ToolError';
  constructor(readonly tool: string, readonly code: number | null, readonly stderr: string) {
    super(`${path.basename(tool)} failed (exit ${code}): ${stderr.trim().split('\n').slice(-5).join(' | ')}`);
  }
}

/** Run a tool with libpq env for `url`, feeding `input`; resolves to stdout. */
export function runTool(tool: string, args: string[], url: string, input?: string, extraEnv: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...libpqEnv(url), ...extraEnv };
    const child = spawn(tool, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new ToolError(tool, code, Buffer.concat(err).toString('utf8')));
    });
    child.stdin.on('error', () => undefined); // the exit code reports what went wrong
    child.stdin.end(input ?? '');
  });
}

export interface DumpOptions {
  /** leave out ownership and grants (when the target lacks the source's roles) */
  noOwner?: boolean;
}

export function dumpSchema(sourceUrl: string, section: 'pre-data' | 'post-data', opts: DumpOptions = {}): Promise<string> {
  // pgflip's helper schema, and the compatibility schemas that belong to the side holding them
  const args = ['--schema-only', `--section=${section}`, `--exclude-schema=${HELPER_SCHEMA}`, `--exclude-schema=${COMPAT_SCHEMA_PATTERN}`, '--no-publications', '--no-subscriptions'];
  if (opts.noOwner) args.push('--no-owner', '--no-privileges');
  return runTool(clientTool('pg_dump'), args, sourceUrl);
}

/** Replay SQL (e.g. a pg_dump script) with psql, stopping at the first error. */
export async function runPsql(targetUrl: string, sql: string, settings: Record<string, string> = {}): Promise<void> {
  const pgOptions = Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`).join(' ');
  await runTool(clientTool('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', '-'], targetUrl, sql, pgOptions ? { PGOPTIONS: pgOptions } : {});
}

/**
 * Schema transfer between the sides, in two sections: pre-data (types, tables,
 * functions) loaded before the copy and post-data (indexes, constraints,
 * triggers) built after it. Two ways to read the schema (`controller.schemaDump`):
 *
 *  - `pg_dump --schema-only`, when it is installed and at least the server's
 *    major version: PostgreSQL's own tool knows every kind of object;
 *  - the Node path (src/sync/ddl.ts, @pgkit/migra), when it is not: a machine
 *    with nothing but Node still copies schemas.
 *
 * Either script is replayed without psql (src/sync/replay.ts). Credentials go
 * to tools through the environment, never the command line.
 */
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import type { SchemaDumpSetting } from '../config';
import { clientTool } from '../pgcluster/binaries';
import { withClient } from '../util/pg';
import { HELPER_SCHEMA } from './catalog';
import { COMPAT_SCHEMA_PATTERN } from '../compat/serving';
import { schemaScript } from './ddl';
import { replayText } from './replay';

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
  /** default: auto */
  tool?: SchemaDumpSetting;
}

/** Which way a schema is read, and why: the answer is logged and shown in the migration's steps. */
export interface SchemaTool {
  tool: 'pg_dump' | 'node';
  reason: string;
  /** pg_dump's path */
  path?: string;
}

const pgDumpMajors = new Map<string, number>();

function pgDumpMajor(file: string): number {
  let major = pgDumpMajors.get(file);
  if (major === undefined) {
    const out = execFileSync(file, ['--version'], { encoding: 'utf8' });
    major = Number(/\s(\d+)(?:\.\d+)?/.exec(out)?.[1] ?? 0);
    pgDumpMajors.set(file, major);
  }
  return major;
}

/**
 * pg_dump when it is installed and at least as new as the server (an older pg_dump
 * refuses a newer server); the Node path otherwise, or when `setting` says so.
 */
export function chooseSchemaTool(setting: SchemaDumpSetting, serverVersionNum: number): SchemaTool {
  if (setting === 'node') return { tool: 'node', reason: 'controller.schemaDump is node' };
  const serverMajor = Math.floor(serverVersionNum / 10000);
  let file: string;
  try {
    file = clientTool('pg_dump');
  } catch (err) {
    if (setting === 'pg_dump') throw err;
    return { tool: 'node', reason: 'pg_dump is not installed' };
  }
  const major = pgDumpMajor(file);
  if (major < serverMajor) {
    if (setting === 'pg_dump') throw new Error(`controller.schemaDump is pg_dump, but ${file} is version ${major} and the server ${serverMajor}: pg_dump must be at least the server's version`);
    return { tool: 'node', reason: `${file} is version ${major}, older than the server (${serverMajor})` };
  }
  return { tool: 'pg_dump', path: file, reason: setting === 'pg_dump' ? 'controller.schemaDump is pg_dump' : `${file} (version ${major}) is installed: PostgreSQL's own dump knows every kind of object` };
}

export async function serverVersionNum(url: string): Promise<number> {
  return withClient(url, async (c) => Number((await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v));
}

/** One section of the source's schema as SQL, read the way chooseSchemaTool says. */
export async function dumpSchema(sourceUrl: string, section: 'pre-data' | 'post-data', opts: DumpOptions = {}): Promise<{ sql: string; tool: SchemaTool }> {
  const tool = chooseSchemaTool(opts.tool ?? 'auto', await serverVersionNum(sourceUrl));
  return { sql: await readSection(sourceUrl, section, tool, opts), tool };
}

async function readSection(sourceUrl: string, section: 'pre-data' | 'post-data', tool: SchemaTool, opts: DumpOptions): Promise<string> {
  if (tool.tool === 'node') {
    const script = await withClient(sourceUrl, (c) => schemaScript(c));
    const statements = (section === 'pre-data' ? script.pre : script.post)
      .filter((st) => !opts.noOwner || !(/^alter\s.+\sowner\s+to\s/is.test(st) || /^(grant|revoke)\s/i.test(st)));
    return `${statements.join('\n\n')}\n`;
  }
  // pgflip's helper schema, and the compatibility schemas that belong to the side holding them
  const args = ['--schema-only', `--section=${section}`, `--exclude-schema=${HELPER_SCHEMA}`, `--exclude-schema=${COMPAT_SCHEMA_PATTERN}`, '--no-publications', '--no-subscriptions'];
  if (opts.noOwner) args.push('--no-owner', '--no-privileges');
  return runTool(tool.path!, args, sourceUrl);
}

/** Replay a schema script on the target, all or nothing (one implicit transaction), without psql. */
export async function replaySchema(targetUrl: string, sql: string, settings: Record<string, string> = {}, where = 'schema'): Promise<void> {
  await withClient(targetUrl, async (c) => {
    for (const [k, v] of Object.entries(settings)) await c.query('SELECT pg_catalog.set_config($1, $2, false)', [k, v]);
    await c.query('BEGIN');
    try {
      await replayText(c, sql, where);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}

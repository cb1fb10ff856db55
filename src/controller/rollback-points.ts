/**
 * Rollback points: a plain SQL dump of a side before a migration changes it,
 * `rollback-<migration-id>-<timestamp>.sql` in the backup directory, the newest
 * `retention` kept. The first line records which side and database it is of,
 * so the listing needs no other file.
 *
 * Written by pg_dump when it is installed and new enough, else by the Node
 * path (src/sync/dump.ts) — the same choice as the schema copy, see
 * src/sync/schema.ts. Either file replays with `psql -f` by hand.
 *
 * Restore returns the database to the dump, without psql: in one transaction,
 * every user schema is dropped (public is recreated empty with its default
 * privileges, which the dump amends when they differed) and the dump is
 * replayed (src/sync/replay.ts).
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { SchemaDumpSetting } from '../config';
import type { Side } from '../side';
import { dumpDatabase } from '../sync/dump';
import { replayFile } from '../sync/replay';
import { chooseSchemaTool, serverVersionNum } from '../sync/schema';
import { connectClient } from '../util/pg';

export interface RollbackPoint {
  /** file name without .sql */
  id: string;
  file: string;
  migrationId: string;
  side: Side;
  database: string;
  createdAt: string;
  bytes: number;
  /** what wrote it: pg_dump, or the Node path (set on creation; a listed file does not record it) */
  tool?: 'pg_dump' | 'node';
}

const HEADER = '-- pgflip rollback point ';
const NAME_RE = /^rollback-(.+)-(\d{8}T\d{6}(?:\d{3})?Z)\.sql$/;

/** The URL without its password (which goes through PGPASSWORD, never argv). */
export function connectionArgs(url: string): { dbname: string; env: NodeJS.ProcessEnv; database: string } {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  const env: NodeJS.ProcessEnv = { ...process.env, PGCONNECT_TIMEOUT: '10' };
  if (password) env.PGPASSWORD = password;
  return { dbname: u.toString(), env, database: decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres' };
}

const stamp = (d: Date): string => d.toISOString().replace(/[-:]/g, '').replace(/\.(\d{3})Z$/, '$1Z');

export class RollbackPoints {
  constructor(readonly dir: string, readonly retention: number, readonly schemaDump: SchemaDumpSetting = 'auto') {}

  async create(migrationId: string, side: Side, url: string): Promise<RollbackPoint> {
    if (!/^[A-Za-z0-9_.-]+$/.test(migrationId)) throw new Error(`rollback point: invalid migration id ${JSON.stringify(migrationId)}`);
    await mkdir(this.dir, { recursive: true });
    const createdAt = new Date();
    const id = `rollback-${migrationId}-${stamp(createdAt)}`;
    const file = path.join(this.dir, `${id}.sql`);
    const conn = connectionArgs(url);
    const header = `${HEADER}${JSON.stringify({ migrationId, side, database: conn.database, createdAt: createdAt.toISOString() })}\n`;
    const tool = chooseSchemaTool(this.schemaDump, await serverVersionNum(url));
    const out = createWriteStream(file, { mode: 0o600 });
    const finished = new Promise<void>((resolve, reject) => { out.on('finish', () => resolve()); out.on('error', reject); });
    out.write(header);
    try {
      if (tool.tool === 'pg_dump') await pgDump(tool.path!, url, out);
      else {
        const c = await connectClient(url, 'pgflip rollback point');
        try { await dumpDatabase(c, out); } finally { await c.end().catch(() => undefined); }
      }
      out.end();
      await finished;
    } catch (err) {
      out.destroy();
      await rm(file, { force: true });
      throw new Error(`rollback point of ${side} failed (${tool.tool === 'pg_dump' ? 'pg_dump' : 'Node dump'}): ${(err as Error).message}`);
    }
    await this.prune();
    return { id, file, migrationId, side, database: conn.database, createdAt: createdAt.toISOString(), bytes: (await stat(file)).size, tool: tool.tool };
  }

  /** Newest first. */
  async list(): Promise<RollbackPoint[]> {
    let names: string[];
    try { names = await readdir(this.dir); } catch { return []; }
    const points: RollbackPoint[] = [];
    for (const name of names) {
      const m = NAME_RE.exec(name);
      if (!m) continue;
      const file = path.join(this.dir, name);
      const meta = await readHeader(file);
      if (!meta) continue;
      points.push({ id: name.slice(0, -4), file, migrationId: m[1], side: meta.side, database: meta.database, createdAt: meta.createdAt, bytes: (await stat(file)).size });
    }
    return points.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  }

  async get(id: string): Promise<RollbackPoint | undefined> {
    return (await this.list()).find((p) => p.id === id);
  }

  /** Replays the dump on the given database (the side's URL); all or nothing. */
  async restore(point: RollbackPoint, url: string): Promise<void> {
    const conn = connectionArgs(url);
    const prelude = `
DO $pgflip$
DECLARE s text; p text;
BEGIN
  FOR p IN SELECT pubname FROM pg_publication LOOP EXECUTE format('DROP PUBLICATION %I', p); END LOOP;
  FOR s IN SELECT nspname FROM pg_namespace
           WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
  END LOOP;
  IF current_setting('server_version_num')::int >= 150000 THEN
    CREATE SCHEMA public AUTHORIZATION pg_database_owner;
    GRANT USAGE ON SCHEMA public TO PUBLIC;
  ELSE
    CREATE SCHEMA public;
    GRANT CREATE, USAGE ON SCHEMA public TO PUBLIC;
  END IF;
END
$pgflip$;`;
    const c = await connectClient(url, 'pgflip restore');
    try {
      await c.query('BEGIN');
      await c.query(prelude);
      await replayFile(c, point.file);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw new Error(`restore of ${point.id} to ${point.side} failed, nothing changed: ${(err as Error).message}`);
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  private async prune(): Promise<void> {
    const points = await this.list();
    for (const p of points.slice(this.retention)) await rm(p.file, { force: true });
  }
}

/** pg_dump's plain format into `out` (left open); the password goes through PGPASSWORD, never argv. */
async function pgDump(file: string, url: string, out: NodeJS.WritableStream): Promise<void> {
  const conn = connectionArgs(url);
  const child = spawn(file, ['--no-password', '--format=plain', '--quote-all-identifiers', '--dbname', conn.dbname], { env: conn.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdout.pipe(out, { end: false });
  const code: number | null = await new Promise((resolve, reject) => { child.on('error', reject); child.on('close', resolve); });
  if (code !== 0) throw new Error(`exit ${code}: ${stderr.trim()}`);
}

async function readHeader(file: string): Promise<{ side: Side; database: string; createdAt: string } | undefined> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const first = buf.subarray(0, bytesRead).toString('utf8').split('\n')[0];
    if (!first.startsWith(HEADER)) return undefined;
    return JSON.parse(first.slice(HEADER.length));
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

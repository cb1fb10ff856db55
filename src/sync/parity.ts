/**
 * Schema parity: before a flip, the new side's schema must be the active side's
 * schema with the migration applied — not merely what the copy made of it an
 * hour ago. DDL run on the active side during the sync (a hotfix index, a
 * function) is not carried by logical replication and would vanish with the
 * flip; a migration that did something else on the new side than it does on a
 * fresh copy would ship untested.
 *
 * The expected schema is built for real: the active side's schema now, loaded
 * into a scratch database on the new side's server (same version, extensions
 * and roles), the migration applied to it. Both schemas are then written as
 * the Node path's full scripts (src/sync/ddl.ts) and compared statement by
 * statement — object by object, owners, grants and comments included.
 */
import { loadParser, parseFile } from '../classifier/parser';
import type { SchemaDumpSetting } from '../config';
import { withClient } from '../util/pg';
import { schemaScript } from './ddl';
import { dumpSchema, replaySchema } from './schema';
import { applyMigration } from './session';
import { qi } from './sql';
import { createDatabaseLikeSql, databaseShape } from './database';

export interface SchemaDifference {
  /** the object's statement in the schema that has it, first line */
  object: string;
  /** which side has it: `a` only in the first schema, `b` only in the second */
  only: 'a' | 'b';
}

// compared exactly (migra's text is deterministic; whitespace inside a literal is meaning), shown on one line
const normalise = (st: string): string => st.trim();
const label = (st: string): string => {
  const first = st.replace(/\s+/g, ' ').trim().replace(/\s*;$/, '');
  return first.length > 160 ? `${first.slice(0, 157)}...` : first;
};

/** Statements of one schema's full script missing from the other's, both ways. */
export async function compareSchemas(aUrl: string, bUrl: string): Promise<SchemaDifference[]> {
  const [a, b] = await Promise.all([aUrl, bUrl].map((url) => withClient(url, async (c) => {
    const s = await schemaScript(c);
    return [...s.pre, ...s.post].filter((st) => !/^set\s/i.test(st)).map(normalise);
  }, 'pgflip schema parity')));
  const count = (list: string[]) => list.reduce((m, st) => m.set(st, (m.get(st) ?? 0) + 1), new Map<string, number>());
  const [ca, cb] = [count(a), count(b)];
  const out: SchemaDifference[] = [];
  for (const [st, n] of ca) for (let i = cb.get(st) ?? 0; i < n; i++) out.push({ object: label(st), only: 'a' });
  for (const [st, n] of cb) for (let i = ca.get(st) ?? 0; i < n; i++) out.push({ object: label(st), only: 'b' });
  return out;
}

export interface ParityOptions {
  /** the side traffic is on */
  active: string;
  /** the side about to take it, already migrated */
  next: string;
  migrationSql: string;
  /** names the scratch database (`pgflip_parity_<id>`) */
  migrationId: string;
  tool?: SchemaDumpSetting;
}

export interface ParityResult {
  /** `a`: expected (active + migration) only; `b`: the new side only */
  differences: SchemaDifference[];
  seconds: number;
}

/**
 * The migration without its cluster-wide statements (roles, tablespaces, databases, server
 * settings): they already ran on the new side's cluster, which the scratch database shares.
 */
const CLUSTER_WIDE = new Set(['CreateRoleStmt', 'AlterRoleStmt', 'AlterRoleSetStmt', 'DropRoleStmt', 'GrantRoleStmt', 'CreateTableSpaceStmt',
  'DropTableSpaceStmt', 'AlterTableSpaceOptionsStmt', 'CreatedbStmt', 'DropdbStmt', 'AlterDatabaseStmt', 'AlterDatabaseSetStmt', 'AlterSystemStmt']);

async function databaseStatements(sql: string): Promise<string> {
  await loadParser();
  const parsed = parseFile(sql);
  if (parsed.failures.length || !parsed.statements.some((s) => CLUSTER_WIDE.has(s.kind))) return sql;
  return parsed.statements.filter((s) => !CLUSTER_WIDE.has(s.kind)).map((s) => `${s.text};`).join('\n');
}

export async function checkSchemaParity(o: ParityOptions): Promise<ParityResult> {
  const started = Date.now();
  const scratchName = `pgflip_parity_${o.migrationId.replace(/[^A-Za-z0-9_]/g, '_')}`.slice(0, 63);
  const admin = new URL(o.next);
  admin.pathname = '/postgres';
  const scratch = new URL(o.next);
  scratch.pathname = `/${encodeURIComponent(scratchName)}`;
  const shape = await withClient(o.active, databaseShape);
  const dropScratch = () => withClient(admin.toString(), (c) => c.query(`DROP DATABASE IF EXISTS ${qi(scratchName)} WITH (FORCE)`));
  await dropScratch();
  await withClient(admin.toString(), (c) => c.query(createDatabaseLikeSql(scratchName, shape)));
  try {
    for (const section of ['pre-data', 'post-data'] as const) {
      const { sql } = await dumpSchema(o.active, section, { tool: o.tool });
      await replaySchema(scratch.toString(), sql, {}, `${section} of the active side`);
    }
    await applyMigration(scratch.toString(), await databaseStatements(o.migrationSql));
    return { differences: await compareSchemas(scratch.toString(), o.next), seconds: (Date.now() - started) / 1000 };
  } finally {
    await dropScratch().catch(() => undefined);
  }
}

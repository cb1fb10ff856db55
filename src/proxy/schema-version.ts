/**
 * Which schema version each session sees while a migration serves its previous one
 * (compat/serving.ts). A session keeps the version it started under: the one it asked for with
 * the startup parameter `pgflip.version` (also as `-c pgflip.version=…` in `options`), else the
 * record's default at its start. On the side holding the compatibility schema, an old-version
 * session's backends start with that schema first in search_path (a startup parameter, so RESET
 * and DISCARD ALL go back to it) and its own SET search_path, replayed at a flip, is put after it.
 */
import type { Logger } from 'pino';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { COMPAT_KEY, CompatServing } from '../compat/serving';
import type { StateStore } from '../state';
import type { Side } from '../side';

/** The latest record the proxy read; a store that does not answer leaves the last one. */
export class SchemaVersions {
  private serving: CompatServing | null = null;
  private last: Promise<void> = Promise.resolve();

  constructor(private readonly store: StateStore, private readonly log: Logger) {}

  current(): CompatServing | null {
    return this.serving;
  }

  refresh(): Promise<void> {
    this.last = this.store.getJson<CompatServing>(COMPAT_KEY).then((v) => {
      const next = v?.value ?? null;
      if (next?.schema !== this.serving?.schema || next?.defaultVersion !== this.serving?.defaultVersion) {
        this.log.info({ compat: next }, next ? 'serving the previous schema version' : 'no previous schema version served');
      }
      this.serving = next;
    }, (err: Error) => this.log.debug({ err: err.message }, 'schema version record not read'));
    return this.last;
  }

  /** resolves when the latest refresh is done */
  ready(): Promise<void> {
    return this.last;
  }
}

/** What a session asked for: the `pgflip.version` startup parameter or `-c pgflip.version=` in options. */
export function requestedVersion(params: Map<string, string>): string | undefined {
  const direct = params.get('pgflip.version');
  if (direct) return direct;
  const m = /(?:^|\s)(?:-c\s*|--)pgflip\.version=(\S+)/.exec(params.get('options') ?? '');
  return m?.[1];
}

/** How a session chose its version: what it asked for, and the migration whose default was `new` at its start. */
export interface SessionVersion { requested?: string; newFor?: string }

export function sessionVersion(params: Map<string, string>, serving: CompatServing | null): SessionVersion {
  return { requested: requestedVersion(params), newFor: serving?.defaultVersion === 'new' ? serving.migrationId : undefined };
}

/** Whether the session sees the previous schema of `c`'s migration. */
export function isOld(v: SessionVersion, c: CompatServing): boolean {
  if (v.newFor === c.migrationId) return false;
  const r = v.requested;
  // the default at the session's start decided: a release does not move sessions already connected
  if (r === undefined) return true;
  const name = c.migration.replace(/\.sql$/, '');
  return !(r === 'latest' || r === c.migrationId || r === c.migration || r === name);
}

/** search_path value with the compatibility schema first, the session's own after it. */
export function compatSearchPath(schema: string, own: string | undefined): string {
  return `${escapeIdentifier(schema)}, ${own?.trim() || '"$user", public'}`;
}

/** Startup parameters of a backend on `side` for the session. */
export function backendParams(params: Map<string, string>, v: SessionVersion, c: CompatServing | null, side: Side): Map<string, string> {
  if (!c || c.side !== side || !isOld(v, c)) return params;
  const out = new Map(params);
  const opts = params.get('options') ?? '';
  // a search_path in options would win over the parameter: the compatibility schema goes in front of it there
  const inOptions = /(^|\s)(-c\s*|--)search_path=(\S+)/.exec(opts);
  if (inOptions) out.set('options', opts.replace(inOptions[0], `${inOptions[1]}${inOptions[2]}search_path=${compatSearchPath(c.schema, inOptions[3]).replace(/\s/g, '\\ ')}`));
  else out.set('search_path', compatSearchPath(c.schema, params.get('search_path')));
  return out;
}

/** After a replay that set the session's own search_path: the compatibility schema in front again. */
export function compatFixupSql(schema: string): string {
  return `SELECT pg_catalog.set_config('search_path', ${escapeLiteral(escapeIdentifier(schema) + ', ')} || pg_catalog.current_setting('search_path'), false)`;
}

const SET_SEARCH_PATH = /^\s*SET\s+(SESSION\s+|LOCAL\s+)?search_path\s*(?:TO|=)\s*([^;]*?)\s*;?\s*$/is;
/** `SET SCHEMA 'x'`: the SQL-standard spelling (pgjdbc's setSchema) */
const SET_SCHEMA = /^\s*SET\s+(SESSION\s+|LOCAL\s+)?SCHEMA\s+('(?:[^']|'')*')\s*;?\s*$/is;
/** `set_config('search_path', value, is_local)` anywhere in a statement */
const SET_CONFIG = /\b((?:pg_catalog\s*\.\s*)?set_config)\s*\(\s*'search_path'\s*,\s*/gi;

/**
 * A client's own search_path change on a backend whose search_path starts with the compatibility
 * schema — `SET search_path`, `SET SCHEMA`, or a `set_config('search_path', …)` call, sent as a
 * simple Query or in a Parse — as the same statement with that schema in front of the client's
 * list; undefined when there is nothing to change (DEFAULT, another statement, the schema already
 * first). What the client sees is the same.
 */
export function rewriteSetSearchPath(sql: string, schema: string): string | undefined {
  const first = escapeIdentifier(schema);
  const m = SET_SEARCH_PATH.exec(sql);
  if (m) {
    if (/^default$/i.test(m[2]) || m[2] === '' || m[2].startsWith(first)) return undefined;
    return `SET ${m[1] ?? ''}search_path TO ${first}, ${m[2]}`;
  }
  const s = SET_SCHEMA.exec(sql);
  if (s) return `SET ${s[1] ?? ''}search_path TO ${first}, ${s[2]}`;
  if (SET_CONFIG.test(sql)) {
    SET_CONFIG.lastIndex = 0;
    return sql.replace(SET_CONFIG, (_all, fn: string) => `${fn}('search_path', ${escapeLiteral(`${first}, `)} || `);
  }
  return undefined;
}

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
import { MessageCode as M } from './protocol/codes';
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
/** the whole statement `SELECT [pg_catalog.]set_config('search_path', <literal or $n>, <bool>)` (not one inside a function body) */
const SET_CONFIG = /^\s*SELECT\s+((?:pg_catalog\s*\.\s*)?set_config)\s*\(\s*'search_path'\s*,\s*('(?:[^']|'')*'|\$\d+)\s*,\s*([^()]*?)\)\s*;?\s*$/is;

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
  const c = SET_CONFIG.exec(sql);
  if (c) {
    const [, fn, value, local] = c;
    // an empty path (pg_dump's scripts) stays empty: every name in them is qualified
    if (value === "''") return undefined;
    const prefix = escapeLiteral(`${first}, `);
    const v = value.startsWith('$') ? `CASE WHEN ${value}::text = '' THEN ${value}::text ELSE ${prefix} || ${value}::text END` : `${prefix} || ${value}`;
    return `SELECT ${fn}('search_path', ${v}, ${local})`;
  }
  return undefined;
}

const PATH_WORDS = ['search_path', 'SEARCH_PATH', 'schema', 'SCHEMA'].map((w) => Buffer.from(w));
/** a Query or Parse whose bytes hold one of the words a search_path change is spelt with (cheap: no string made) */
export const mayChangePath = (msg: Buffer): boolean => (msg[0] === M.Query || msg[0] === M.Parse) && PATH_WORDS.some((w) => msg.indexOf(w, 5) >= 0);

/**
 * A Query message with its search_path change rewritten (compatChunk), or the message itself.
 * The text is read and written as latin1: every byte stays what the client sent, in whatever
 * client_encoding (the rewrite only reads and adds ASCII).
 */
export function compatQueryMessage(msg: Buffer, schema: string): Buffer {
  if (msg[msg.length - 1] !== 0) return msg;
  const rewritten = rewriteSetSearchPath(msg.toString('latin1', 5, msg.length - 1), schema);
  if (rewritten === undefined) return msg;
  const query = Buffer.from(rewritten, 'latin1');
  const out = Buffer.allocUnsafe(1 + 4 + query.length + 1);
  out[0] = M.Query;
  out.writeInt32BE(out.length - 1, 1);
  query.copy(out, 5);
  out[out.length - 1] = 0;
  return out;
}

/** A Parse message (name, query, parameter types) with its query rewritten the same way. */
export function compatParseMessage(msg: Buffer, schema: string): Buffer {
  const nameEnd = msg.indexOf(0, 5);
  const queryEnd = nameEnd < 0 ? -1 : msg.indexOf(0, nameEnd + 1);
  if (queryEnd < 0 || queryEnd + 3 > msg.length) return msg;
  const rewritten = rewriteSetSearchPath(msg.toString('latin1', nameEnd + 1, queryEnd), schema);
  if (rewritten === undefined) return msg;
  const name = msg.subarray(5, nameEnd);
  const query = Buffer.from(rewritten, 'latin1');
  const tail = msg.subarray(queryEnd + 1); // int16 count, int32 type OIDs
  const out = Buffer.allocUnsafe(1 + 4 + name.length + 1 + query.length + 1 + tail.length);
  out[0] = M.Parse;
  out.writeInt32BE(out.length - 1, 1);
  let o = 5;
  o += name.copy(out, o); out[o++] = 0;
  o += query.copy(out, o); out[o++] = 0;
  tail.copy(out, o);
  return out;
}


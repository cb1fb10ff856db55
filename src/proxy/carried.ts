/**
 * What a session carries to another backend, as a value: the state PostgreSQL
 * would have left the session with at its last transaction boundary that a
 * fresh backend must be given again. A snapshot of it is replayed onto a new
 * connection, and two snapshots are diffed so that only what changed since a
 * replay is sent (a flip prepares connections before it holds anyone; a
 * pooled backend would get the difference to its last client's state).
 *
 * Startup parameters are not part of it: they go into the new backend's
 * StartupMessage, where they keep their meaning as RESET values.
 */
import { escapeIdentifier, escapeLiteral } from 'pg';
import { serialize } from 'pg-protocol';

/** A prepared statement as the client made it: its Parse message, or its SQL PREPARE. */
export type CarriedStatement = { via: 'parse'; message: Buffer } | { via: 'sql'; sql: string };

export interface Carried {
  /**
   * Session-level settings: GUC name (folded to lower case) → a statement
   * that sets it as the session did, in the order of their last change (a
   * SET made as another role replays in the same privilege context).
   */
  readonly settings: Map<string, string>;
  /** custom GUCs that exist as placeholders (set once, maybe rolled back or reset): '' on PostgreSQL, not an error */
  readonly placeholders: Set<string>;
  readonly prepared: Map<string, CarriedStatement>;
  /** the unnamed prepared statement (its Parse message), alive until the next unnamed Parse or simple Query */
  unnamed: Buffer | null;
  readonly listens: Set<string>;
}

export function emptyCarried(): Carried {
  return { settings: new Map(), placeholders: new Set(), prepared: new Map(), unnamed: null, listens: new Set() };
}

/** An independent copy (the live state keeps changing while a copy is replayed). */
export function copyCarried(c: Carried): Carried {
  return { settings: new Map(c.settings), placeholders: new Set(c.placeholders), prepared: new Map(c.prepared), unnamed: c.unnamed, listens: new Set(c.listens) };
}

/**
 * A copy without protocol-level statements and LISTENs: what a pooled connection must match of
 * its client's state before a transaction (tx-relay.ts prepares statements as they are used; a
 * transaction-mode client listens through a shared connection, pool/listeners.ts).
 */
export function sqlCarried(c: Carried): Carried {
  if (!hasSqlState(c)) return NO_SQL_STATE;
  const prepared = new Map([...c.prepared].filter(([, p]) => p.via === 'sql'));
  return { settings: new Map(c.settings), placeholders: new Set(c.placeholders), prepared, unnamed: null, listens: new Set() };
}

/** sqlCarried of a session that has none: shared, never changed (most clients never SET or PREPARE) */
export const NO_SQL_STATE: Carried = emptyCarried();

function hasSqlState(c: Carried): boolean {
  if (c.settings.size || c.placeholders.size) return true;
  for (const p of c.prepared.values()) if (p.via === 'sql') return true;
  return false;
}

/** what a pooled connection carrying `conn` needs before a transaction of a client carrying `client`: null for nothing (no allocation in the common case) */
export function pooledReplay(conn: Carried, client: Carried): ReplayPlan | null {
  if (conn === NO_SQL_STATE && !hasSqlState(client)) return null;
  const plan = replayPlan(conn, sqlCarried(client));
  return isEmptyPlan(plan) ? null : plan;
}

/** What turns a backend carrying `from` into one carrying `to`, in the order it must be sent. */
export interface ReplayPlan {
  /** simple queries, each its own transaction */
  sql: string[];
  /** extended-protocol messages (Close, Parse), each followed by its own Sync so one failure does not skip the rest */
  messages: Buffer[];
}

export const isEmptyPlan = (p: ReplayPlan): boolean => p.sql.length === 0 && p.messages.length === 0;

/** The SET that re-creates a placeholder with its default value '' */
export const placeholderSql = (name: string): string => `RESET ${name.split('.').map((p) => escapeIdentifier(p)).join('.')}`;

/** set_config() as a replayable statement */
export const setConfigSql = (name: string, value: string): string =>
  `SELECT pg_catalog.set_config(${escapeLiteral(name)}, ${escapeLiteral(value)}, false)`;

const PRIVILEGE = ['session_authorization', 'role'];
export const closeStatement = (name: string): Buffer => serialize.close({ type: 'S', name });

/**
 * The difference between two carried states as statements. From a fresh
 * backend (`from` empty) it is the full replay. Simple queries go first: each
 * one drops the unnamed statement, which is therefore parsed last.
 */
export function replayPlan(from: Carried, to: Carried): ReplayPlan {
  const sql: string[] = [];
  const privilegeChanged = PRIVILEGE.some((n) => from.settings.get(n) !== to.settings.get(n));
  const changed = [...to.settings].filter(([n, s]) => from.settings.get(n) !== s);
  if (privilegeChanged || (changed.length && PRIVILEGE.some((n) => from.settings.has(n)))) {
    // settings made under another role or session user replay in their order from the backend's own identity
    if (from.settings.has('role')) sql.push('RESET ROLE');
    if (from.settings.has('session_authorization')) sql.push('RESET SESSION AUTHORIZATION');
    for (const [n] of from.settings) if (!to.settings.has(n) && !PRIVILEGE.includes(n)) sql.push(`RESET ${escapeGucName(n)}`);
    const unprivileged = new Map([...from.settings].filter(([n]) => !PRIVILEGE.includes(n)));
    for (const [n, s] of to.settings) if (PRIVILEGE.includes(n) || unprivileged.get(n) !== s) sql.push(s);
  } else {
    for (const [n] of from.settings) if (!to.settings.has(n)) sql.push(`RESET ${escapeGucName(n)}`);
    for (const [, s] of changed) sql.push(s);
  }
  for (const p of to.placeholders) if (!from.placeholders.has(p) && !to.settings.has(p) && !from.settings.has(p)) sql.push(placeholderSql(p));
  const messages: Buffer[] = [];
  for (const [name, p] of from.prepared) {
    const q = to.prepared.get(name);
    if (q && sameStatement(p, q)) continue;
    if (p.via === 'sql') sql.push(`DEALLOCATE ${escapeIdentifier(name)}`);
    else messages.push(closeStatement(name));
  }
  for (const [name, q] of to.prepared) {
    const p = from.prepared.get(name);
    if (p && sameStatement(p, q)) continue;
    if (q.via === 'sql') sql.push(q.sql);
    else messages.push(q.message);
  }
  if (from.listens.size && !to.listens.size) sql.push('UNLISTEN *');
  else for (const ch of from.listens) if (!to.listens.has(ch)) sql.push(`UNLISTEN ${escapeIdentifier(ch)}`);
  for (const ch of to.listens) if (!from.listens.has(ch)) sql.push(`LISTEN ${escapeIdentifier(ch)}`);
  if (to.unnamed && (sql.length || !from.unnamed || !from.unnamed.equals(to.unnamed))) messages.push(to.unnamed);
  else if (!to.unnamed && from.unnamed) messages.push(closeStatement(''));
  return { sql, messages };
}

function sameStatement(a: CarriedStatement, b: CarriedStatement): boolean {
  return a.via === 'sql' ? b.via === 'sql' && a.sql === b.sql : b.via === 'parse' && a.message.equals(b.message);
}

/** A (folded) GUC name as SQL: each dotted part quoted */
function escapeGucName(name: string): string {
  return name.split('.').map((p) => (/^[a-z_][a-z0-9_]*$/.test(p) ? p : escapeIdentifier(p))).join('.');
}

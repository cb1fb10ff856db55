/**
 * A database made "like" another: the same encoding and collation, from template0 — what the
 * idle side's rebuild (session.ts), the parity check's scratch database (parity.ts) and the
 * trace's schema database (src/trace) each need.
 */
import type { Client } from 'pg';
import { qi, ql } from './sql';

export interface DatabaseShape { name: string; encoding: string; collate: string; ctype: string }

/** The shape of the database `c` is connected to. */
export async function databaseShape(c: Client): Promise<DatabaseShape> {
  const { rows: [r] } = await c.query<DatabaseShape>(
    `SELECT current_database() AS name, pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype
       FROM pg_database WHERE datname = current_database()`);
  return r;
}

/**
 * CREATE DATABASE `name` shaped like `like`. `locale: 'C'` keeps the encoding but not the
 * collation: for a throwaway cluster whose locales may not include the source's.
 */
export function createDatabaseLikeSql(name: string, like: DatabaseShape, opts: { locale?: 'C' } = {}): string {
  const collate = opts.locale ?? like.collate;
  const ctype = opts.locale ?? like.ctype;
  return `CREATE DATABASE ${qi(name)} TEMPLATE template0 ENCODING ${ql(like.encoding)} LC_COLLATE ${ql(collate)} LC_CTYPE ${ql(ctype)}`;
}

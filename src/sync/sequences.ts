/**
 * Sequences (serial and identity columns included) are not carried by logical
 * decoding. At the final catch-up every target sequence is moved to at least
 * the source's value, so the new side never hands out an id the old one used.
 */
import { Client } from 'pg';
import { HELPER_SCHEMA } from './catalog';
import { qi, ql } from './sql';

export interface SequenceSyncResult {
  set: number;
  /** source sequences with no sequence of the same name on the target */
  missing: string[];
}

export async function syncSequences(source: Client, target: Client): Promise<SequenceSyncResult> {
  const { rows } = await source.query(
    `SELECT schemaname AS schema, sequencename AS name, last_value::text AS last_value
       FROM pg_sequences WHERE last_value IS NOT NULL AND schemaname <> $1`, [HELPER_SCHEMA]);
  if (!rows.length) return { set: 0, missing: [] };
  const { rows: present } = await target.query(
    `SELECT schemaname || '.' || sequencename AS key FROM pg_sequences WHERE schemaname <> $1`, [HELPER_SCHEMA]);
  const onTarget = new Set(present.map((r) => r.key as string));
  const missing: string[] = [];
  const stmts: string[] = [];
  for (const r of rows) {
    const key = `${r.schema}.${r.name}`;
    if (!onTarget.has(key)) { missing.push(key); continue; }
    const seq = `${qi(r.schema)}.${qi(r.name)}`;
    // Never move a target sequence backwards (reverse sync meets a side that ran ahead).
    stmts.push(`SELECT setval(${ql(seq)}, greatest(${r.last_value}::bigint, (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ${seq})), true)`);
  }
  if (stmts.length) await target.query(stmts.join(';\n'));
  return { set: stmts.length, missing };
}

/**
 * A database as one plain SQL script without pg_dump — schema (src/sync/ddl.ts)
 * before the data, data as `COPY … FROM stdin` blocks, sequences at their
 * values, then indexes, keys and triggers — in pg_dump's plain layout, so
 * `psql -f` replays it by hand and src/sync/replay.ts does without psql.
 *
 * Everything is read in one REPEATABLE READ transaction holding ACCESS SHARE
 * on every table, as pg_dump does: the data is one snapshot, and no DDL can
 * change a table between reading its definition and its rows.
 */
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Client } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { PGFLIP_SCHEMAS, schemaScript } from './ddl';
import { ql } from './sql';

const PRELUDE = [
  "SET client_encoding = 'UTF8';",
  'SET standard_conforming_strings = on;',
  'SET check_function_bodies = false;',
  "SELECT pg_catalog.set_config('search_path', '', false);",
];

export interface DumpSummary {
  tables: number;
  rows: number;
}

/** Write the database on `c` to `out` (left open). `c` must be outside a transaction. */
export async function dumpDatabase(c: Client, out: Writable, excludeSchemas: string[] = PGFLIP_SCHEMAS): Promise<DumpSummary> {
  // Output that reads back the same under any settings: ISO dates, exact floats, UTF-8
  await c.query(`SET client_encoding = 'UTF8'; SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; SET row_security = off; SET lock_timeout = '60s'`);
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
  try {
    const userNs = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' AND NOT n.nspname LIKE ANY($1)`;
    const { rows: tables } = await c.query<{ name: string; relkind: string; columns: string[] | null }>(`
      SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind,
             (SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum) FROM pg_attribute a
               WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS columns
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p') AND ${userNs}
       ORDER BY 1`, [excludeSchemas]);
    if (tables.length) await c.query(`LOCK TABLE ${tables.map((t) => `ONLY ${t.name}`).join(', ')} IN ACCESS SHARE MODE`);
    const script = await schemaScript(c, excludeSchemas);
    const write = (text: string) => new Promise<void>((resolve, reject) => out.write(text, (err) => (err ? reject(err) : resolve())));

    await write(`${PRELUDE.join('\n')}\n\n-- schema (before the data)\n\n${script.pre.join('\n\n')}\n\n-- data\n\n`);
    let rows = 0;
    for (const t of tables) {
      if (t.relkind !== 'r') continue; // a partitioned table's rows are in its partitions
      // no column list for a table without columns (or only generated ones): COPY still carries its rows
      const cols = t.columns ? ` (${t.columns.join(', ')})` : '';
      await write(`COPY ${t.name}${cols} FROM stdin;\n`);
      const stream = c.query(copyTo(`COPY ${t.name}${cols} TO STDOUT`));
      stream.pipe(out, { end: false });
      await finished(stream);
      stream.unpipe(out);
      rows += Number((stream as unknown as { rowCount?: number }).rowCount ?? 0);
      await write('\\.\n\n');
    }
    const { rows: sequences } = await c.query<{ name: string }>(`
      SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'S' AND ${userNs} ORDER BY 1`, [excludeSchemas]);
    for (const s of sequences) {
      const { rows: [v] } = await c.query<{ last_value: string; is_called: boolean }>(`SELECT last_value, is_called FROM ${s.name}`);
      await write(`SELECT pg_catalog.setval(${ql(s.name)}, ${v.last_value}, ${v.is_called});\n`);
    }
    await write(`\n-- indexes, keys, triggers (after the data)\n\n${script.post.join('\n\n')}\n`);
    await c.query('COMMIT');
    return { tables: tables.filter((t) => t.relkind === 'r').length, rows };
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

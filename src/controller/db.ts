/**
 * The controller's connections to a side carry its application name: fencing
 * spares sessions whose name starts with pgflip.
 */
import { withClient } from '../util/pg';

export const CONTROLLER_APP = 'pgflip-controller';

/**
 * Moves every sequence that feeds a column (serial, identity) past the largest
 * value in its column, so the side can take inserts again after rows arrived by
 * sync without their sequence — e.g. a rollback whose new side died before the
 * final catch-up could copy the sequences.
 */
export async function advanceSequencesToData(url: string): Promise<number> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ seq: string; tbl: string; col: string }>(`
      SELECT d.objid::regclass::text AS seq, d.refobjid::regclass::text AS tbl, quote_ident(a.attname) AS col
      FROM pg_depend d
      JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
      JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)`);
    for (const r of rows) {
      // regclass text is already quoted where needed
      await c.query(`SELECT setval($1::regclass, GREATEST((SELECT max(${r.col}) FROM ${r.tbl}), (SELECT last_value FROM ${r.seq}), 1))`, [r.seq]);
    }
    return rows.length;
  }, CONTROLLER_APP);
}

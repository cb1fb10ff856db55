/**
 * What the sync engine reads from a database's catalog: the user tables with
 * their columns, replica identity key, persistence and size.
 */
import { Client } from 'pg';
import { TableName, tableKey } from './sql';

/** Schemas never synced: PostgreSQL's own and pgflip's helper schema. */
export const HELPER_SCHEMA = 'pgflip';

export interface ColumnInfo {
  name: string;
  /** format_type with typmod, e.g. `character varying(20)` */
  type: string;
  notNull: boolean;
  hasDefault: boolean;
  /** stored generated column: computed by the server, never copied or written */
  generated: boolean;
  /** identity column: 'a' (ALWAYS), 'd' (BY DEFAULT) or '' */
  identity: string;
}

export interface TableInfo extends TableName {
  oid: number;
  /** 'r' table, 'p' partitioned parent (holds no rows itself) */
  kind: string;
  persistence: string;
  /** 'd' default (primary key), 'i' index, 'f' full, 'n' nothing */
  replicaIdentity: string;
  /** replica identity columns: primary key or identity index; empty for FULL/NOTHING/none */
  keyColumns: string[];
  hasPrimaryKey: boolean;
  columns: ColumnInfo[];
  bytes: number;
  estimatedRows: number;
  owner: string;
}

export type TableCatalog = Map<string, TableInfo>;

const TABLES_SQL = `
SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind,
       c.relpersistence AS persistence, c.relreplident AS replica_identity,
       pg_get_userbyid(c.relowner) AS owner,
       pg_relation_size(c.oid)::float8 AS bytes, c.reltuples::float8 AS estimated_rows,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM pg_index i
          CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
         WHERE i.indrelid = c.oid
           AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END
       ) AS key_columns
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', '${HELPER_SCHEMA}')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 2, 3`;

const COLUMNS_SQL = `
SELECT a.attrelid::int AS oid, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, a.atthasdef AS has_default, a.attgenerated <> '' AS generated,
       a.attidentity AS identity
  FROM pg_attribute a
 WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum`;

export async function readCatalog(client: Client): Promise<TableCatalog> {
  const tables = (await client.query(TABLES_SQL)).rows;
  const cols = tables.length ? (await client.query(COLUMNS_SQL, [tables.map((t) => t.oid)])).rows : [];
  const byOid = new Map<number, ColumnInfo[]>();
  for (const c of cols) {
    const list = byOid.get(c.oid) ?? [];
    list.push({ name: c.name, type: c.type, notNull: c.not_null, hasDefault: c.has_default, generated: c.generated, identity: c.identity });
    byOid.set(c.oid, list);
  }
  const catalog: TableCatalog = new Map();
  for (const t of tables) {
    const info: TableInfo = {
      oid: t.oid, schema: t.schema, name: t.name, kind: t.kind, persistence: t.persistence,
      replicaIdentity: t.replica_identity, keyColumns: t.key_columns ?? [], hasPrimaryKey: t.has_pk,
      columns: byOid.get(t.oid) ?? [], bytes: Number(t.bytes), estimatedRows: Math.max(0, Number(t.estimated_rows)), owner: t.owner,
    };
    catalog.set(tableKey(info), info);
  }
  return catalog;
}

/**
 * The schema version served to the application's previous version: after a risky migration
 * flips, the new side holds a compatibility schema (views under the old names, views.ts) that
 * sessions of the old version find first in their search_path. One record in the state store,
 * written by the controller, read by every proxy.
 */
import type { Side } from '../side';

/** state store key of the record */
export const COMPAT_KEY = 'compat:serving';

export type SchemaVersion = 'old' | 'new';

export interface CompatServing {
  /** the migration whose previous schema is served */
  migrationId: string;
  /** its file name */
  migration: string;
  /** the side holding the compatibility schema (the migration's new side) */
  side: Side;
  schema: string;
  /** what a session that does not ask gets: `old` until `pgflip release` */
  defaultVersion: SchemaVersion;
  /** ms since 1970 when it was created */
  since: number;
}

/** The compatibility schema of a migration: one per migration id, a valid unquoted identifier. */
export function compatSchemaName(migrationId: string): string {
  return `pgflip_compat_${migrationId.toLowerCase().replace(/[^a-z0-9]+/g, '_')}`.slice(0, 63);
}

/** Schemas pgflip owns that a schema copy leaves out (a compatibility schema belongs to its side). */
export const COMPAT_SCHEMA_PATTERN = 'pgflip_compat_*';

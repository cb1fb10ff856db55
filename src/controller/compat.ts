/**
 * The previous schema version, served on the new side of a risky migration (compat/views.ts
 * builds it, the proxies route old-version sessions to it: proxy/schema-version.ts). Created
 * with the migration on the idle side, announced in the state store before the flip, dropped by
 * `pgflip finalize`, by a rollback (the old side serves the old version itself) or when the
 * migration fails before its flip.
 */
import type { Client } from 'pg';
import type { SchemaMapping } from '../classifier/mapping';
import { COMPAT_KEY, compatSchemaName, CompatServing } from '../compat/serving';
import { CompatPlan, compatPlan, createCompatSchema, dropCompatSchema, readColumnDefaults } from '../compat/views';
import { projectCatalog } from '../compat/project';
import type { Side } from '../side';
import type { StateStore } from '../state';
import { readCatalog, type TableCatalog } from '../sync';

/** Whether old statements can break: a table renamed, or a column renamed, dropped or retyped. */
export function needsCompat(mapping: SchemaMapping | undefined): boolean {
  return !!mapping?.tables.some((t) => t.renamedTo || Object.keys(t.renamedColumns).length || t.droppedColumns.length || t.typeChanges.length);
}

/** Creates the compatibility schema on the new side (after the migration ran there). */
export async function buildCompat(o: { migrationId: string; mapping: SchemaMapping; oldSide: Client; newSide: Client; roles: string[] }): Promise<CompatPlan> {
  // the old side still has the old schema: its columns and their defaults are what the views show
  const [oldCatalog, oldDefaults, newCatalog] = await Promise.all([readCatalog(o.oldSide), readColumnDefaults(o.oldSide), readCatalog(o.newSide)]);
  return createCompatSchema(o.newSide, { schema: compatSchemaName(o.migrationId), mapping: o.mapping, oldCatalog, oldDefaults, newCatalog, roles: o.roles });
}

/**
 * What the old application version keeps and loses, for a dry run: the compatibility schema
 * planned against the new side as the migration will leave it.
 */
export function oldVersionPlan(migrationId: string, mapping: SchemaMapping | undefined, oldCatalog: TableCatalog, enabled: boolean): string[] {
  if (!needsCompat(mapping)) return ['old application version: nothing it uses is renamed, dropped or retyped'];
  if (!enabled) return ['old application version: not served (controller.compatSchema is off): its statements on the changed columns fail after the flip'];
  try {
    const plan = compatPlan({ schema: compatSchemaName(migrationId), mapping: mapping!, oldCatalog, newCatalog: projectCatalog(oldCatalog, mapping!), roles: [] });
    if (!plan.views.length) return ['old application version: the changed columns read and write as before (wider types of the same kind)', ...plan.fails.map((f) => `old application version: ${f}`)];
    return [
      ...plan.views.flatMap((v) => [
        `old application version: ${v.table} served as view ${v.view} (${v.writes === 'automatic' ? 'automatically updatable' : 'INSTEAD OF triggers write the new table'})`,
        ...v.fails.map((f) => `  ${f}`),
      ]),
      ...plan.fails.map((f) => `old application version: ${f}`),
    ];
  } catch (err) {
    return [`old application version: not served: ${(err as Error).message}`];
  }
}

/** Tells the proxies: old-version sessions on `side` get `schema` first. */
export async function announceCompat(store: StateStore, rec: { id: string; name: string }, side: Side, schema: string): Promise<CompatServing> {
  const value: CompatServing = { migrationId: rec.id, migration: rec.name, side, schema, defaultVersion: 'old', since: Date.now() };
  await store.setJson(COMPAT_KEY, value);
  return value;
}

export async function servingCompat(store: StateStore): Promise<CompatServing | null> {
  return (await store.getJson<CompatServing>(COMPAT_KEY))?.value ?? null;
}

/** New sessions get the new version from now on; those alive keep theirs. */
export async function releaseCompat(store: StateStore, migrationId: string): Promise<CompatServing> {
  const c = await servingCompat(store);
  if (!c || c.migrationId !== migrationId) throw new Error(`migration ${migrationId} serves no previous schema version`);
  const next: CompatServing = { ...c, defaultVersion: 'new' };
  await store.setJson(COMPAT_KEY, next);
  return next;
}

/** Ends serving the previous version of `migrationId`: the record goes first (proxies stop routing to the schema), then the schema. */
export async function endCompat(store: StateStore, migrationId: string, drop: (c: CompatServing) => Promise<void>): Promise<CompatServing | null> {
  const c = await servingCompat(store);
  if (!c || c.migrationId !== migrationId) return null;
  await store.deleteJson(COMPAT_KEY);
  await drop(c);
  return c;
}

export { dropCompatSchema };

/**
 * Whether the fleet serves no session of the old version any more: every live proxy reported,
 * for this migration, none. False when a proxy has not reported (it may hold some).
 */
export async function noOldVersionSessions(store: StateStore, migrationId: string): Promise<boolean> {
  const [proxies, reports] = await Promise.all([store.liveProxies(), store.healthReports()]);
  if (!proxies.length) return false;
  const byProxy = new Map(reports.map((r) => [r.proxyId, r]));
  return proxies.every((p) => {
    const v = byProxy.get(p.id)?.schemaVersions;
    return v?.migrationId === migrationId && v.old === 0;
  });
}

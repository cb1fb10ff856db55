/**
 * The orchestrator's SyncPort on the sync engine's SyncSession: forward
 * (active → idle, with the migration applied on the idle side) and reverse
 * (new side → old side after the flip, mapped with the inverse plan, starting
 * at the flip's position: no copy).
 */
import { registry } from '../observability/metrics';
import { withSide } from './db';
import { adminUrl, type PgflipConfig } from '../config';
import type { SchemaMapping } from '../classifier/mapping';
import { invertMapping, readCatalog, SyncPrerequisiteError, SyncSession } from '../sync';
import type { SyncFactory, SyncPort, SyncProgress } from './ports';

/** Slot (and publication) names of a migration: one prefix, so a restart can find and drop them. */
export const slotPrefix = (migrationId: string): string => `pgflip_${migrationId.toLowerCase().replace(/[^a-z0-9]/g, '_')}`.slice(0, 56);

function port(session: SyncSession, prepare: () => Promise<void>, onCopy: { fn?: (p: SyncProgress) => void }, copied: { rows: number; fraction: number }): SyncPort {
  return {
    async checkPrerequisites() {
      try { await session.checkPrerequisites(); return []; } catch (err) {
        if (err instanceof SyncPrerequisiteError) return err.problems.map((p) => p.message);
        throw err;
      }
    },
    prepareTarget: prepare,
    async initialCopy(onProgress) {
      onCopy.fn = onProgress;
      const s = await session.initialCopy();
      copied.rows = s.rows;
      copied.fraction = 1;
    },
    migrateTarget: () => session.migrateTarget(),
    startStreaming: () => session.startStreaming(),
    async catchUp(o) {
      await session.catchUp({ timeoutMs: o?.timeoutMs });
      const lag = session.lag();
      return { lagSeconds: lag.seconds, lagBytes: lag.bytes };
    },
    async verify(tables) {
      const r = await session.verify(tables);
      const unequal = r.tables.filter((t) => !t.equal);
      return {
        ok: r.equal,
        problems: unequal.map((t) => `${t.table}: ${t.sourceRows} rows on the source, ${t.targetRows} on the target${t.firstDifference ? `, first difference at ${t.firstDifference.key}` : ''}`),
        tables: r.tables.length,
        unequal: unequal.map((t) => t.table),
      };
    },
    progress() {
      const lag = session.lag();
      return { copyFraction: copied.fraction, rowsCopied: copied.rows, lagSeconds: lag.seconds, lagBytes: lag.bytes };
    },
    tagsOrigin: () => session.tagsOrigin,
    stop: () => session.stop(),
    async cleanup() { await session.cleanup(); },
  };
}

export function syncFactory(cfg: PgflipConfig): SyncFactory {
  return {
    leftovers: (migrationId) => cleanupMigrationSync(cfg, migrationId),
    forward({ migrationId, source, target, sql, mapping }) {
      const onCopy: { fn?: (p: SyncProgress) => void } = {};
      const copied = { rows: 0, fraction: 0 };
      const session = new SyncSession({
        source: adminUrl(cfg, source), target: adminUrl(cfg, target), mapping, migrationSql: sql,
        slotName: `${slotPrefix(migrationId)}_f`, direction: 'forward', registry, parallel: cfg.controller.copyWorkers,
        onProgress: (p) => {
          if (p.phase !== 'copy') return;
          if (p.rows !== undefined) copied.rows = Math.max(copied.rows, p.rows);
          if (p.percent !== undefined) copied.fraction = Math.min(0.99, p.percent / 100);
          onCopy.fn?.({ copyFraction: copied.fraction, rowsCopied: copied.rows });
        },
      });
      // the idle side is rebuilt from scratch with the active side's schema
      return port(session, () => session.prepareTarget({ dropExisting: true }), onCopy, copied);
    },
    reverse({ migrationId, source, target, mapping }) {
      let session: SyncSession | undefined;
      const make = async (): Promise<SyncSession> => {
        // the inverse plan needs the old side's catalog (types and defaults to map back to)
        const inverse = await withSide(adminUrl(cfg, target), async (c) => invertMapping(mapping, await readCatalog(c)));
        return new SyncSession({ source: adminUrl(cfg, source), target: adminUrl(cfg, target), mapping: inverse.mapping, slotName: `${slotPrefix(migrationId)}_r`, direction: 'reverse', registry });
      };
      const lazy = <K extends keyof SyncPort>(k: K) => (async (...args: unknown[]) => {
        session ??= await make();
        const p = port(session, async () => { await session!.createSlot(); }, {}, { rows: 0, fraction: 1 });
        return (p[k] as (...a: unknown[]) => unknown)(...args);
      }) as unknown as SyncPort[K];
      return {
        checkPrerequisites: lazy('checkPrerequisites'),
        prepareTarget: lazy('prepareTarget'),
        initialCopy: lazy('initialCopy'),
        migrateTarget: lazy('migrateTarget'),
        startStreaming: lazy('startStreaming'),
        catchUp: lazy('catchUp'),
        verify: lazy('verify'),
        progress: () => (session ? { lagSeconds: session.lag().seconds, lagBytes: session.lag().bytes } : {}),
        tagsOrigin: () => session?.tagsOrigin ?? false,
        stop: async () => { await session?.stop(); },
        cleanup: async () => {
          if (session) await session.cleanup();
          else await SyncSession.cleanupLeftovers(adminUrl(cfg, source), `${slotPrefix(migrationId)}_r`);
        },
      };
    },
  };
}

/** For a restarted controller: drop every slot, publication and origin a migration left on both sides. */
export async function cleanupMigrationSync(cfg: PgflipConfig, migrationId?: string): Promise<void> {
  const prefix = migrationId ? slotPrefix(migrationId) : 'pgflip_';
  const failures: string[] = [];
  for (const side of ['blue', 'green'] as const) {
    await SyncSession.cleanupLeftovers(adminUrl(cfg, side), prefix).catch((err: Error) => failures.push(`${side}: ${err.message}`));
  }
  if (failures.length) throw new Error(`dropping sync leftovers failed on ${failures.join('; ')}`);
}

export type { SchemaMapping };

/**
 * The orchestrator's sync ports on the sync engine's SyncSession: forward
 * (active → idle, with the migration applied on the idle side) and reverse
 * (new side → old side after the flip, mapped with the inverse plan, starting
 * at the flip's position: no copy).
 */
import { registry } from '../observability/metrics';
import { withClient } from '../util/pg';
import { CONTROLLER_APP } from './db';
import { adminUrl, type PgflipConfig } from '../config';
import { checkSchemaParity, invertMapping, readCatalog, SyncPrerequisiteError, SyncSession } from '../sync';
import type { VerifyResult } from '../sync';
import type { ForwardSync, ReverseSync, SyncFactory, SyncStatus, VerifyOutcome } from './ports';

/** Slot (and publication) names of a migration: one prefix, so a restart can find and drop them. */
export const slotPrefix = (migrationId: string): string => `pgflip_${migrationId.toLowerCase().replace(/[^a-z0-9]/g, '_')}`.slice(0, 56);

async function catchUp(session: SyncSession, timeoutMs?: number): Promise<SyncStatus> {
  await session.catchUp({ timeoutMs });
  const lag = session.lag();
  return { lagSeconds: lag.seconds, lagBytes: lag.bytes };
}

function verifyOutcome(r: VerifyResult): VerifyOutcome {
  const unequal = r.tables.filter((t) => !t.equal);
  return {
    ok: r.equal,
    problems: unequal.map((t) => `${t.table}: ${t.sourceRows} rows on the source, ${t.targetRows} on the target${t.firstDifference ? `, first difference at ${t.firstDifference.key}` : ''}`),
    tables: r.tables.length,
    unequal: unequal.map((t) => t.table),
    results: r.tables.map((t) => ({
      table: t.table, sourceRows: t.sourceRows, targetRows: t.targetRows, equal: t.equal,
      ...(t.firstDifference ? { firstDifference: t.firstDifference.key } : {}),
    })),
  };
}

export function syncFactory(cfg: PgflipConfig): SyncFactory {
  return {
    leftovers: (migrationId) => cleanupMigrationSync(cfg, migrationId),
    forward({ migrationId, source, target, sql, mapping }): ForwardSync {
      let onCopy: ((p: SyncStatus) => void) | undefined;
      const copied = { rows: 0, fraction: 0, bytes: 0, total: 0 };
      // the copy reports per table; the migration's progress is the sum over tables
      const tables = new Map<string, { rows: number; bytes: number; size: number; done: boolean }>();
      const session = new SyncSession({
        source: adminUrl(cfg, source), target: adminUrl(cfg, target), mapping, migrationSql: sql,
        slotName: `${slotPrefix(migrationId)}_f`, direction: 'forward', registry, parallel: cfg.controller.copyWorkers, schemaDump: cfg.controller.schemaDump,
        onProgress: (p) => {
          if (p.phase !== 'copy' || !p.table) return;
          tables.set(p.table, { rows: p.rows ?? 0, bytes: p.bytes ?? 0, size: p.tableBytes ?? 0, done: !!p.done });
          let rows = 0, bytes = 0, size = 0, doneSize = 0, done = 0;
          for (const t of tables.values()) {
            rows += t.rows; bytes += t.bytes; size += t.size;
            doneSize += t.done ? t.size : Math.min(t.bytes, t.size);
            if (t.done) done++;
          }
          copied.rows = rows;
          copied.bytes = bytes;
          copied.total = size;
          copied.fraction = Math.min(0.99, size > 0 ? doneSize / size : done / tables.size);
          onCopy?.({ copyFraction: copied.fraction, rowsCopied: copied.rows, bytesCopied: copied.bytes, bytesTotal: copied.total });
        },
      });
      return {
        async checkPrerequisites() {
          try { await session.checkPrerequisites(); return []; } catch (err) {
            if (err instanceof SyncPrerequisiteError) return err.problems.map((p) => p.message);
            throw err;
          }
        },
        // the idle side is rebuilt from scratch with the active side's schema
        async rebuildTarget() {
          const tool = await session.prepareTarget({ dropExisting: true });
          return `${tool.tool === 'node' ? 'the Node schema copy' : 'pg_dump'}: ${tool.reason}`;
        },
        async initialCopy(onProgress) {
          onCopy = onProgress;
          const s = await session.initialCopy();
          copied.rows = s.rows;
          copied.bytes = s.bytes;
          copied.fraction = 1;
        },
        migrateTarget: () => session.migrateTarget(),
        async schemaParity() {
          const r = await checkSchemaParity({ active: adminUrl(cfg, source), next: adminUrl(cfg, target), migrationSql: sql, migrationId, tool: cfg.controller.schemaDump });
          const names = { a: `${source} + migration`, b: target };
          return { differences: r.differences.map((x) => `only on ${names[x.only]}: ${x.object}`), seconds: r.seconds };
        },
        startStreaming: () => session.startStreaming(),
        catchUp: (o) => catchUp(session, o?.timeoutMs),
        // exact at one instant while writes run (a temporary slot's snapshot, the apply held at its LSN)
        verify: async (tables) => verifyOutcome(await session.verifyConsistent(tables)),
        async pinFlipState() {
          const sides = await session.pinnable();
          return { pin: () => sides.pin(), verify: async (t) => verifyOutcome(await sides.compare(t)), close: () => sides.close() };
        },
        progress() {
          const lag = session.lag();
          return { copyFraction: copied.fraction, rowsCopied: copied.rows, bytesCopied: copied.bytes, bytesTotal: copied.total, lagSeconds: lag.seconds, lagBytes: lag.bytes };
        },
        tagsOrigin: () => session.tagsOrigin,
        stop: () => session.stop(),
        async cleanup() { await session.cleanup(); },
      };
    },
    async inverse({ mapping, oldSide }) {
      const inv = await withClient(adminUrl(cfg, oldSide), async (c) => invertMapping(mapping, await readCatalog(c)), CONTROLLER_APP);
      return { problems: inv.problems, warnings: inv.warnings };
    },
    reverse({ migrationId, source, target, mapping }): ReverseSync {
      const slotName = `${slotPrefix(migrationId)}_r`;
      let session: SyncSession | undefined;
      // made on first use: the inverse plan needs the old side's catalog (types and defaults to map back to)
      const made = async (): Promise<SyncSession> => {
        if (session) return session;
        const inverse = await withClient(adminUrl(cfg, target), async (c) => invertMapping(mapping, await readCatalog(c)), CONTROLLER_APP);
        return (session ??= new SyncSession({ source: adminUrl(cfg, source), target: adminUrl(cfg, target), mapping: inverse.mapping, slotName, direction: 'reverse', registry, synchronous: cfg.controller.synchronousReverse }));
      };
      return {
        createSlot: async () => { await (await made()).createSlot(); },
        startStreaming: async () => (await made()).startStreaming(),
        requireConfirmation: async () => (await made()).requireConfirmation(),
        catchUp: async (o) => catchUp(await made(), o?.timeoutMs),
        stop: async () => { await session?.stop(); },
        cleanup: async () => {
          if (session) await session.cleanup();
          else await SyncSession.cleanupLeftovers(adminUrl(cfg, source), slotName);
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

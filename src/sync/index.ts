/** The sync engine's public API (docs/sync.md). */
export { SyncSession, SyncMigrationError, SyncStateError } from './session';
export type { SyncSessionOptions, SyncProgress, SyncPhase, CopySummary, CatchUpResult, PinnedSides } from './session';
export { invertMapping, isWidening } from './invert';
export type { InverseMapping } from './invert';
export { readCatalog } from './catalog';
export type { TableCatalog, TableInfo, ColumnInfo } from './catalog';
export { SyncPrerequisiteError } from './prerequisites';
export type { Problem } from './prerequisites';
export { SyncPlanError } from './plan';
export { SyncApplyError } from './apply';
export type { AppliedBatch, ApplyStats } from './apply';
export type { VerifyResult, TableVerification } from './verify';
export type { CleanupReport } from './cleanup';
export { checkSchemaParity, compareSchemas } from './parity';
export type { SchemaDifference, ParityResult } from './parity';

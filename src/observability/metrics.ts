/**
 * The Prometheus registry and every metric name (the migration_* names are a
 * contract: docs/architecture.md). Each part gets
 * its metrics from a function here, so one name has one definition; calling
 * it again on the same registry returns the already registered metrics.
 */
import prom from 'prom-client';

/** The process-wide registry served on /metrics. */
export const registry = new prom.Registry();

export const METRIC = {
  // migrations (names from the migration templates: contract)
  migrationProgress: 'migration_progress',
  migrationDuration: 'migration_duration_seconds',
  migrationErrors: 'migration_errors_total',
  rollbackImpossible: 'pgflip_rollback_impossible_total',
  // controller: fleet flips and maintenance holds as they end
  flips: 'pgflip_flips_total',
  // proxy
  clientConnections: 'pgflip_client_connections',
  queries: 'pgflip_queries_total',
  queryErrors: 'pgflip_query_errors_total',
  queryDuration: 'pgflip_query_duration_seconds',
  bytes: 'pgflip_bytes_total',
  activeSide: 'pgflip_active_side',
  backendUp: 'pgflip_backend_up',
  heldSessions: 'pgflip_held_sessions',
  pinnedSessions: 'pgflip_pinned_sessions',
  poolConnections: 'pgflip_pool_connections',
  poolWaiting: 'pgflip_pool_waiting_clients',
  sessionsByVersion: 'pgflip_sessions_by_schema_version',
  flipPause: 'pgflip_flip_pause_seconds',
  // sync
  syncLagSeconds: 'pgflip_sync_lag_seconds',
  syncLagBytes: 'pgflip_sync_lag_bytes',
} as const;

function once<T extends prom.Metric>(reg: prom.Registry, name: string, make: () => T): T {
  return (reg.getSingleMetric(name) as T | undefined) ?? make();
}

export interface ProxyMetrics {
  clientConnections: prom.Gauge;
  queries: prom.Counter<'side'>;
  queryErrors: prom.Counter<'side' | 'sqlstate_class'>;
  queryDuration: prom.Histogram<'side'>;
  bytes: prom.Counter<'direction'>;
  activeSide: prom.Gauge<'side'>;
  backendUp: prom.Gauge<'side'>;
  heldSessions: prom.Gauge;
  pinnedSessions: prom.Gauge<'reason'>;
  poolConnections: prom.Gauge<'side' | 'state'>;
  poolWaiting: prom.Gauge<'side'>;
  sessionsByVersion: prom.Gauge<'version'>;
  flipPause: prom.Histogram;
}

/**
 * Proxy metrics. Hot counters (queries, bytes) are kept as plain numbers by
 * the proxy and added here in batches (every second and before its own
 * /metrics answers), so the relay never calls into prom-client per message.
 * Under proxy.workers the primary sums each metric over the workers (workers.ts); the two
 * 0/1 gauges take the largest instead.
 */
export function proxyMetrics(reg: prom.Registry = registry): ProxyMetrics {
  const registers = [reg];
  return {
    clientConnections: once(reg, METRIC.clientConnections, () => new prom.Gauge({ name: METRIC.clientConnections, help: 'client connections open at the proxy', registers })),
    queries: once(reg, METRIC.queries, () => new prom.Counter({ name: METRIC.queries, help: 'queries relayed (Query and Sync messages) by backend side', labelNames: ['side'] as const, registers })),
    queryErrors: once(reg, METRIC.queryErrors, () => new prom.Counter({ name: METRIC.queryErrors, help: 'ErrorResponses from backends by side and SQLSTATE class', labelNames: ['side', 'sqlstate_class'] as const, registers })),
    queryDuration: once(reg, METRIC.queryDuration, () => new prom.Histogram({
      name: METRIC.queryDuration, help: 'time from a request (Query, Sync, FunctionCall) to the ReadyForQuery that answers it, by side; a pipeline counts once',
      labelNames: ['side'] as const, buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers,
    })),
    bytes: once(reg, METRIC.bytes, () => new prom.Counter({ name: METRIC.bytes, help: 'bytes relayed; direction: client_to_server or server_to_client', labelNames: ['direction'] as const, registers })),
    activeSide: once(reg, METRIC.activeSide, () => new prom.Gauge({ name: METRIC.activeSide, help: '1 for the side that serves new sessions, 0 for the other', labelNames: ['side'] as const, registers, aggregator: 'max' })),
    backendUp: once(reg, METRIC.backendUp, () => new prom.Gauge({ name: METRIC.backendUp, help: '1 when the last health check of the side succeeded', labelNames: ['side'] as const, registers, aggregator: 'max' })),
    sessionsByVersion: once(reg, METRIC.sessionsByVersion, () => new prom.Gauge({ name: METRIC.sessionsByVersion, help: 'client connections by the schema version they see while a migration serves its previous one: old (the compatibility schema) or new', labelNames: ['version'] as const, registers })),
    heldSessions: once(reg, METRIC.heldSessions, () => new prom.Gauge({ name: METRIC.heldSessions, help: 'sessions whose client bytes are held during a flip', registers })),
    pinnedSessions: once(reg, METRIC.pinnedSessions, () => new prom.Gauge({ name: METRIC.pinnedSessions, help: 'sessions holding state that cannot move to another backend, by reason (a flip ends them under proxy.pinnedPolicy terminate)', labelNames: ['reason'] as const, registers })),
    poolConnections: once(reg, METRIC.poolConnections, () => new prom.Gauge({ name: METRIC.poolConnections, help: 'server connections of transaction-mode pools by side and state: active (leased to a transaction) or idle', labelNames: ['side', 'state'] as const, registers })),
    poolWaiting: once(reg, METRIC.poolWaiting, () => new prom.Gauge({ name: METRIC.poolWaiting, help: 'transactions waiting for a server connection of a full pool, by side', labelNames: ['side'] as const, registers })),
    flipPause: once(reg, METRIC.flipPause, () => new prom.Histogram({
      name: METRIC.flipPause, help: 'time traffic was held during a flip',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers,
    })),
  };
}

export interface MigrationMetrics { progress: prom.Gauge; duration: prom.Histogram; errors: prom.Counter; rollbackImpossible: prom.Counter; flips: prom.Counter<'kind' | 'outcome'> }

export function migrationMetrics(reg: prom.Registry = registry): MigrationMetrics {
  const registers = [reg];
  return {
    progress: once(reg, METRIC.migrationProgress, () => new prom.Gauge({ name: METRIC.migrationProgress, help: 'progress of the running migration, 0..1', registers })),
    duration: once(reg, METRIC.migrationDuration, () => new prom.Histogram({
      name: METRIC.migrationDuration, help: 'duration of finished migrations',
      buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600], registers,
    })),
    errors: once(reg, METRIC.migrationErrors, () => new prom.Counter({ name: METRIC.migrationErrors, help: 'failed migrations', registers })),
    rollbackImpossible: once(reg, METRIC.rollbackImpossible, () => new prom.Counter({
      name: METRIC.rollbackImpossible, help: 'rollbacks refused because the reverse stream could not carry the new side\'s writes back (traffic stayed on the new side)', registers,
    })),
    flips: once(reg, METRIC.flips, () => new prom.Counter({
      name: METRIC.flips, help: 'fleet flips (kind flip) and maintenance holds (kind hold) the controller ran, by outcome: committed or aborted',
      labelNames: ['kind', 'outcome'] as const, registers,
    })),
  };
}


/**
 * The controller's metrics: the contract names of DESIGN §3.6, defined once in
 * src/observability/metrics.ts on the process-wide registry that /metrics serves.
 */
import { migrationMetrics, MigrationMetrics, registry } from '../observability/metrics';

export function controllerMetrics(): MigrationMetrics & { registry: typeof registry } {
  return { ...migrationMetrics(registry), registry };
}

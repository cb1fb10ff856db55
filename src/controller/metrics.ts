/**
 * The controller's metrics: contract names (docs/architecture.md), defined once in
 * src/observability/metrics.ts on the process-wide registry that /metrics serves.
 */
import { migrationMetrics, MigrationMetrics, registry } from '../observability/metrics';

export function controllerMetrics(): MigrationMetrics & { registry: typeof registry } {
  return { ...migrationMetrics(registry), registry };
}

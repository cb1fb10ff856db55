/** Sync lag gauges (names in observability/metrics.ts): one pair per registry, labelled by direction. */
import { Gauge, Registry, register as defaultRegistry } from 'prom-client';
import { METRIC } from '../observability/metrics';

export interface LagGauges {
  seconds: Gauge<'direction'>;
  bytes: Gauge<'direction'>;
}

function gauge(registry: Registry, name: string, help: string): Gauge<'direction'> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Gauge<'direction'>;
  return new Gauge({ name, help, labelNames: ['direction'], registers: [registry] });
}

export function lagGauges(registry: Registry = defaultRegistry): LagGauges {
  return {
    seconds: gauge(registry, METRIC.syncLagSeconds, 'Seconds since the oldest source commit not yet applied on the target (0 when caught up)'),
    bytes: gauge(registry, METRIC.syncLagBytes, 'WAL bytes between the source\'s current position and the last position applied on the target'),
  };
}

/** What every session shares with its proxy. */
import type { Logger } from 'pino';
import type { Histogram } from 'prom-client';
import type tls from 'node:tls';
import type { PgflipConfig, Side } from '../config';
import type { ProxyMetrics } from '../observability/metrics';
import type { BackendTarget } from './backend-connect';
import type { CancelKeyStore } from './cancel';
import type { ScramSecret } from './scram';

/** Hot counters, plain numbers added to prom-client in batches. Index 0 = blue, 1 = green. */
export interface RelayStats {
  queries: [number, number];
  bytesIn: number;
  bytesOut: number;
}

export const sideIndex = (s: Side): 0 | 1 => (s === 'blue' ? 0 : 1);

export interface ProxyContext {
  cfg: PgflipConfig;
  log: Logger;
  metrics: ProxyMetrics;
  /** query duration histogram per side (index as sideIndex), label lookup done once */
  durations: [Histogram.Internal<'side'>, Histogram.Internal<'side'>];
  stats: RelayStats;
  targets: Record<Side, BackendTarget>;
  /** side new sessions are served by */
  activeSide(): Side;
  cancelKeys: CancelKeyStore;
  cancelKeyInUse(pid: number): boolean;
  tlsContext?: tls.SecureContext;
  /** SCRAM secrets per proxy user (derived once at start) */
  scramSecret(user: string): ScramSecret | undefined;
  /** deterministic fake salt for unknown users */
  mockSalt(user: string): Buffer;
  /** sessions counted against maxClientConnections (includes ones still starting) */
  admit(): boolean;
  release(): void;
  sessionStarted(s: unknown): void;
  sessionEnded(s: unknown): void;
}

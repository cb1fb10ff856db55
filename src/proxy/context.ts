/** What every session shares with its proxy. */
import type { Logger } from 'pino';
import type { Histogram } from 'prom-client';
import type tls from 'node:tls';
import type { PgflipConfig } from '../config';
import type { Side } from '../side';
import type { CompatServing } from '../compat/serving';
import type { ProxyMetrics } from '../observability/metrics';
import type { BackendTarget } from './backend-connect';
import type { CancelTarget } from './cancel';
import type { ScramSecret } from './scram';
import type { SharedListeners } from './pool/listeners';
import type { ServerPools } from './pool/server-pool';

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
  /** the previous schema version served, if any (schema-version.ts) */
  compat(): CompatServing | null;
  cancel: CancelRouter;
  /** server connections of transaction-mode sessions (pool/server-pool.ts) */
  pools: ServerPools;
  listeners: SharedListeners;
  /** while a flip holds new connections: resolves when they may pick a side */
  admission(): Promise<void> | undefined;
  tlsContext?: tls.SecureContext;
  /** SCRAM secrets per proxy user (derived once at start) */
  scramSecret(user: string): ScramSecret | undefined;
  /** deterministic fake salt for unknown users */
  mockSalt(user: string): Buffer;
  /** sessions counted against maxClientConnections (includes ones still starting) */
  admit(): boolean;
  release(): void;
  sessionStarted(s: unknown): void;
  /** the session has its backend and is about to relay */
  sessionAttached(s: unknown): void;
  sessionEnded(s: unknown): void;
  /** the session's backend closed unasked, with the session at message boundaries: it waits for a new one (lost-backend.ts) */
  backendLost(s: unknown): void;
  /** resolves when a side may have come back or the active side changed (or after `ms`): a new client tries again */
  nextBackendChange(ms: number): Promise<void>;
}

/** Client-facing cancel keys: issued per session, repointed by a switch, answered fleet-wide (cancel-router.ts). */
export interface CancelRouter {
  /** a fresh key for a client, unique in the fleet, mapped to its backend */
  issue(target: CancelTarget): Promise<{ pid: number; secret: number }>;
  /** the session now runs on another backend */
  repoint(pid: number, secret: number, target: CancelTarget): void;
  release(pid: number, secret: number): void;
  /** a CancelRequest received by this proxy: sent to the backend here, or routed to the proxy owning the key */
  forward(pid: number, secret: number): Promise<'local' | 'routed' | 'unknown'>;
}

/**
 * Periodic health check of each side: one connection per side (opened the way
 * sessions open theirs, so credentials and sslmode are checked too) that runs
 * the configured query every interval.
 */
import { serialize } from 'pg-protocol';
import type { Logger } from 'pino';
import type { Side } from '../side';
import { BackendConnection, BackendTarget, connectBackend } from './backend-connect';
import { exchange } from './exchange';

export interface SideHealth {
  up: boolean;
  /** ISO time of the last finished check, or null before the first */
  checkedAt: string | null;
  latencyMs: number | null;
  error: string | null;
}

export class HealthChecker {
  readonly health: Record<Side, SideHealth> = {
    blue: { up: false, checkedAt: null, latencyMs: null, error: null },
    green: { up: false, checkedAt: null, latencyMs: null, error: null },
  };
  private readonly conns: Partial<Record<Side, BackendConnection>> = {};
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly targets: Record<Side, BackendTarget>,
    private readonly opts: { intervalMs: number; timeoutMs: number; query: string },
    private readonly log: Logger,
    private readonly onChange: (side: Side, h: SideHealth) => void,
  ) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.checkAll().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.opts.intervalMs);
      });
    };
    tick();
  }

  /** Run a check of both sides now. */
  async checkAll(): Promise<void> {
    await Promise.all((['blue', 'green'] as Side[]).map((s) => this.check(s)));
  }

  private async check(side: Side): Promise<void> {
    const started = Date.now();
    const was = this.health[side].up;
    try {
      await withTimeout(this.runQuery(side), this.opts.timeoutMs, () => this.drop(side));
      this.health[side] = { up: true, checkedAt: new Date().toISOString(), latencyMs: Date.now() - started, error: null };
    } catch (e) {
      this.drop(side);
      this.health[side] = { up: false, checkedAt: new Date().toISOString(), latencyMs: null, error: (e as Error).message };
    }
    if (was !== this.health[side].up) {
      this.log[this.health[side].up ? 'info' : 'warn']({ side, error: this.health[side].error }, `${side} backend is ${this.health[side].up ? 'up' : 'down'}`);
    }
    this.onChange(side, this.health[side]);
  }

  private drop(side: Side): void {
    this.conns[side]?.socket.destroy();
    delete this.conns[side];
  }

  private async runQuery(side: Side): Promise<void> {
    let conn = this.conns[side];
    if (!conn || conn.socket.destroyed) {
      const t = this.targets[side];
      conn = await connectBackend(t, new Map([['application_name', 'pgflip health check']]), t.database, this.opts.timeoutMs);
      conn.socket.on('error', () => undefined);
      // stopped while connecting (a check that timed out, then stop()): the connection would outlive the proxy
      if (this.stopped) { conn.socket.destroy(); throw new Error('health checker stopped'); }
      this.conns[side] = conn;
    }
    const { error } = await exchange(conn.socket, serialize.query(this.opts.query), 1, { what: 'the health check' });
    if (error) throw new Error(error);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.drop('blue');
    this.drop('green');
    await this.running?.catch(() => undefined);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { onTimeout(); reject(new Error(`health check timed out after ${ms} ms`)); }, ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
  });
}

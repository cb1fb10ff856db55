/**
 * Audit log: one JSON line per mutating action — who (token fingerprint),
 * through what (cli or http), what, on what, when, and the outcome.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { logger } from '../observability/logger';

export interface AuditEntry {
  who: string;
  via?: 'cli' | 'http' | 'controller';
  action: string;
  target?: string;
  outcome: string;
  detail?: Record<string, unknown>;
}

export class AuditLog {
  private chain: Promise<void> = Promise.resolve();
  private dirReady: Promise<unknown> | undefined;

  constructor(readonly file: string) {}

  /** Appends in call order; a failing disk is logged, never thrown into the API. */
  write(entry: AuditEntry): Promise<void> {
    const line = JSON.stringify({ at: new Date().toISOString(), ...entry }) + '\n';
    this.dirReady ??= mkdir(path.dirname(path.resolve(this.file)), { recursive: true });
    this.chain = this.chain
      .then(() => this.dirReady)
      .then(() => appendFile(this.file, line, { mode: 0o600 }))
      .catch((err: Error) => logger().error({ err: err.message, file: this.file }, 'audit log write failed'));
    return this.chain;
  }
}

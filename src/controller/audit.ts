/**
 * Audit log: one JSON line per mutating action — who (token fingerprint),
 * through what (cli or http), what, on what, when, and the outcome.
 */
import { appendFile, mkdir, open } from 'node:fs/promises';
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

  /** The newest `n` entries, newest first (read from the end of the file; none when it does not exist yet). */
  async tail(n: number): Promise<Array<AuditEntry & { at: string }>> {
    await this.chain;
    let fh;
    try { fh = await open(this.file, 'r'); } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    try {
      const size = (await fh.stat()).size;
      // entries are short: 64 KiB from the end holds far more than a page shows
      const len = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      const lines = buf.toString('utf8').split('\n').filter(Boolean);
      if (len < size) lines.shift(); // the first line may be cut
      const out: Array<AuditEntry & { at: string }> = [];
      for (const l of lines.reverse()) {
        if (out.length >= n) break;
        try { out.push(JSON.parse(l)); } catch { /* a line being written */ }
      }
      return out;
    } finally {
      await fh.close();
    }
  }
}

/**
 * The drift between the two sides' schemas, for /status: what one has that the
 * other has not, object by object (src/sync/parity.ts). The status page's drift
 * (overview.ts) is the cheaper per-table view of the same question, read with
 * the side probes. After a risky migration
 * the old side keeps the old schema until the next one rebuilds it, so drift is
 * information, not an alarm; before a flip the parity check is what enforces.
 *
 * Reading two schemas takes a second: the answer is kept for a while, and a
 * stale one is returned at once while a fresh one is read. Only a caller with
 * the API token makes it read (/status needs none, and must stay cheap).
 */
import { adminUrl, type PgflipConfig } from '../config';
import { compareSchemas } from '../sync';
import { errMsg } from './steps';

export interface ObjectDriftReport {
  checkedAt: string;
  equal: boolean;
  /** how many objects differ */
  count: number;
  /** the first of them, `only on blue: …` / `only on green: …` */
  differences: string[];
  error?: string;
}

const SHOWN = 50;

export class ObjectDrift {
  private last?: { at: number; report: ObjectDriftReport };
  private reading?: Promise<ObjectDriftReport>;

  constructor(private readonly cfg: PgflipConfig, private readonly maxAgeMs = 10_000) {}

  /** `read`: may read the schemas (an authenticated caller); otherwise only what was read before, if anything. */
  async get(read: boolean): Promise<ObjectDriftReport | undefined> {
    if (!read) return this.last?.report;
    if (!this.last) return this.refresh();
    if (Date.now() - this.last.at > this.maxAgeMs) void this.refresh();
    return this.last.report;
  }

  private refresh(): Promise<ObjectDriftReport> {
    this.reading ??= (async () => {
      let report: ObjectDriftReport;
      try {
        const d = await compareSchemas(adminUrl(this.cfg, 'blue'), adminUrl(this.cfg, 'green'));
        const names = { a: 'blue', b: 'green' };
        report = { checkedAt: new Date().toISOString(), equal: d.length === 0, count: d.length, differences: d.slice(0, SHOWN).map((x) => `only on ${names[x.only]}: ${x.object}`) };
      } catch (err) {
        report = { checkedAt: new Date().toISOString(), equal: false, count: 0, differences: [], error: errMsg(err) };
      }
      this.last = { at: Date.now(), report };
      return report;
    })().finally(() => { this.reading = undefined; });
    return this.reading;
  }
}

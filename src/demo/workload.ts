/**
 * The demo's application: a few node-postgres clients writing through the proxy
 * in a loop, each remembering every write the server acknowledged, so that after
 * the flip every acknowledged write can be looked up on the new side.
 *
 * The writes touch only `users.id`, `name` and `email`: columns the demo's risky
 * migration leaves alone, so the same SQL is valid before and after the flip.
 */
import { Client } from 'pg';
import { sleep } from '../util/sleep';

export interface WorkloadOptions {
  url: string;
  writers: number;
  /** pause between two writes of one client */
  pauseMs: number;
}

export interface WorkloadCounts {
  attempted: number;
  acknowledged: number;
  errors: number;
  /** slowest acknowledged write, as the client saw it */
  maxLatencyMs: number;
}

export interface LostWrite {
  id: string;
  expected: { name: string; email: string };
  found?: { name: string; email: string };
}


export class Workload {
  /** acknowledged state per row id: the last acknowledged insert or update wins (one writer owns each row) */
  private readonly expected = new Map<string, { name: string; email: string }>();
  readonly counts: WorkloadCounts = { attempted: 0, acknowledged: 0, errors: 0, maxLatencyMs: 0 };
  readonly errorMessages: string[] = [];
  private stopping = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly o: WorkloadOptions) {}

  start(): void {
    this.loops = Array.from({ length: this.o.writers }, (_, n) => this.writer(n));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  recordError(err: unknown, where?: string): void {
    this.counts.errors++;
    const e = err as { message?: string; code?: string };
    if (this.errorMessages.length < 10) this.errorMessages.push(`${e.code ? `${e.code} ` : ''}${e.message ?? String(err)}${where ? ` (${where})` : ''}`);
  }

  private async connect(): Promise<Client> {
    const c = new Client({ connectionString: this.o.url, application_name: 'demo-writer' });
    // pg reports here what reaches a connection with no query running (one in flight gets it as
    // its rejection): the application sees it, so it counts
    c.on('error', (err) => this.recordError(err, 'on an idle or closing connection'));
    await c.connect();
    return c;
  }

  /** One client: inserts a row, then updates one of its own rows, and so on. */
  private async writer(n: number): Promise<void> {
    const mine: string[] = [];
    let client: Client | undefined;
    for (let i = 0; !this.stopping; i++) {
      try {
        client ??= await this.connect();
      } catch (err) {
        this.recordError(err);
        await sleep(200);
        continue;
      }
      const update = mine.length > 0 && i % 2 === 1;
      this.counts.attempted++;
      const t0 = performance.now();
      try {
        if (update) {
          const id = mine[Math.floor(Math.random() * mine.length)];
          const row = { name: this.expected.get(id)!.name, email: `w${n}-${i}@updated.example` };
          const r = await client.query('UPDATE users SET email = $1 WHERE id = $2', [row.email, id]);
          if (r.rowCount !== 1) throw new Error(`update of users.id ${id} matched ${r.rowCount} rows`);
          this.expected.set(id, row);
        } else {
          const row = { name: `demo-w${n}-${i}`, email: `w${n}-${i}@example.com` };
          const r = await client.query<{ id: string }>('INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id', [row.name, row.email]);
          const id = String(r.rows[0].id);
          this.expected.set(id, row);
          mine.push(id);
        }
        this.counts.acknowledged++;
        this.counts.maxLatencyMs = Math.max(this.counts.maxLatencyMs, performance.now() - t0);
      } catch (err) {
        this.recordError(err);
        // start over on a fresh connection: the old one may be unusable
        await client.end().catch(() => undefined);
        client = undefined;
      }
      await sleep(this.o.pauseMs);
    }
    await client?.end().catch(() => undefined);
  }

  /** Acknowledged writes whose row on `url` is missing or differs from what was acknowledged. */
  async lostOn(url: string): Promise<LostWrite[]> {
    const c = new Client({ connectionString: url, application_name: 'demo-check' });
    await c.connect();
    const lost: LostWrite[] = [];
    try {
      const ids = [...this.expected.keys()];
      for (let i = 0; i < ids.length; i += 5000) {
        const batch = ids.slice(i, i + 5000);
        const r = await c.query<{ id: string; name: string; email: string }>('SELECT id::text AS id, name, email FROM users WHERE id = ANY($1::bigint[])', [batch]);
        const found = new Map(r.rows.map((x) => [x.id, { name: x.name, email: x.email }]));
        for (const id of batch) {
          const want = this.expected.get(id)!;
          const got = found.get(id);
          if (!got || got.name !== want.name || got.email !== want.email) lost.push({ id, expected: want, found: got });
        }
      }
    } finally {
      await c.end();
    }
    return lost;
  }

  /** distinct rows the workload wrote */
  get rows(): number {
    return this.expected.size;
  }
}

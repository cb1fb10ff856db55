/**
 * The demo's application: a few node-postgres clients writing through the proxy
 * in a loop, each remembering every write the server acknowledged, so that after
 * the flip every acknowledged write can be looked up on the new side.
 *
 * The old version reads and writes `users.nickname` and `created_at`, which the
 * demo's risky migration renames and drops: after the flip it keeps working through
 * the previous schema version the proxy serves it. The new version asks for the
 * new schema (`pgflip.version=latest`) and uses `display_name`.
 */
import { Client } from 'pg';
import { sleep } from '../util/sleep';

export interface WorkloadOptions {
  url: string;
  writers: number;
  /** pause between two writes of one client */
  pauseMs: number;
  /** which application version: its SQL and the schema version it asks the proxy for */
  version: 'old' | 'new';
}

type Row = { name: string; email: string; nick: string };

export interface WorkloadCounts {
  attempted: number;
  acknowledged: number;
  errors: number;
  /** slowest acknowledged write, as the client saw it */
  maxLatencyMs: number;
}

export interface LostWrite {
  id: string;
  expected: Row;
  found?: Row;
}


export class Workload {
  /** acknowledged state per row id: the last acknowledged insert or update wins (one writer owns each row) */
  private readonly expected = new Map<string, Row>();
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
    const c = new Client({ connectionString: this.o.url, application_name: `demo-${this.o.version}`, ...(this.o.version === 'new' ? { options: '-c pgflip.version=latest' } : {}) });
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
        const nick = this.o.version === 'old' ? 'nickname' : 'display_name';
        if (update) {
          const id = mine[Math.floor(Math.random() * mine.length)];
          const row = { name: this.expected.get(id)!.name, email: `w${n}-${i}@updated.example`, nick: `${this.o.version}-${n}-${i}` };
          const r = await client.query(`UPDATE users SET email = $1, ${nick} = $2 WHERE id = $3`, [row.email, row.nick, id]);
          if (r.rowCount !== 1) throw new Error(`update of users.id ${id} matched ${r.rowCount} rows`);
          this.expected.set(id, row);
        } else {
          const row = { name: `demo-${this.o.version}-w${n}-${i}`, email: `w${n}-${i}@example.com`, nick: `${this.o.version}-${n}-${i}` };
          // the old version sets created_at itself and reads it back
          const r = this.o.version === 'old'
            ? await client.query<{ id: string; created_at: Date }>('INSERT INTO users (name, email, nickname, created_at) VALUES ($1, $2, $3, now()) RETURNING id, created_at', [row.name, row.email, row.nick])
            : await client.query<{ id: string }>('INSERT INTO users (name, email, display_name) VALUES ($1, $2, $3) RETURNING id', [row.name, row.email, row.nick]);
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
        // the side looked at has the new schema: the nickname is display_name there
        const r = await c.query<{ id: string; name: string; email: string; nick: string }>('SELECT id::text AS id, name, email, display_name AS nick FROM users WHERE id = ANY($1::bigint[])', [batch]);
        const found = new Map(r.rows.map((x) => [x.id, { name: x.name, email: x.email, nick: x.nick }]));
        for (const id of batch) {
          const want = this.expected.get(id)!;
          const got = found.get(id);
          if (!got || got.name !== want.name || got.email !== want.email || got.nick !== want.nick) lost.push({ id, expected: want, found: got });
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

/**
 * One executor per client library: runs a program's steps and reports each
 * step's observable result as a string (rows as text, or the error's
 * SQLSTATE), so that a run through pgflip and a direct run compare as equal
 * strings.
 */
import { Client } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { serialize } from 'pg-protocol';
import postgres from 'postgres';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { RawClient, RawMessage } from '../proxy/raw-client';
import { parseErrorFields } from '../../src/proxy/protocol/parser';
import { ClientKind, OBSERVE_SQL, Step } from './program';

export interface Target { host: string; port: number; user: string; password: string; database: string }

export interface Executor {
  run(step: Step): Promise<string>;
  /** the session was ended by the server (57P01 …): the message, else undefined */
  ended(): string | undefined;
  close(): Promise<void>;
}

const COPY_OUT = (n: number) => `COPY (SELECT g, md5(g::text) FROM generate_series(1, ${n}) g) TO STDOUT`;
/** rows with ids unique in this process (both runs insert into tables of their own database) */
let nextId = 1;
const copyRows = (n: number) => Array.from({ length: n }, () => `${nextId++}\trow\n`).join('');
const errCode = (e: unknown): string => `error ${(e as { code?: string }).code ?? (e as Error).message}`;
const rowsText = (rows: unknown[][]): string => JSON.stringify(rows);

export async function openExecutor(kind: ClientKind, t: Target, app: string): Promise<Executor> {
  if (kind === 'node-postgres') return NodePg.open(t, app);
  if (kind === 'postgres.js') return PostgresJs.open(t, app);
  return Raw.open(t, app);
}

class NodePg implements Executor {
  private end?: string;
  private constructor(private readonly c: Client) {
    c.on('error', (e) => { this.end ??= `${(e as { code?: string }).code ?? ''} ${e.message}`; });
  }

  static async open(t: Target, app: string): Promise<NodePg> {
    const c = new Client({ ...t, application_name: app });
    await c.connect();
    return new NodePg(c);
  }

  ended(): string | undefined { return this.end; }

  async run(step: Step): Promise<string> {
    try {
      switch (step.k) {
        case 'simple': {
          const r = await this.c.query({ text: step.sql, rowMode: 'array' });
          const all = Array.isArray(r) ? r : [r];
          return all.map((x) => `${x.command}:${rowsText(x.rows)}`).join('|');
        }
        case 'extended': {
          const r = await this.c.query({ text: step.sql, values: step.params, name: step.name, rowMode: 'array' });
          return rowsText(r.rows);
        }
        case 'observe': return rowsText((await this.c.query({ text: OBSERVE_SQL, rowMode: 'array' })).rows);
        case 'copyOut': {
          let out = '';
          await pipeline(this.c.query(copyTo(COPY_OUT(step.rows))), new Writable({ write(ch, _e, cb) { out += ch.toString(); cb(); } }));
          return out;
        }
        default: return 'n/a';
      }
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === '57P01' || /Connection terminated/.test((e as Error).message)) this.end ??= `${code ?? ''} ${(e as Error).message}`;
      return errCode(e);
    }
  }

  async close(): Promise<void> { await this.c.end().catch(() => undefined); }
}

class PostgresJs implements Executor {
  end?: string;
  private constructor(private readonly sql: postgres.Sql) {}

  static async open(t: Target, app: string): Promise<PostgresJs> {
    // postgres.js opens a new connection after one closed: the session's end must be seen here, not hidden by that
    const holder: { self?: PostgresJs } = {};
    const sql = postgres({ ...t, max: 1, prepare: true, onnotice: () => undefined, connection: { application_name: app }, idle_timeout: 0,
      onclose: () => { if (holder.self) holder.self.end ??= 'CONNECTION_CLOSED (the connection closed)'; } });
    await sql`SELECT 1`;
    holder.self = new PostgresJs(sql);
    return holder.self;
  }

  ended(): string | undefined { return this.end; }

  private note(e: unknown): string {
    const code = (e as { code?: string }).code;
    if (code === '57P01' || code === 'CONNECTION_CLOSED' || code === 'CONNECTION_ENDED') this.end ??= `${code} ${(e as Error).message}`;
    return errCode(e);
  }

  async run(step: Step): Promise<string> {
    try {
      switch (step.k) {
        case 'simple': {
          const r = (await this.sql.unsafe(step.sql).simple()) as unknown as Array<Record<string, unknown>> & { command?: string };
          // several statements: one result per statement
          const all = (r.length && Array.isArray(r[0]) ? r : [r]) as unknown as Array<Array<Record<string, unknown>> & { command?: string }>;
          return all.map((x) => `${x.command ?? ''}:${rowsText(x.map((row) => Object.values(row)))}`).join('|');
        }
        case 'extended': return rowsText(await this.sql.unsafe(step.sql, step.params, { prepare: step.name !== undefined }).values());
        case 'observe': return rowsText(await this.sql.unsafe(OBSERVE_SQL, [], { prepare: false }).values());
        case 'copyOut': {
          let out = '';
          const stream = await this.sql.unsafe(COPY_OUT(step.rows)).readable();
          for await (const ch of stream) out += ch.toString();
          return out;
        }
        default: return 'n/a';
      }
    } catch (e) {
      return this.note(e);
    }
  }

  async close(): Promise<void> { await this.sql.end({ timeout: 1 }).catch(() => undefined); }
}

/** the raw-protocol client: exact control of every message */
class Raw implements Executor {
  private end?: string;
  private constructor(private readonly c: RawClient, private readonly t: Target) {}

  static async open(t: Target, app: string): Promise<Raw> {
    return new Raw(await RawClient.login(t.port, t.user, t.password, t.database, { application_name: app }), t);
  }

  ended(): string | undefined { return this.end; }

  /** the answer up to ReadyForQuery, as text: completions, rows, SQLSTATEs */
  private async answer(until = 'Z'): Promise<string> {
    const ms: RawMessage[] = [];
    try {
      // a COPY that does not start ends with ReadyForQuery instead of CopyInResponse
      for (;;) {
        const m = await this.c.next(20_000);
        ms.push(m);
        if (m.type === 'E') { const f = parseErrorFields(m.body, 0, m.body.length); if (f.S === 'FATAL') this.end ??= `${f.C} ${f.M}`; }
        if (m.type === until || m.type === 'Z') break;
      }
    } catch (e) {
      this.end ??= `connection: ${(e as Error).message}`;
      throw e;
    }
    const out: string[] = [];
    for (const m of ms) {
      if (m.type === 'E') {
        const f = parseErrorFields(m.body, 0, m.body.length);
        if (f.S === 'FATAL') this.end ??= `${f.C} ${f.M}`;
        out.push(`E${f.C}`);
        continue;
      } else if (m.type === 'C') out.push(m.body.toString('utf8', 0, m.body.length - 1));
      else if (m.type === 'D') out.push(dataRow(m.body));
      else if (m.type === 'd') out.push(m.body.toString('utf8'));
      else if ('s1234IGHntZ'.includes(m.type)) out.push(m.type === 'Z' ? `Z${m.body.toString('latin1')}` : m.type);
    }
    return out.join('|');
  }

  async run(step: Step): Promise<string> {
    const c = this.c;
    try {
      switch (step.k) {
        case 'simple': c.send(serialize.query(step.sql)); return await this.answer();
        case 'observe': c.send(serialize.query(OBSERVE_SQL)); return await this.answer();
        case 'extended':
          c.send([serialize.parse({ name: step.name ?? '', text: step.sql }), serialize.bind({ statement: step.name ?? '', values: step.params }), serialize.execute({}), serialize.sync()]);
          if (step.name) c.send([serialize.close({ type: 'S', name: step.name }), serialize.sync()]);
          return (await this.answer()) + (step.name ? `/${await this.answer()}` : '');
        case 'describeExec': {
          c.send([serialize.parse({ name: '', text: step.sql, types: [25] }), serialize.describe({ type: 'S', name: '' }), serialize.sync()]);
          const first = await this.answer();
          c.send([serialize.bind({ statement: '', values: step.params }), serialize.execute({}), serialize.sync()]);
          return `${first}/${await this.answer()}`;
        }
        case 'copyInExtended': {
          c.send([serialize.parse({ text: 'COPY items (id, v) FROM STDIN' }), serialize.bind({}), serialize.execute({}), serialize.sync()]);
          const start = await this.answer('G');
          if (!start.endsWith('G')) return start;
          c.send([serialize.copyData(Buffer.from(copyRows(step.rows))), serialize.copyDone(), serialize.sync()]);
          return `${start}/${await this.answer()}`;
        }
        case 'copyInSimple': {
          c.send(serialize.query('COPY items (id, v) FROM STDIN'));
          const start = await this.answer('G');
          if (!start.endsWith('G')) return start;
          c.send([serialize.copyData(Buffer.from(copyRows(step.rows))), serialize.copyDone()]);
          return `${start}/${await this.answer()}`;
        }
        case 'copyOut': c.send(serialize.query(COPY_OUT(step.rows))); return await this.answer();
        case 'rowLimit': {
          c.send([serialize.query('BEGIN')]);
          const begin = await this.answer();
          c.send([serialize.parse({ text: `SELECT g FROM generate_series(1, ${step.rows}) g` }), serialize.bind({ portal: 'pl' }),
            serialize.execute({ portal: 'pl', rows: 2 }), serialize.execute({ portal: 'pl', rows: 2 }), serialize.execute({ portal: 'pl' }), serialize.sync()]);
          const rows = await this.answer();
          c.send(serialize.query('COMMIT'));
          return `${begin}/${rows}/${await this.answer()}`;
        }
        case 'cancel': {
          c.send(serialize.query('SELECT pg_sleep(5)'));
          await new Promise((r) => setTimeout(r, 300));
          const k = await RawClient.open(this.t.port);
          k.send(Buffer.from(serialize.cancel(c.pid, c.secret)));
          await k.waitClosed();
          return await this.answer();
        }
      }
    } catch (e) {
      return `error ${(e as Error).message}`;
    }
    return 'n/a';
  }

  async close(): Promise<void> { this.c.close(); }
}

function dataRow(body: Buffer): string {
  const n = body.readInt16BE(0);
  const vals: Array<string | null> = [];
  let p = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(p);
    p += 4;
    vals.push(len < 0 ? null : body.toString('utf8', p, p + len));
    if (len > 0) p += len;
  }
  return JSON.stringify(vals);
}


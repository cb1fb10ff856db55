/**
 * A walsender connection (`replication=database`): creates logical slots and
 * streams pgoutput changes over the CopyBoth sub-protocol.
 *
 * Decoding happens synchronously inside the socket's data handler because the
 * pg parser reuses its receive buffer; the handler hands decoded messages on.
 * Flow control pauses the socket: the walsender then blocks on TCP, so a slow
 * target holds WAL on the source instead of memory in this process.
 */
import type { Client } from 'pg';
import { syncClient } from './connection';
import { decodePgoutput, PgoutputMessage } from './pgoutput';
import { formatLsn, Lsn, msToPgMicros, parseLsn, pgMicrosToMs } from './lsn';
import { qi, ql } from './sql';

export interface CreatedSlot {
  name: string;
  /** the slot's consistent point: streaming starts exactly after the snapshot */
  lsn: Lsn;
  /** exported snapshot name, valid while this connection stays idle and open */
  snapshot?: string;
}

export interface StreamHandlers {
  /** one decoded pgoutput message; `walStart` is the position of the record */
  message(m: PgoutputMessage, walStart: Lsn): void;
  /** a keepalive: the walsender has processed WAL up to `walEnd` */
  keepalive(walEnd: Lsn, replyRequested: boolean, serverTime: number): void;
  /** the stream ended or the connection failed */
  end(err?: Error): void;
}

interface PgConnection {
  on(event: 'copyData', cb: (msg: { chunk: Buffer }) => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void };
}

export class ReplicationConnection {
  private stopping = false;
  private streaming = false;

  private constructor(private readonly client: Client, readonly serverVersion: number) {}

  /** `applicationName` names the walsender in pg_stat_replication (and in synchronous_standby_names) */
  static async connect(url: string, applicationName?: string): Promise<ReplicationConnection> {
    // `replication` is a libpq startup parameter that @types/pg does not list.
    const client = syncClient(url, { replication: 'database', ...(applicationName ? { application_name: applicationName } : {}) });
    client.on('error', () => undefined); // reported through queries, or by start()'s handler
    await client.connect();
    const { rows } = await client.query('SHOW server_version_num');
    return new ReplicationConnection(client, Number(rows[0].server_version_num));
  }

  private get connection(): PgConnection {
    return (this.client as unknown as { connection: PgConnection }).connection;
  }

  /** A temporary slot is dropped by the server when this connection ends (or fails). */
  async createSlot(name: string, exportSnapshot: boolean, o: { temporary?: boolean } = {}): Promise<CreatedSlot> {
    const opts = this.serverVersion >= 150000
      ? `(SNAPSHOT ${exportSnapshot ? "'export'" : "'nothing'"})`
      : (exportSnapshot ? 'EXPORT_SNAPSHOT' : 'NOEXPORT_SNAPSHOT');
    const { rows } = await this.client.query(`CREATE_REPLICATION_SLOT ${qi(name)}${o.temporary ? ' TEMPORARY' : ''} LOGICAL pgoutput ${opts}`);
    const row = rows[0];
    return { name, lsn: parseLsn(row.consistent_point), snapshot: row.snapshot_name ?? undefined };
  }

  /** Stream `slot` from `from` (the server starts at the later of it and the slot's confirmed point). */
  start(slot: string, publication: string, from: Lsn, handlers: StreamHandlers): void {
    this.streaming = true;
    const con = this.connection;
    con.on('copyData', ({ chunk }) => {
      try {
        if (chunk[0] === 0x77 /* w: XLogData */) {
          handlers.message(decodePgoutput(chunk, 25), chunk.readBigUInt64BE(1));
        } else if (chunk[0] === 0x6b /* k: keepalive */) {
          handlers.keepalive(chunk.readBigUInt64BE(1), chunk[17] === 1, pgMicrosToMs(chunk.readBigInt64BE(9)));
        }
      } catch (err) {
        handlers.end(err as Error);
      }
    });
    this.client.on('error', (err) => { if (!this.stopping) handlers.end(err); });
    const sql = `START_REPLICATION SLOT ${qi(slot)} LOGICAL ${formatLsn(from)} (proto_version '1', publication_names ${ql(qi(publication))})`;
    this.client.query(sql).then(
      () => handlers.end(this.stopping ? undefined : new Error('replication stream ended by the server')),
      (err: Error) => handlers.end(this.stopping ? undefined : err),
    );
  }

  /** Standby status update: everything up to `lsn` is written, flushed and applied on the target. */
  sendStatus(lsn: Lsn, replyRequested = false): void {
    if (!this.streaming || this.stopping) return;
    const b = Buffer.alloc(34);
    b[0] = 0x72; // r
    b.writeBigUInt64BE(lsn, 1);
    b.writeBigUInt64BE(lsn, 9);
    b.writeBigUInt64BE(lsn, 17);
    b.writeBigInt64BE(msToPgMicros(Date.now()), 25);
    b[33] = replyRequested ? 1 : 0;
    this.connection.sendCopyFromChunk(b);
  }

  pause(): void { this.connection.stream.pause(); }
  resume(): void { this.connection.stream.resume(); }

  async close(): Promise<void> {
    this.stopping = true;
    await this.client.end().catch(() => undefined);
  }
}

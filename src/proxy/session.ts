/**
 * One client connection: startup (TLS, protocol version, cancel), the
 * authentication the proxy terminates, a backend on the active side, then the
 * relay.
 *
 * The relay forwards every received chunk as it is. A FrameWalker per
 * direction reads message headers in place and calls in here only for the
 * message types the proxy acts on (state tracking, counting, errors). The
 * backend is a field, not a closure, so a switch can replace it between two
 * transactions (see `backend`, `clientAtBoundary`, `state.idle`).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { Side } from '../side';
import { BackendConnectError, BackendConnection, connectBackend } from './backend-connect';
import { ProxyContext, sideIndex } from './context';
import { FrameWalker, inspectTable, MessageSink, WALK_OK, WHOLE } from './framing';
import { CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, MAX_STARTUP_PACKET, MessageCode as M, SSL_REQUEST_CODE } from './protocol/codes';
import { isFatalSeverity, parseSASLInitialResponse, parseStartupParams, ProtocolViolation, sqlstateOf } from './protocol/parser';
import {
  authenticationOk, authenticationSASL, authenticationSASLContinue, authenticationSASLFinal, backendKeyData,
  errorResponse, negotiateProtocolVersion, readyForQuery, TERMINATE,
} from './protocol/serializer';
import { SCRAM_MECHANISM, ScramError, ScramServerExchange } from './scram';
import { MAX_INSPECTED_QUERY, SessionState } from './session-state';
import { backendParams, compatParseMessage, compatQueryMessage, isOld, mayChangePath, sessionVersion, SessionVersion } from './schema-version';
import { ConnectionClosed, StartupReader } from './startup-reader';
import { OidTranslation, OidTranslator } from './type-identity';
import { discardReads, readInto, setReadBuffer } from './user-buffer-reads';
import { exchange } from './exchange';
import { serialize } from 'pg-protocol';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { poolSettings } from '../config';
import { Carried, pooledReplay, sqlCarried } from './carried';
import { runReplay } from './replay';
import { Pool, PooledBackend, PoolTimeout } from './pool/server-pool';
import { notificationChannel } from './pool/listeners';
import { TxRelay } from './pool/tx-relay';

/**
 * Client message types after which the stream is at a switch point: a Query
 * or FunctionCall is answered by its own ReadyForQuery, an extended-protocol
 * batch ends with Sync. After Parse/Bind/Describe/Execute/Flush/Close the
 * client is inside a batch that its Sync has not closed yet.
 */
const SYNC_POINT = new Uint8Array(256);
for (const t of [0, M.Query, M.Sync, M.FunctionCall]) SYNC_POINT[t] = 1;

/** Longest SASL message accepted during authentication (PostgreSQL: PG_MAX_AUTH_TOKEN_LENGTH). */
const MAX_AUTH_MESSAGE = 65535;
/** Bind carries portal and statement names first; a statement name is at most a few hundred bytes. */
const BIND_PREFIX = 4096;
/** Time allowed for startup and authentication (PostgreSQL's authentication_timeout default). */
const AUTH_TIMEOUT_MS = 60_000;
/**
 * The buffer a session's sockets read into starts small (most sessions only
 * ever exchange small messages, and an idle session should cost little) and
 * grows to the larger size after the first read that filled it.
 */
const READ_BUFFER_SMALL = 8 * 1024;
const READ_BUFFER_LARGE = 64 * 1024;

// Client → server: Query, Parse, Close, Sync, FunctionCall, CopyDone/CopyFail always, Execute counted;
// Bind (and Execute's portal) only while a tracked statement may run. Terminate too: after it the
// backend's close is the expected answer, not a lost connection.
const CLIENT_ALWAYS: Array<[M, number]> = [[M.Query, MAX_INSPECTED_QUERY], [M.Parse, WHOLE], [M.Close, WHOLE], [M.Sync, WHOLE],
  [M.FunctionCall, 1], [M.Terminate, 1], [M.CopyDone, 1], [M.CopyFail, 1]];
const CLIENT_BASE = inspectTable([...CLIENT_ALWAYS, [M.Execute, 1]]);
const CLIENT_BIND = inspectTable([...CLIENT_ALWAYS, [M.Bind, BIND_PREFIX], [M.Execute, 256]]);
// Server → client: ReadyForQuery, ErrorResponse, ParseComplete, CloseComplete, CopyInResponse, and the
// completions of statements (counted always, their tags read while needed); DataRow only while needed.
const SERVER_ALWAYS: Array<[M, number]> = [[M.ReadyForQuery, WHOLE], [M.ErrorResponse, WHOLE], [M.ParseComplete, WHOLE], [M.CloseComplete, WHOLE],
  [M.CopyInResponse, 1], [M.CommandComplete, WHOLE], [M.EmptyQueryResponse, 1], [M.PortalSuspended, 1]];
const SERVER_BASE = inspectTable(SERVER_ALWAYS);
const SERVER_ROWS = inspectTable([...SERVER_ALWAYS, [M.DataRow, 4096]]);

/**
 * FATALs a server sends to every session when it goes away (shutdown, crash, postmaster death):
 * kept from the client, which may continue on another backend (lost-backend.ts).
 */
const SIDE_GOING_AWAY = new Set(['57P01', '57P02', '57P03']);

let nextId = 0;

/**
 * Old backends a switch replaced, ended a few at a time after the switch
 * returns: each Terminate wakes a server process that then exits, and on a
 * busy host that costs the proxy its CPU for a while — inside a flip's pause
 * it would make the pause grow with the number of sessions.
 */
const retiring: net.Socket[] = [];
const RETIRE_PER_TICK = 8;
let retireScheduled = false;

function retire(sock: net.Socket): void {
  sock.pause();
  retiring.push(sock);
  if (!retireScheduled) { retireScheduled = true; setImmediate(retireSome); }
}

function retireSome(): void {
  for (const sock of retiring.splice(0, RETIRE_PER_TICK)) if (!sock.destroyed && !sock.writableEnded) { sock.end(TERMINATE); sock.resume(); }
  retireScheduled = retiring.length > 0;
  if (retireScheduled) setImmediate(retireSome);
}

class ClientSink implements MessageSink {
  constructor(private readonly s: Session) {}
  onMessage(type: number, buf: Buffer, start: number, end: number): void {
    const s = this.s;
    const st = s.state!;
    switch (type) {
      case M.Sync: if (st.sent === st.done) s.requestStart = performance.now(); st.onSync(); s.ctx.stats.queries[s.sideIdx]++; return;
      case M.Query: if (st.sent === st.done) s.requestStart = performance.now(); st.onQuery(buf, start, end); s.ctx.stats.queries[s.sideIdx]++; break;
      case M.Bind: if (st.wantBind) st.onBind(buf, start, end); break;
      case M.Parse: st.onParse(buf, start, end); break;
      case M.Close: st.onClose(buf, start, end); break;
      case M.Execute: st.onExecute(buf, start, end); if (!st.wantCompletions) return; break;
      case M.FunctionCall: if (st.sent === st.done) s.requestStart = performance.now(); st.onFunctionCall(); s.ctx.stats.queries[s.sideIdx]++; return;
      case M.CopyDone: case M.CopyFail: st.onCopyEnd(); return;
      case M.Terminate: s.clientTerminated = true; return;
    }
    s.retable();
  }
}

class ServerSink implements MessageSink {
  constructor(private readonly s: Session) {}
  onMessage(type: number, buf: Buffer, start: number, end: number): void {
    const st = this.s.state!;
    switch (type) {
      case M.ReadyForQuery:
        st.onReadyForQuery(buf[start]);
        if (st.done === st.sent) {
          this.s.ctx.durations[this.s.sideIdx].observe((performance.now() - this.s.requestStart) / 1000);
          if (this.s.idleWaiter !== null && st.txStatus === 'I') this.s.wakeIdle();
          if (this.s.onSwitchPoint !== null && st.txStatus === 'I') this.s.checkSwitchPoint();
        }
        break;
      case M.ParseComplete: st.onParseComplete(); return;
      case M.CloseComplete: st.onCloseComplete(); return;
      case M.CommandComplete: { const w = st.wantCompletions; st.onCompletion(buf, start, end); if (!w) return; break; }
      case M.EmptyQueryResponse: { const w = st.wantCompletions; st.onCompletion(undefined, start, end); if (!w) return; break; }
      case M.PortalSuspended: { const w = st.wantCompletions; st.onCompletion(undefined, start, end, true); if (!w) return; break; }
      case M.DataRow: if (st.wantRows) st.onDataRow(buf, start, end); return;
      case M.CopyInResponse: st.onCopyIn(); return;
      case M.ErrorResponse: st.onError(this.s.onServerError(buf, start, end)); break;
    }
    this.s.retable();
  }
}

/** a ParameterStatus value the server reported at connection start */
export function reportedParameter(conn: BackendConnection, name: string): string | undefined {
  for (const m of conn.parameterStatus) {
    const z = m.indexOf(0, 5);
    if (z > 0 && m.toString('utf8', 5, z) === name) return m.toString('utf8', z + 1, m.length - 1);
  }
  return undefined;
}

export interface SessionInfo {
  id: string;
  user: string;
  database: string;
  applicationName: string;
  side: Side;
  backendPid: number;
  clientAddress: string;
  startedAt: string;
  txStatus: string;
  idle: boolean;
  settings: Record<string, string>;
  prepared: string[];
  listens: string[];
  pinned: string[];
  /** session: a backend of its own; transaction: leased per transaction (backendPid 0 between them) */
  poolMode: 'session' | 'transaction';
}

/** A transaction-mode session's link to its pool: the relay and the connection leased now, if any. */
interface PoolLink {
  size: number;
  relay: TxRelay;
  lease: PooledBackend | null;
  leasing: boolean;
  /** client bytes read while a lease is being taken */
  pending: Buffer[];
  /** the pool last leased from, for its side and the previous schema version served then */
  poolCache?: { side: Side; compat: unknown; pool: Pool };
  // LISTEN through the shared listening connection of `listenSide` (pool/listeners.ts)
  subscribed: Set<string>;
  listenSide: Side;
  /** subscriptions the listening connection has not confirmed yet: the lease, which LISTENs too, is kept meanwhile */
  subscribing: number;
  /** channels subscribed during the current lease: what the lease hears of them is the client's */
  leaseListens: Set<string>;
  listenRunsAtLease: number;
  /** notifications delivered from the lease: their copies from the listening connection are dropped */
  viaLease: Buffer[];
  /** notifications taken from the listening connection while the lease still hears them: their lease copies are dropped */
  viaShared: Buffer[];
  /** notifications waiting for the client to be between transactions, as PostgreSQL delivers them */
  queued: Buffer[];
  /** the listening connection confirmed the lease's LISTENs: a marker notification on the lease comes next (see fenceLease) */
  needFence: boolean;
  fence: { token: string; timer: NodeJS.Timeout } | null;
  fencedThisLease: boolean;
}

/** the channel of the marker that tells a lease has delivered what was notified before the listening connection LISTENed */
const FENCE_CHANNEL = 'pgflip_listen_fence';
/** a marker that does not come (its query failed) keeps the lease no longer than this */
const FENCE_TIMEOUT_MS = 2000;

/** notifications remembered from a lease for matching their shared copies */
const VIA_LEASE_MAX = 256;

export class Session {
  readonly id = `s${++nextId}`;
  readonly log: Logger;
  readonly startedAt = new Date();
  client: net.Socket;
  /** current backend; replaced by a switch */
  backend: net.Socket | undefined;
  backendConn: BackendConnection | undefined;
  side: Side = 'blue';
  /** the schema version the session started under (schema-version.ts) */
  schemaVersion: SessionVersion = {};
  sideIdx: 0 | 1 = 0;
  /** the side the session started on: the OIDs its client knows are that side's */
  oidHome: Side = 'blue';
  /** set while the session runs on a side whose user-defined OIDs differ from its home's */
  translation: OidTranslation | null = null;
  private toServer: OidTranslator | null = null;
  private toClient: OidTranslator | null = null;
  state: SessionState | undefined;
  user = '';
  database = '';
  /** resolves a whenIdle() caller at the next idle ReadyForQuery */
  idleWaiter: (() => void) | null = null;
  /**
   * startup: authenticating or waiting for admission; attaching: a backend is
   * being opened on the side chosen; attached: relaying.
   */
  phase: 'startup' | 'attaching' | 'attached' = 'startup';
  /** called synchronously at the next switch point (see atSwitchPoint) */
  onSwitchPoint: (() => void) | null = null;
  /** the backend ended (e.g. terminated by fencing) while the session was held: it needs a new one before release */
  backendGone = false;
  /** the backend was lost outside a hold: the session waits in lost-backend.ts for a new one */
  orphaned = false;
  /** the chunk the server walker is in (a FATAL found in it can be cut off before the client sees it) */
  private walking: Buffer | null = null;
  /** offset in `walking` of a FATAL of a server going away, -1 when none */
  private fatalAt = -1;
  /** that FATAL, for the client if the session cannot continue */
  private withheldFatal: Buffer | null = null;
  /** backend bytes that arrived while held, not yet a whole message */
  private heldBackendBytes: { owner: net.Socket; bytes: Buffer } | null = null;
  private held = false;
  /** when the oldest unanswered request was sent (performance.now()) */
  requestStart = 0;
  private cancelPid = 0;
  private cancelSecret = 0;
  private cw: FrameWalker | undefined;
  private sw: FrameWalker | undefined;
  /**
   * What the client and backend sockets read into when they could be switched
   * to reading into a buffer of the relay (user-buffer-reads.ts); null while
   * neither is. Both share it: each read is relayed before the next one.
   */
  private readBuf: Buffer | null = null;
  private clientReadsInto = false;
  private backendReadsInto = false;
  private clientPaused = false;
  private backendPaused = false;
  private serverSentFatal = false;
  /** the client sent Terminate: the backend closing is then no news for it */
  clientTerminated = false;
  private closed = false;
  private admitted = false;
  /** transaction pooling; null in session mode */
  private pooled: PoolLink | null = null;

  constructor(readonly ctx: ProxyContext, socket: net.Socket) {
    this.client = socket;
    this.log = ctx.log.child({ session: this.id });
    socket.setNoDelay(true);
    socket.on('error', this.onSocketError);
  }

  /** Serve the connection until it ends. Never throws. */
  async run(): Promise<void> {
    const timer = setTimeout(() => this.fatal('08P01', 'canceling authentication due to timeout'), AUTH_TIMEOUT_MS);
    try {
      await this.startup();
    } catch (e) {
      if (e instanceof ConnectionClosed) this.close();
      else if (e instanceof ProtocolViolation) this.fatal(e.code, e.message);
      else if (e instanceof PoolTimeout) this.fatal('53300', `pgflip: ${e.message}`);
      else if (e instanceof BackendConnectError) {
        this.log.warn({ side: this.side, code: e.code, err: e.message }, 'backend connection failed');
        if (e.serverError) this.endClient(e.serverError);
        else this.fatal(e.code, `pgflip: ${e.message}`);
      } else {
        this.log.error({ err: (e as Error).message }, 'session startup failed');
        this.fatal('XX000', `pgflip: internal error: ${(e as Error).message}`);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- startup -----------------------------------------------------------

  private async startup(): Promise<void> {
    let reader = new StartupReader(this.client);
    let tlsDone = false;
    let gssDone = false;
    for (;;) {
      await reader.need(4);
      const len = reader.peekInt32(0);
      if (len < 8 || len > MAX_STARTUP_PACKET) {
        // PostgreSQL logs this and closes without a word (COMMERROR): node-postgres's end() before its
        // StartupMessage sends a Terminate here, and an ErrorResponse would reach an application without a handler
        this.log.info({ length: len }, 'invalid length of startup packet; connection closed');
        this.close();
        throw new ConnectionClosed();
      }
      await reader.need(len);
      const pkt = reader.take(len);
      const code = pkt.readInt32BE(4);
      if (code === SSL_REQUEST_CODE && len === 8 && !tlsDone) {
        if (reader.buffered > 0) throw new ProtocolViolation('received unencrypted data after SSL request');
        tlsDone = true;
        if (!this.ctx.tlsContext) { this.client.write('N'); continue; }
        reader.detach();
        this.client.write('S');
        this.client = await this.upgradeTls(this.client);
        reader = new StartupReader(this.client);
        continue;
      }
      if (code === GSSENC_REQUEST_CODE && len === 8 && !gssDone) {
        gssDone = true;
        this.client.write('N');
        continue;
      }
      if (code === CANCEL_REQUEST_CODE && len === 16) {
        reader.detach();
        await this.forwardCancel(pkt.readInt32BE(8), pkt.readInt32BE(12));
        this.close();
        throw new ConnectionClosed();
      }
      const major = code >>> 16;
      const minor = code & 0xffff;
      if (major !== 3) {
        throw new ProtocolViolation(`unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`, '0A000');
      }
      const params = parseStartupParams(pkt, 8, len);
      await this.authenticateAndAttach(params, minor, reader);
      return;
    }
  }

  private upgradeTls(raw: net.Socket): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const ts = new tls.TLSSocket(raw, { isServer: true, secureContext: this.ctx.tlsContext });
      ts.on('error', this.onSocketError);
      ts.once('secure', () => { ts.setNoDelay(true); resolve(ts); });
      ts.once('close', () => reject(new ConnectionClosed()));
    });
  }

  private async forwardCancel(pid: number, secret: number): Promise<void> {
    const how = await this.ctx.cancel.forward(pid, secret);
    this.log.debug({ pid, how }, how === 'unknown' ? 'cancel request with an unknown key ignored' : 'cancel request forwarded');
  }

  private async authenticateAndAttach(params: Map<string, string>, minor: number, reader: StartupReader): Promise<void> {
    const user = params.get('user');
    if (!user) throw new ProtocolViolation('no PostgreSQL user name specified in startup packet', '28000');
    const replication = params.get('replication');
    if (replication !== undefined && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
      throw new ProtocolViolation('pgflip does not relay replication connections; connect to the database directly', '0A000');
    }
    this.user = user;
    this.database = params.get('database') || user;
    if (!this.ctx.admit()) throw new ProtocolViolation('sorry, too many clients already', '53300');
    this.admitted = true;
    this.ctx.sessionStarted(this);
    // a newer 3.x minor or _pq_ options: answer as PostgreSQL does, then speak 3.0
    const pq = [...params.keys()].filter((k) => k.startsWith('_pq_.'));
    if (minor > 0 || pq.length) this.client.write(negotiateProtocolVersion(0, pq));

    if (this.ctx.cfg.proxy.auth === 'scram') await this.scram(reader, user);

    this.state = new SessionState(params);
    // during a flip new sessions wait here, then start on the side that won
    const admission = this.ctx.admission();
    if (admission) await admission;
    if (this.closed || this.client.destroyed) { this.close(); return; }
    this.schemaVersion = sessionVersion(params, this.ctx.compat());
    this.phase = 'attaching';
    const pool = poolSettings(this.ctx.cfg.proxy, this.database, user);
    let conn: BackendConnection;
    if (pool.mode === 'transaction') {
      const st = this.state;
      this.side = this.ctx.activeSide();
      this.pooled = {
        size: pool.size, lease: null, leasing: false, pending: [],
        relay: new TxRelay({
          maxPrepared: this.ctx.cfg.proxy.maxPreparedStatements, unnamed: () => st.carried.unnamed, txStatus: () => st.txStatus,
          notification: (msg) => this.leaseNotification(msg),
          beforeIdle: () => this.takeNotifications(),
        }, this),
        subscribed: new Set(), listenSide: this.side, subscribing: 0, leaseListens: new Set(), listenRunsAtLease: 0, viaLease: [], viaShared: [], queued: [],
        needFence: false, fence: null, fencedThisLease: false,
      };
      st.onStatementsDropped = () => this.pooled?.relay.statementsDropped();
      st.onListens = () => this.listensChanged();
      this.sideIdx = sideIndex(this.side);
      this.oidHome = this.side;
      conn = (await this.leaseBackend()).conn;
    } else conn = await this.connectActive(params);
    if (this.closed || this.client.destroyed) { this.dropBackend(); conn.socket.destroy(); this.close(); return; }
    const target = conn.target;
    const key = await this.ctx.cancel.issue({ host: target.host, port: target.port, pid: conn.pid, secret: conn.secret });
    if (this.closed || this.client.destroyed) { this.ctx.cancel.release(key.pid, key.secret); this.dropBackend(); conn.socket.destroy(); this.close(); return; }
    this.cancelPid = key.pid;
    this.cancelSecret = key.secret;
    this.client.write(Buffer.concat([authenticationOk(), ...conn.parameterStatus, backendKeyData(key.pid, key.secret), readyForQuery('I')]));
    this.log.debug({ user, database: this.database, side: this.side, backendPid: conn.pid }, 'session started');
    this.attach(conn, reader.detach());
  }

  /**
   * A backend on the active side. While that side is down the client waits, as a session that
   * lost its backend does (lost-backend.ts): a flip or the side's return, up to
   * proxy.lostBackendWaitMs, then the connection error.
   */
  private async connectActive(params: Map<string, string>): Promise<BackendConnection> {
    const deadline = Date.now() + this.ctx.cfg.proxy.lostBackendWaitMs;
    for (let waited = false; ; waited = true) {
      this.side = this.ctx.activeSide();
      this.sideIdx = sideIndex(this.side);
      this.oidHome = this.side;
      try {
        const conn = await connectBackend(this.ctx.targets[this.side], backendParams(params, this.schemaVersion, this.ctx.compat(), this.side), this.database, this.ctx.cfg.proxy.connectTimeoutMs);
        if (waited) this.log.info({ side: this.side }, 'the active side takes connections again');
        return conn;
      } catch (e) {
        if (!(e instanceof BackendConnectError) || !e.sideDown || Date.now() >= deadline || this.closed || this.client.destroyed) throw e;
        if (!waited) this.log.warn({ side: this.side, err: e.message }, 'the active side is down: the new session waits for a flip or its return');
        await this.ctx.nextBackendChange(deadline - Date.now());
      }
    }
  }

  /** SCRAM-SHA-256 exchange; throws ProtocolViolation with 28P01 on a wrong password. */
  private async scram(reader: StartupReader, user: string): Promise<void> {
    const failed = new ProtocolViolation(`password authentication failed for user "${user}"`, '28P01');
    const exchange = new ScramServerExchange(this.ctx.scramSecret(user), this.ctx.mockSalt(user));
    this.client.write(authenticationSASL([SCRAM_MECHANISM]));
    const first = await this.readAuthMessage(reader);
    const init = parseSASLInitialResponse(first);
    if (init.mechanism !== SCRAM_MECHANISM) throw new ProtocolViolation('client selected an invalid SASL authentication mechanism', '28000');
    try {
      this.client.write(authenticationSASLContinue(exchange.first(init.data)));
      const final = (await this.readAuthMessage(reader)).toString('utf8');
      const serverFinal = exchange.final(final);
      if (serverFinal === undefined) {
        this.log.info({ user }, 'password authentication failed');
        throw failed;
      }
      this.client.write(authenticationSASLFinal(serverFinal));
    } catch (e) {
      if (e instanceof ScramError) { this.log.info({ user, reason: e.message }, 'SCRAM authentication failed'); throw failed; }
      throw e;
    }
  }

  private async readAuthMessage(reader: StartupReader): Promise<Buffer> {
    await reader.need(5);
    const type = reader.peekByte(0);
    const len = reader.peekInt32(1);
    if (type !== M.Password) throw new ProtocolViolation(`expected SASL response, got message type ${type}`);
    if (len < 4 || len > MAX_AUTH_MESSAGE) throw new ProtocolViolation('invalid SASL response length');
    await reader.need(1 + len);
    return Buffer.from(reader.take(1 + len).subarray(5));
  }

  // ---- relay ---------------------------------------------------------------

  /** Put a ready backend under this session and start relaying. */
  private attach(conn: BackendConnection, clientPending: Buffer): void {
    this.backendConn = conn;
    this.backend = conn.socket;
    this.cw = new FrameWalker(CLIENT_BASE, new ClientSink(this), this.ctx.cfg.proxy.maxMessageBytes);
    this.sw = new FrameWalker(SERVER_BASE, new ServerSink(this), 0x7fffffff);
    const b = conn.socket;
    let backendHeld: Buffer | undefined;
    if (this.pooled) this.pooled.lease!.owner = this.backendOwner;
    else {
      backendHeld = this.readBackend(b);
      b.on('drain', this.onBackendDrain);
      b.on('error', this.onBackendError);
      b.on('close', this.onBackendClose);
    }
    const clientHeld = this.readClient();
    this.client.on('drain', this.onClientDrain);
    this.client.on('close', this.onClientClose);
    if (conn.leftover.length) this.onBackendData(conn.leftover);
    if (backendHeld?.length) this.onBackendData(backendHeld);
    if (clientPending.length) this.onClientData(clientPending);
    if (clientHeld?.length) this.onClientData(clientHeld);
    this.phase = 'attached';
    // a flip in progress holds the new session at once (it is at a switch point)
    this.ctx.sessionAttached(this);
    b.resume();
    if (!this.held) this.client.resume();
    this.maybeGiveBack();
  }

  // ---- transaction pooling (pool/) ------------------------------------------
  //
  // A transaction-mode session has a backend only from its transaction's first
  // message to ReadyForQuery `I`. In between it holds none: a flip finds it at
  // a switch point at once and moves it by changing the side it leases from.

  get isPooled(): boolean { return this.pooled !== null; }

  /** a transaction-mode session with a backend right now (in a transaction, or pinned) */
  get isPooledLeased(): boolean { return this.pooled?.lease != null || this.pooled?.leasing === true; }

  /** the session's pool on its side (its startup parameters there: a schema version may change them) */
  private poolNow(): Pool {
    const pl = this.pooled!;
    const compat = this.ctx.compat();
    const c = pl.poolCache;
    if (c && c.side === this.side && c.compat === compat) return c.pool;
    const params = backendParams(this.state!.startupParams, this.schemaVersion, compat, this.side);
    const pool = this.ctx.pools.pool(this.side, this.database, params, pl.size);
    pl.poolCache = { side: this.side, compat, pool };
    return pool;
  }

  /** An idle connection of the session's pool that needs nothing of the client's state first, at once; else null. */
  private leaseNow(): PooledBackend | null {
    const b = this.ctx.pools.leaseNow(this.poolNow());
    if (!b) return null;
    if (pooledReplay(b.carried, this.state!.carried)) { this.ctx.pools.giveBack(b); return null; }
    this.leased(b);
    return b;
  }

  /** A connection of the session's pool on its side, given the client's settings and SQL-prepared statements. */
  private async leaseBackend(): Promise<PooledBackend> {
    const st = this.state!;
    const b = await this.ctx.pools.lease(this.poolNow());
    const plan = pooledReplay(b.carried, st.carried);
    if (plan) {
      b.replaying = true;
      try {
        await runReplay(b.conn, plan, this.ctx.cfg.proxy.connectTimeoutMs);
      } catch (e) {
        this.ctx.pools.discard(b);
        throw e;
      } finally { b.replaying = false; }
    }
    this.leased(b);
    return b;
  }

  private leased(b: PooledBackend): void {
    const pl = this.pooled!;
    pl.lease = b;
    pl.listenRunsAtLease = this.state!.listenRuns;
    pl.relay.attach(b);
    if (this.cancelPid) {
      const t = b.conn.target;
      this.ctx.cancel.repoint(this.cancelPid, this.cancelSecret, { host: t.host, port: t.port, pid: b.conn.pid, secret: b.conn.secret });
    }
  }

  /** client bytes of a transaction-mode session */
  private pooledClientData(chunk: Buffer): void {
    const pl = this.pooled!;
    if (pl.lease !== null) { this.relayToServer(chunk); return; }
    if (!pl.leasing) {
      const answer = pl.relay.answerWithoutServer(chunk);
      if (answer) { this.sendToClient(answer); return; }
      // the common case: an idle connection that carries what the client needs
      const b = this.held ? null : this.leaseNow();
      if (b) { this.wireBackend(b); this.relayToServer(chunk); return; }
    }
    pl.pending.push(chunk);
    this.client.pause();
    this.clientPaused = true;
    if (pl.leasing) return;
    pl.leasing = true;
    this.leaseBackend().then((b) => {
      pl.leasing = false;
      if (this.closed) { this.dropBackend(); return; }
      this.wireBackend(b);
      this.clientPaused = false;
      for (const c of pl.pending.splice(0)) this.relayToServer(c);
      if (!this.clientPaused && !this.held && !this.closed) this.client.resume();
    }, (e: Error) => {
      pl.leasing = false;
      if (e instanceof PoolTimeout) this.fatal('53300', `pgflip: ${e.message}`);
      else if (e instanceof BackendConnectError && e.serverError) this.endClient(e.serverError);
      else this.fatal(e instanceof BackendConnectError ? e.code : '08006', `pgflip: no server connection for this transaction: ${e.message}`);
    });
  }

  private relayToServer(chunk: Buffer): void {
    const out = this.pooled!.relay.fromClient(chunk);
    if (out.client) this.sendToClient(out.client);
    if (out.server && !this.backend!.write(out.server)) { this.client.pause(); this.clientPaused = true; }
    if (out.client) this.maybeGiveBack();
  }

  /** pgflip's own answers: the tracker reads them as the server's */
  private sendToClient(bytes: Buffer): void {
    this.sw!.walk(bytes);
    this.ctx.stats.bytesOut += bytes.length;
    this.client.write(bytes);
  }

  /** a leased connection's socket events, while it is this session's */
  private readonly backendOwner = { data: (b: Buffer) => this.onBackendData(b), drain: () => this.onBackendDrain(), closed: () => this.onBackendClose() };

  private wireBackend(b: PooledBackend): void {
    this.backendConn = b.conn;
    this.backend = b.conn.socket;
    b.owner = this.backendOwner;
    if (b.conn.socket.isPaused()) b.conn.socket.resume();
  }

  private unwireBackend(lease: PooledBackend): void {
    lease.owner = null;
    if (!this.backend) return;
    this.backend = undefined;
    this.backendConn = undefined;
    this.backendPaused = false;
  }

  /**
   * At ReadyForQuery `I` with nothing in flight the connection goes back to its pool, carrying
   * the client's settings (notifications queued meanwhile go to the client first); a session
   * holding what cannot move (a temporary table, a session lock, a WITH HOLD cursor) keeps it
   * until that ends, and one whose LISTEN the listening connection has not confirmed yet keeps
   * it until then.
   */
  private maybeGiveBack(): void {
    const pl = this.pooled;
    if (!pl || !pl.lease || pl.leasing || this.closed) return;
    const st = this.state!;
    if (!st.idle || !pl.relay.quiet || !this.cw!.atBoundary || !this.sw!.atBoundary) return;
    this.flushNotifications();
    if (pl.subscribing || pl.fence) return;
    if (pl.needFence) { this.fenceLease(); return; }
    if (st.pinnedReasons().length) return;
    const b = pl.lease;
    pl.lease = null;
    pl.relay.detach();
    b.carried = this.carriedForPool();
    this.unwireBackend(b);
    if (this.cancelPid) this.ctx.cancel.repoint(this.cancelPid, this.cancelSecret, { host: '', port: 0, pid: 0, secret: 0 });
    this.ctx.pools.giveBack(b);
  }

  /** The session's backend goes: a leased one back to its pool when it is clean, else closed. */
  private dropBackend(): void {
    const pl = this.pooled;
    if (!pl) { this.backend?.destroy(); return; }
    const b = pl.lease;
    if (!b) return;
    pl.lease = null;
    pl.relay.detach();
    this.unwireBackend(b);
    const st = this.state!;
    if (st.idle && pl.relay.quiet && !st.pinnedReasons().length) { b.carried = this.carriedForPool(); this.ctx.pools.giveBack(b); } else this.ctx.pools.discard(b);
  }

  /** What a connection given back carries: the client's settings and SQL-prepared statements, and the LISTENs it ran there (undone at the next lease). */
  private carriedForPool(): Carried {
    const pl = this.pooled!;
    const st = this.state!;
    pl.leaseListens.clear();
    pl.viaShared = [];
    const c = sqlCarried(st.carried);
    const fenced = pl.fencedThisLease;
    pl.fencedThisLease = false;
    pl.needFence = false;
    if (st.listenRuns === pl.listenRunsAtLease && !fenced) return c;
    const listens = new Set(st.carried.listens);
    if (fenced) listens.add(FENCE_CHANNEL);
    return { ...c, listens };
  }

  /**
   * The listening connection LISTENs the lease's new channels now; what was notified before it
   * did may still be on its way on the lease. A notification of pgflip's own, committed now on
   * the lease, comes after all of those (a backend delivers in commit order): once it arrives
   * the lease has delivered everything only it heard, and can go back.
   */
  private fenceLease(): void {
    const pl = this.pooled!;
    pl.needFence = false;
    pl.fencedThisLease = true;
    const token = randomBytes(8).toString('hex');
    const timer = setTimeout(() => {
      if (pl.fence?.token !== token) return;
      this.log.warn('LISTEN: the lease did not deliver its marker notification in time; giving it back');
      pl.fence = null;
      this.maybeGiveBack();
    }, FENCE_TIMEOUT_MS);
    pl.fence = { token, timer };
    const ch = escapeIdentifier(FENCE_CHANNEL);
    this.backend!.write(pl.relay.ownQuery(`LISTEN ${ch}; NOTIFY ${ch}, ${escapeLiteral(token)}`));
  }

  // ---- LISTEN in transaction mode (pool/listeners.ts) ----

  private readonly subscriber = { notify: (msg: Buffer, channel: string) => this.sharedNotification(msg, channel) };

  /** LISTEN or UNLISTEN committed: the shared listening connection follows */
  private listensChanged(): void {
    const pl = this.pooled;
    if (!pl || this.closed) return;
    const want = this.state!.carried.listens;
    for (const ch of [...pl.subscribed]) {
      if (want.has(ch)) continue;
      pl.subscribed.delete(ch);
      this.ctx.listeners.unsubscribe(this.subscriber, pl.listenSide, this.database, ch);
    }
    for (const ch of want) {
      if (pl.subscribed.has(ch)) continue;
      pl.subscribed.add(ch);
      if (pl.lease) pl.leaseListens.add(ch);
      pl.subscribing++;
      this.ctx.listeners.subscribe(this.subscriber, pl.listenSide, this.database, ch)
        .catch((err: Error) => this.log.warn({ channel: ch, err: err.message }, 'shared LISTEN failed: notifications on this channel do not reach the session'))
        .finally(() => {
          pl.subscribing--;
          if (pl.subscribing === 0 && pl.lease && pl.leaseListens.size) pl.needFence = true;
          this.maybeGiveBack();
        });
    }
  }

  /**
   * A NotificationResponse on the leased connection: the client's when it LISTENed there during
   * this lease. The server sends it between transactions, so what is queued goes first (commit order).
   */
  private leaseNotification(msg: Buffer): Buffer | null {
    const pl = this.pooled!;
    const ch = notificationChannel(msg);
    if (ch === FENCE_CHANNEL) {
      const f = pl.fence;
      if (f && msg.includes(f.token)) { clearTimeout(f.timer); pl.fence = null; }
      return null;
    }
    if (!pl.leaseListens.has(ch) && !this.state!.listenPending(ch)) return null;
    // both connections hear notifications in commit order: a match drops it and those only the other heard before it
    const i = pl.viaShared.findIndex((m) => m.equals(msg));
    if (i >= 0) {
      pl.viaShared.splice(0, i + 1);
      // its shared copy, if still queued, goes now with what was queued before it
      const j = pl.queued.findIndex((m) => m.equals(msg));
      return j < 0 ? null : this.takeNotifications(j + 1);
    }
    pl.viaLease.push(Buffer.from(msg));
    if (pl.viaLease.length > VIA_LEASE_MAX) pl.viaLease.shift();
    const before = this.takeNotifications();
    return before ? Buffer.concat([before, msg]) : msg;
  }

  /** A notification from the shared listening connection: to the client between transactions, unless the lease brought it already. */
  private sharedNotification(msg: Buffer, channel: string): void {
    const pl = this.pooled;
    if (!pl || this.closed) return;
    const i = pl.viaLease.findIndex((m) => m.equals(msg));
    if (i >= 0) { pl.viaLease.splice(0, i + 1); return; }
    if (!this.state!.carried.listens.has(channel)) return;
    pl.queued.push(msg);
    if (pl.lease && pl.leaseListens.has(channel)) { pl.viaShared.push(msg); if (pl.viaShared.length > VIA_LEASE_MAX) pl.viaShared.shift(); }
    // between transactions at once; a pinned session idle on its lease too (maybeGiveBack flushes when idle)
    if (!pl.lease && !pl.leasing) this.flushNotifications(); else this.maybeGiveBack();
  }

  private flushNotifications(): void {
    if (!this.sw!.atBoundary) return;
    const out = this.takeNotifications();
    if (out) this.sendToClient(out);
  }

  /** the notifications queued for the client, in order (UNLISTEN since: PostgreSQL does not deliver what was queued for the channel either) */
  private takeNotifications(upTo?: number): Buffer | null {
    const pl = this.pooled!;
    if (!pl.queued.length) return null;
    const listens = this.state!.carried.listens;
    const out = pl.queued.splice(0, upTo ?? pl.queued.length).filter((m) => listens.has(notificationChannel(m)));
    return out.length === 0 ? null : out.length === 1 ? out[0] : Buffer.concat(out);
  }

  private unsubscribeAll(): void {
    const pl = this.pooled!;
    for (const ch of pl.subscribed) this.ctx.listeners.unsubscribe(this.subscriber, pl.listenSide, this.database, ch);
    pl.subscribed.clear();
  }

  /** A flip moved this transaction-mode session (it holds no backend): its next lease is on `side`. */
  moveToSide(side: Side, translation: OidTranslation | null): void {
    const pl = this.pooled;
    if (pl?.lease) throw new Error(`session ${this.id} holds a backend`);
    if (pl && pl.listenSide !== side) {
      // the target's listening connection LISTENs these already (the pause prewarmed it)
      this.unsubscribeAll();
      pl.listenSide = side;
      this.listensChanged();
    }
    this.side = side;
    this.sideIdx = sideIndex(side);
    this.translation = translation;
    this.toServer = translation ? new OidTranslator(translation.toServer, false) : null;
    this.toClient = translation ? new OidTranslator(translation.toClient, true) : null;
  }

  /** Pick the inspect tables the tracker currently needs. */
  retable(): void {
    const st = this.state!;
    this.cw!.inspect = st.wantBind ? CLIENT_BIND : CLIENT_BASE;
    this.sw!.inspect = st.wantRows ? SERVER_ROWS : SERVER_BASE;
  }

  /** true when the client stream ends at a message boundary (a hold may start here) */
  get clientAtBoundary(): boolean { return this.cw?.atBoundary ?? true; }

  // ---- hooks for the live switch ---------------------------------------------
  //
  // A switch waits until a session is idle (whenIdle), holds it (hold: the
  // client's bytes stay in the kernel socket buffer, nothing is read), gives it
  // a new authenticated backend with its state replayed (swapBackend), and
  // releases it; the held bytes then flow to the new backend.

  /** Resolves when the session is idle: ReadyForQuery 'I' and nothing in flight. */
  whenIdle(): Promise<void> {
    if (this.state?.idle && this.clientAtBoundary) return Promise.resolve();
    return new Promise((resolve) => {
      const prev = this.idleWaiter;
      this.idleWaiter = () => { prev?.(); resolve(); };
    });
  }

  wakeIdle(): void {
    const w = this.idleWaiter;
    this.idleWaiter = null;
    w?.();
  }

  /**
   * An authenticated backend on `side` for this session (a flip's target, or
   * the replacement of a backend that was ended): same startup parameters and
   * database. A session that started read-write keeps that default (as a
   * startup parameter, so RESET returns to it): a side the controller has
   * fenced so far starts its sessions read-only, which this session did not.
   * A read-only default is carried only when the client asked for it: one
   * that came from the side (a session that logged in while the side was
   * fenced) is not, so the next backend takes the side's own default again
   * instead of keeping the fence's for good.
   */
  openBackend(side: Side): Promise<BackendConnection> {
    const params = new Map(this.state!.startupParams);
    const readOnly = this.backendConn && reportedParameter(this.backendConn, 'default_transaction_read_only');
    if (readOnly === 'off' && !params.has('default_transaction_read_only')) params.set('default_transaction_read_only', readOnly);
    return connectBackend(this.ctx.targets[side], backendParams(params, this.schemaVersion, this.ctx.compat(), side), this.database, this.ctx.cfg.proxy.connectTimeoutMs);
  }

  /**
   * On a backend serving the previous schema version, the whole Query and Parse messages of a
   * chunk that change search_path (SET search_path, SET SCHEMA, set_config): the compatibility
   * schema stays in front of the client's list. A message the chunk ends inside of goes as it is.
   */
  private compatChunk(chunk: Buffer): Buffer {
    const schema = this.compatSchemaOn(this.side);
    if (schema === undefined) return chunk;
    // the pieces of a new chunk, made only once a message changes: until then the chunk goes as it is
    let parts: Buffer[] | undefined;
    let copied = 0;
    let p = 0;
    while (chunk.length - p >= 5) {
      const end = p + 1 + chunk.readInt32BE(p + 1);
      if (end > chunk.length) break;
      const msg = chunk.subarray(p, end);
      // only the text of a Query or Parse that names search_path or SCHEMA is read as a string
      const out = !mayChangePath(msg) ? msg : msg[0] === M.Query ? compatQueryMessage(msg, schema) : compatParseMessage(msg, schema);
      if (out !== msg) {
        (parts ??= []).push(chunk.subarray(copied, p), out);
        copied = end;
      }
      p = end;
    }
    if (!parts) return chunk;
    parts.push(chunk.subarray(copied));
    return Buffer.concat(parts);
  }

  /** The compatibility schema this session's backends on `side` put first, if any (schema-version.ts). */
  compatSchemaOn(side: Side): string | undefined {
    const c = this.ctx.compat();
    return c && c.side === side && isOld(this.schemaVersion, c) ? c.schema : undefined;
  }

  /** since when the session has been running a statement or inside a transaction (performance.now()), 0 when idle */
  get busySince(): number {
    const st = this.state;
    if (!st) return 0;
    if (st.sent !== st.done) return this.requestStart;
    return st.txStatus === 'I' ? 0 : st.txSince;
  }

  /**
   * A point where the session may change backends: not in a transaction,
   * every request answered, the client's stream at a message boundary after a
   * Query, FunctionCall or Sync (not inside an extended-protocol batch), and
   * the server's stream at a message boundary.
   */
  atSwitchPoint(): boolean {
    return this.phase === 'attached' && !this.closed && this.state!.idle
      && this.cw!.atBoundary && SYNC_POINT[this.cw!.lastType] === 1 && this.sw!.atBoundary;
  }

  /**
   * Calls `fn` synchronously at the next switch point (now, if the session is
   * at one): there, before any further client byte is read, `fn` may hold().
   * The hook stays armed until cleared, so `fn` may decline and wait for the next one.
   */
  armSwitchPoint(fn: () => void): void {
    this.onSwitchPoint = fn;
    this.checkSwitchPoint();
  }

  checkSwitchPoint(): void {
    if (this.onSwitchPoint !== null && this.atSwitchPoint()) this.onSwitchPoint();
  }

  /** Stop reading from the client. */
  hold(): void {
    this.held = true;
    this.client.pause();
  }

  /** Read from the client again (unless backpressure still holds it). */
  release(): void {
    if (!this.held) return;
    this.held = false;
    const rest = this.heldBackendBytes;
    this.heldBackendBytes = null;
    if (rest && this.backend === rest.owner) this.onBackendData(rest.bytes);
    if (!this.clientPaused && !this.closed) this.client.resume();
  }

  get isHeld(): boolean { return this.held; }

  get isClosed(): boolean { return this.closed; }

  /**
   * Put another backend under an idle, held session. The old backend gets a
   * Terminate; the cancel key now points at the new one. The caller has
   * replayed the session state (state.replaySql / replayParseMessages) on `conn`.
   */
  swapBackend(conn: BackendConnection, translation: OidTranslation | null = null): void {
    if (!this.state?.idle || !this.sw?.atBoundary) throw new Error(`session ${this.id} is not idle`);
    this.swapBackendAnyState(conn, translation);
  }

  /** swapBackend without the idle check: for a session whose backend is gone (revive) */
  private swapBackendAnyState(conn: BackendConnection, translation: OidTranslation | null): void {
    if (this.closed) { conn.socket.destroy(); throw new Error(`session ${this.id} has ended`); }

    const old = this.backend!;
    this.backendGone = false;
    this.heldBackendBytes = null;
    old.off('data', this.onBackendData);
    if (this.backendReadsInto) discardReads(old);
    old.off('drain', this.onBackendDrain);
    old.off('error', this.onBackendError);
    old.off('close', this.onBackendClose);
    old.on('error', () => undefined);
    retire(old);
    this.backendConn = conn;
    this.backend = conn.socket;
    this.side = conn.target.side;
    this.sideIdx = sideIndex(this.side);
    this.backendPaused = false;
    this.translation = translation;
    // a translator holds back only a message cut at the end of a read; the client's goes on through the new one
    const clientTail = this.toServer?.takeTail();
    this.toServer = translation ? new OidTranslator(translation.toServer, false) : null;
    this.toClient = translation ? new OidTranslator(translation.toClient, true) : null;
    this.sw = new FrameWalker(SERVER_BASE, new ServerSink(this), 0x7fffffff);
    this.retable();
    if (this.cancelPid) {
      const t = conn.target;
      this.ctx.cancel.repoint(this.cancelPid, this.cancelSecret, { host: t.host, port: t.port, pid: conn.pid, secret: conn.secret });
    }
    if (clientTail?.length) this.onClientData(clientTail);
    const b = conn.socket;
    const held = this.readBackend(b);
    b.on('drain', this.onBackendDrain);
    b.on('error', this.onBackendError);
    b.on('close', this.onBackendClose);
    if (conn.leftover.length) this.onBackendData(conn.leftover);
    if (held?.length) this.onBackendData(held);
    b.resume();
  }

  // ---- reading -------------------------------------------------------------
  //
  // A plain (not TLS) socket reads into the session's buffer; the bytes of one
  // read are relayed before the next read overwrites them. A write that could
  // not hand them to the kernel at once keeps a reference to them, so the
  // sockets then move to a fresh buffer and the old one stays with the write.

  /** Start reading from the client; returns bytes it had already buffered. */
  private readClient(): Buffer | undefined {
    // a pooled session's reads may wait for a lease: they keep buffers of their own
    const held = this.pooled ? undefined : readInto(this.client, this.readBuffer(), this.onClientRead);
    this.clientReadsInto = held !== undefined;
    if (!this.clientReadsInto) this.client.on('data', this.onClientData);
    return held;
  }

  /** Start reading from a (new) backend; returns bytes it had already buffered. */
  private readBackend(b: net.Socket): Buffer | undefined {
    const held = readInto(b, this.readBuffer(), this.onBackendRead);
    this.backendReadsInto = held !== undefined;
    if (!this.backendReadsInto) b.on('data', this.onBackendData);
    return held;
  }

  private readBuffer(): Buffer {
    return (this.readBuf ??= Buffer.allocUnsafe(READ_BUFFER_SMALL));
  }

  /** Both reading sockets move to a new buffer (larger after a read that filled the old one). */
  private renewReadBuffer(filled: boolean): void {
    const size = filled ? READ_BUFFER_LARGE : this.readBuf!.length;
    const buf = Buffer.allocUnsafe(size);
    this.readBuf = buf;
    if (this.clientReadsInto) setReadBuffer(this.client, buf);
    if (this.backendReadsInto) setReadBuffer(this.backend!, buf);
  }

  private readonly onClientRead = (buf: Buffer, n: number): void => {
    this.onClientData(buf.subarray(0, n));
    if (this.backend!.writableLength !== 0 || (n === buf.length && n < READ_BUFFER_LARGE)) this.renewReadBuffer(n === buf.length);
  };

  private readonly onBackendRead = (buf: Buffer, n: number): void => {
    this.onBackendData(buf.subarray(0, n));
    if (this.client.writableLength !== 0 || (n === buf.length && n < READ_BUFFER_LARGE)) this.renewReadBuffer(n === buf.length);
  };

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.toServer !== null) { chunk = this.toServer.feed(chunk); if (chunk.length === 0) return; }
    if (this.ctx.compat() !== null && this.cw!.atBoundary) chunk = this.compatChunk(chunk);
    this.ctx.stats.bytesIn += chunk.length;
    if (this.cw!.walk(chunk) !== WALK_OK) { this.clientProtocolError(); return; }
    if (this.pooled) { this.pooledClientData(chunk); return; }
    if (!this.backend!.write(chunk)) { this.client.pause(); this.clientPaused = true; }
  };

  private readonly onBackendData = (chunk: Buffer): void => {
    if (this.pooled) {
      const out = this.pooled.relay.fromServer(chunk);
      const again = this.pooled.relay.takeForServer();
      if (again) this.backend!.write(again);
      if (out === null) { this.maybeGiveBack(); return; }
      chunk = out;
    }
    if (this.toClient !== null) { chunk = this.toClient.feed(chunk); if (chunk.length === 0) return; }
    if (this.held && (this.heldBackendBytes !== null || this.sw!.atBoundary)) { this.onBackendDataHeld(chunk); return; }
    this.ctx.stats.bytesOut += chunk.length;
    this.walking = chunk;
    this.sw!.walk(chunk);
    this.walking = null;
    if (this.fatalAt >= 0) {
      // the server is going away: what came before its FATAL is the client's, the FATAL waits (lost-backend.ts)
      const cut = this.fatalAt;
      this.fatalAt = -1;
      if (cut > 0) this.client.write(chunk.subarray(0, cut));
      return;
    }
    if (!this.client.write(chunk)) { this.backend!.pause(); this.backendPaused = true; }
    if (this.pooled) this.maybeGiveBack();
  };

  /**
   * While held at a switch point only asynchronous messages can come
   * (NotificationResponse, NoticeResponse, ParameterStatus) — or the FATAL of
   * a backend being terminated, e.g. by the fencing of the side a flip leaves.
   * That one is not the client's business: the session is about to get a new
   * backend, so it is kept from the client and the session marked backendGone.
   */
  private onBackendDataHeld(chunk: Buffer): void {
    const owner = this.backend!;
    let buf = this.heldBackendBytes ? Buffer.concat([this.heldBackendBytes.bytes, chunk]) : chunk;
    let p = 0;
    while (buf.length - p >= 5) {
      const len = buf.readInt32BE(p + 1);
      if (buf.length - p < 1 + len) break;
      const type = buf[p];
      if (type === M.ErrorResponse) {
        this.backendGone = true;
        this.log.debug({ sqlstate: sqlstateOf(buf, p + 5, p + 1 + len) }, 'held session lost its backend; it gets a new one before release');
      } else {
        this.ctx.stats.bytesOut += 1 + len;
        this.client.write(buf.subarray(p, p + 1 + len));
      }
      p += 1 + len;
    }
    buf = buf.subarray(p);
    this.heldBackendBytes = buf.length ? { owner, bytes: Buffer.from(buf) } : null;
  }

  private readonly onBackendDrain = (): void => {
    if (this.clientPaused) { this.clientPaused = false; if (!this.held) this.client.resume(); }
  };

  private readonly onClientDrain = (): void => {
    if (this.backendPaused) { this.backendPaused = false; this.backend?.resume(); }
  };

  /** counts the error and notes a FATAL; returns its SQLSTATE */
  onServerError(buf: Buffer, start: number, end: number): string {
    const code = sqlstateOf(buf, start, end);
    this.ctx.metrics.queryErrors.labels(this.side, code.slice(0, 2) || 'XX').inc();
    if (isFatalSeverity(buf, start)) {
      if (SIDE_GOING_AWAY.has(code) && buf === this.walking && !this.held) {
        this.fatalAt = start - 5;
        this.withheldFatal = Buffer.from(buf.subarray(start - 5, end));
      } else this.serverSentFatal = true;
    }
    return code;
  }

  private clientProtocolError(): void {
    const w = this.cw!;
    const type = String.fromCharCode(w.badType);
    const printable = /[ -~]/.test(type) ? `"${type}"` : `0x${w.badType.toString(16)}`;
    if (w.badLength < 4) this.fatal('08P01', `invalid message length ${w.badLength} for message type ${printable}`);
    else {
      this.fatal('54000', `message of type ${printable} with ${w.badLength} bytes exceeds the limit of ${this.ctx.cfg.proxy.maxMessageBytes} bytes`,
        'the limit is proxy.maxMessageBytes');
    }
  }

  private readonly onClientClose = (): void => {
    if (this.closed) return;
    if (this.pooled) { this.dropBackend(); this.close(); return; }
    const b = this.backend;
    // a clean Terminate when the stream allows it, so the server does not log an unexpected EOF
    if (b && !b.destroyed && this.clientAtBoundary) b.end(TERMINATE);
    else b?.destroy();
    this.close();
  };

  private readonly onBackendClose = (): void => {
    if (this.closed) return;
    if (this.pooled) {
      // the pool has let it go; what the client had in flight on it is lost, as with PostgreSQL
      const pl = this.pooled;
      pl.lease = null;
      pl.relay.detach();
      if (this.serverSentFatal || this.clientTerminated) { this.endClient(); return; }
      this.endLost();
      return;
    }
    if (this.held && this.phase === 'attached' && this.heldBackendBytes === null && this.sw!.atBoundary) {
      // held at a switch point: whoever holds the session gives it a new backend before releasing it
      this.backendGone = true;
      return;
    }
    if (this.serverSentFatal || this.clientTerminated) { this.endClient(); return; }
    // whole messages both ways: the session can go on on another backend once one is there
    if (this.sw!.atBoundary && this.cw!.atBoundary && !this.orphaned) {
      this.hold();
      this.backendGone = true;
      this.orphaned = true;
      this.inBlockWhenLost = this.state!.txStatus !== 'I';
      this.ctx.backendLost(this);
      return;
    }
    this.endLost();
  };

  /** set when the backend was lost: the client was inside a transaction block */
  private inBlockWhenLost = false;

  /**
   * The session cannot continue after losing its backend: the client hears it as from
   * PostgreSQL (the server's own FATAL when it sent one, else 08006) and the session ends.
   */
  endLost(why?: string): void {
    if (this.closed) return;
    this.orphaned = false;
    this.log.warn({ side: this.side, why }, 'backend connection lost');
    const canWrite = this.sw!.atBoundary;
    const last = this.withheldFatal
      ?? errorResponse('FATAL', '08006', `pgflip: the connection to the ${this.side} backend was lost${why ? `: ${why}` : ''}`, 'server closed the connection unexpectedly');
    this.endClient(canWrite ? last : undefined);
  }

  /**
   * A new backend for a session that lost its own with its side (lost-backend.ts). Each request
   * the client had sent and not had answered fails once (08006, with what it means for a COMMIT);
   * a transaction block it was in is gone: the new backend starts in a failed block, so the rest
   * of that transaction fails as PostgreSQL fails it, and its COMMIT answers ROLLBACK.
   */
  async revive(conn: BackendConnection, translation: OidTranslation | null, lostSide: Side): Promise<void> {
    const st = this.state!;
    const pending = st.sent - st.done;
    const inBlock = this.inBlockWhenLost;
    const message = `pgflip: the connection to the ${lostSide} backend was lost while this statement ran; the session continues on ${conn.target.side}`;
    const detail = inBlock
      ? 'The transaction it was part of was not committed: it is rolled back, and its remaining statements fail until ROLLBACK.'
      : 'Had it been committing, whether the commit took place on the lost server is unknown.';
    try {
      // the transaction the client believes open is gone: so is the one on the new backend
      if (inBlock) await exchange(conn.socket, serialize.query(`BEGIN; DO $$BEGIN RAISE EXCEPTION 'transaction lost with the ${lostSide} backend'; END$$`), 1, { timeoutMs: this.ctx.cfg.proxy.connectTimeoutMs, what: 'failed transaction block' });
    } catch (err) {
      conn.socket.destroy();
      this.endLost(`the new backend on ${conn.target.side} failed: ${(err as Error).message}`);
      return;
    }
    if (this.closed) { conn.socket.destroy(); return; }
    this.orphaned = false;
    this.withheldFatal = null;
    this.serverSentFatal = false;
    st.onCopyEnd();
    this.swapBackendAnyState(conn, translation);
    const out: Buffer[] = [];
    for (let i = 0; i < pending; i++) out.push(errorResponse('ERROR', '08006', message, detail), readyForQuery(inBlock ? 'E' : 'I'));
    if (!pending && inBlock) out.push(errorResponse('WARNING', '01000', `pgflip: the transaction of this session was lost with the ${lostSide} backend; it is rolled back, and its remaining statements fail until ROLLBACK`));
    if (out.length) {
      const bytes = Buffer.concat(out);
      this.sw!.walk(bytes);
      this.client.write(bytes);
    }
    this.release();
  }

  private readonly onBackendError = (e: Error): void => {
    this.log.debug({ err: e.message }, 'backend socket error');
  };

  private readonly onSocketError = (e: Error): void => {
    this.log.debug({ err: e.message }, 'client socket error');
    if (this.closed) return;
    this.dropBackend();
    this.close();
  };

  // ---- ending ------------------------------------------------------------

  /** Send a FATAL ErrorResponse (when the stream allows it) and end the session. */
  fatal(code: string, message: string, detail?: string): void {
    if (this.closed) return;
    if (code !== '28P01' && code !== '57P01') this.log.info({ code, message }, 'session ended with an error');
    const canWrite = !this.sw || this.sw.atBoundary;
    this.dropBackend();
    this.endClient(canWrite ? errorResponse('FATAL', code, message, detail) : undefined);
  }

  private endClient(last?: Buffer): void {
    if (this.closed) return;
    const c = this.client;
    if (!c.destroyed) {
      if (last) c.end(last); else c.end();
      // do not wait forever for a client that does not read its last message
      setTimeout(() => c.destroy(), 5000).unref();
    }
    this.close();
  }

  /** End the session (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onSwitchPoint = null;
    if (this.cancelPid) this.ctx.cancel.release(this.cancelPid, this.cancelSecret);
    if (this.admitted) { this.ctx.release(); this.ctx.sessionEnded(this); }
    if (this.pooled) { this.dropBackend(); this.unsubscribeAll(); }
    if (!this.client.writableEnded) this.client.destroy();
    if (this.backend && !this.backend.writableEnded) this.backend.destroy();
    this.log.debug('session ended');
  }

  /** End from the proxy (shutdown): tell the client like PostgreSQL's fast shutdown does. */
  terminate(message = 'terminating connection due to administrator command', detail?: string): void {
    if (this.closed) return;
    this.fatal('57P01', message, detail);
  }

  info(): SessionInfo {
    const snap = this.state?.snapshot();
    return {
      id: this.id,
      user: this.user,
      database: this.database,
      applicationName: this.state?.startupParams.get('application_name') ?? '',
      side: this.side,
      backendPid: this.backendConn?.pid ?? 0,
      clientAddress: `${this.client.remoteAddress ?? ''}:${this.client.remotePort ?? ''}`,
      startedAt: this.startedAt.toISOString(),
      txStatus: snap?.txStatus ?? 'I',
      idle: this.state?.idle ?? true,
      settings: snap?.settings ?? {},
      prepared: snap?.prepared ?? [],
      listens: snap?.listens ?? [],
      pinned: snap?.pinned ?? [],
      poolMode: this.pooled ? 'transaction' : 'session',
    };
  }
}

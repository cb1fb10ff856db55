/**
 * One typed configuration object, from (lowest to highest precedence) defaults,
 * a YAML/JSON file, environment variables and command-line flags.
 *
 * Every problem is reported as a ConfigError naming the key and what is wrong,
 * so start-up can stop with one clear line.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { SIDES, Side } from './side';

/** auto: pg_dump when it is installed and new enough for the server, else the Node path (src/schema) */
export const SCHEMA_DUMP_SETTINGS = ['auto', 'pg_dump', 'node'] as const;
export type SchemaDumpSetting = (typeof SCHEMA_DUMP_SETTINGS)[number];
export const TRACE_SETTINGS = ['auto', 'on', 'off'] as const;
export type TraceSetting = (typeof TRACE_SETTINGS)[number];


export interface HostPort { host: string; port: number }

export interface ProxyUser {
  /** plain password (the proxy derives a SCRAM verifier from it) … */
  password?: string;
  /** … or a stored verifier: SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey> */
  scramVerifier?: string;
}

export interface SideConfig { url: string; adminUrl?: string }

export interface PgflipConfig {
  /**
   * Per side: `url` is what the proxy's backend connections use (the application's
   * credentials and sslmode); `adminUrl` what the controller and sync engine use
   * (a role with REPLICATION that fencing does not restrict). adminUrl defaults to url.
   */
  blue: SideConfig;
  green: SideConfig;
  /** side that serves traffic when no state store says otherwise */
  active: Side;
  /** the application-facing database and account (DB_NAME, DB_USER, DB_PASSWORD) */
  app: { database?: string; user?: string; password?: string };
  proxy: {
    listen: HostPort;
    admin: HostPort;
    auth: 'scram' | 'trust';
    /** accounts clients log in with; DB_USER/DB_PASSWORD add one */
    users: Record<string, ProxyUser>;
    tls?: { cert: string; key: string };
    maxClientConnections: number;
    maxMessageBytes: number;
    healthCheck: { intervalMs: number; query: string; timeoutMs: number };
    /** how long a new client waits for a backend before 08006 */
    connectTimeoutMs: number;
    /** what happens to pinned sessions at a switch: terminated after it (57P01), or the flip aborts */
    pinnedPolicy: 'terminate' | 'abort';
    /** longest a flip holds movable sessions while others finish their transaction or statement; then it lets go and tries again */
    holdGraceMs: number;
    /** target connections a flip opens (and replays state on) at once, before it holds anyone */
    prepareConcurrency: number;
    /** how long a session whose side went down, or a new client, waits for a flip or the side's return */
    lostBackendWaitMs: number;
    /** event loops (processes) on the one listener, each a fleet member: `auto` = the cores on a machine of 4 or more with a Redis store, else 1 */
    workers: number | 'auto';
    /** session: one backend per client; transaction: backends leased per transaction from pools (docs/proxy.md "Transaction pooling") */
    poolMode: PoolMode;
    /** transaction mode: server connections per pool (a side, a database, one set of startup parameters) */
    poolSize: number;
    /** transaction mode: how long a transaction waits for a free server connection before the client gets 53300 */
    poolTimeoutMs: number;
    /** transaction mode: protocol-level statements kept prepared per server connection (the least recently used are closed) */
    maxPreparedStatements: number;
    /** per database and/or user: poolMode and poolSize for the clients that match (the first entry that matches) */
    pools: PoolOverride[];
  };
  controller: {
    listen: HostPort;
    apiToken?: string;
    backupDir: string;
    backupRetention: number;
    /** JSON-lines audit log of every mutating API call */
    auditLog: string;
    /** SET lock_timeout for migration statements on a live side */
    lockTimeoutMs: number;
    /** further attempts after a lock timeout (SQLSTATE 55P03) */
    lockRetries: number;
    /** how long the proxies may hold traffic for a maintenance migration or a flip */
    holdLimitSeconds: number;
    /** observation window after a risky flip, with reverse sync running */
    watchWindowSeconds: number;
    watchIntervalMs: number;
    /** roll back when the new side's error rate exceeds the application's error rate before the flip by this fraction */
    errorRateThreshold: number;
    /** roll back when p95 latency exceeds this factor of the pre-flip baseline */
    latencyFactor: number;
    /** roll back after this many consecutive failed health checks */
    healthFailureLimit: number;
    /** proxies' admin base URLs (http://host:port) read for error rate and latency */
    proxyAdminUrls: string[];
    /** migrations kept in the history */
    historyLimit: number;
    /** parallel initial-copy workers; absent: chosen from where the two servers run (src/sync/copy.ts) */
    copyWorkers?: number;
    /** during the watch window, each commit on the new side waits until the reverse stream applied it on the old one (src/sync/synchronous.ts) */
    synchronousReverse: boolean;
    /** serve the previous schema version on a risky migration's new side (compat/) */
    compatSchema: boolean;
    /** how schemas are read for the idle side's copy and rollback points (src/schema/tool.ts) */
    schemaDump: SchemaDumpSetting;
    /** the validate step traces the file on a throwaway local cluster (src/trace): auto = when one can start, on = required, off */
    trace: TraceSetting;
    /** how long a risky migration's catch-ups (forward before the flip, reverse for a rollback) may take before the migration fails or rolls back */
    catchUpTimeoutSeconds: number;
  };
  /** absent → in-process memory state store */
  redisUrl?: string;
}

export type PoolMode = 'session' | 'transaction';

export interface PoolOverride { database?: string; user?: string; poolMode?: PoolMode; poolSize?: number }

/** The pool mode and size for a client's database and user (proxy.pools, then the proxy-wide values). */
export function poolSettings(p: PgflipConfig['proxy'], database: string, user: string): { mode: PoolMode; size: number } {
  const o = p.pools.find((x) => (x.database === undefined || x.database === database) && (x.user === undefined || x.user === user));
  return { mode: o?.poolMode ?? p.poolMode, size: o?.poolSize ?? p.poolSize };
}

export class ConfigError extends Error {
  constructor(readonly key: string, problem: string) {
    super(`config ${key}: ${problem}`);
    this.name = 'ConfigError';
  }
}

export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024 * 1024; // PostgreSQL's own limit

export function defaultConfig(): PgflipConfig {
  return {
    blue: { url: '' },
    green: { url: '' },
    active: 'blue',
    app: {},
    proxy: {
      listen: { host: '127.0.0.1', port: 6432 },
      admin: { host: '127.0.0.1', port: 9187 },
      auth: 'scram',
      users: {},
      maxClientConnections: 10_000,
      maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
      healthCheck: { intervalMs: 2000, query: 'SELECT 1', timeoutMs: 1000 },
      connectTimeoutMs: 10_000,
      pinnedPolicy: 'terminate',
      holdGraceMs: 50,
      prepareConcurrency: 16,
      lostBackendWaitMs: 30_000,
      workers: 'auto',
      poolMode: 'session',
      poolSize: 20,
      poolTimeoutMs: 120_000,
      maxPreparedStatements: 200,
      pools: [],
    },
    controller: {
      listen: { host: '127.0.0.1', port: 8080 },
      backupDir: './backups',
      backupRetention: 10,
      auditLog: './pgflip-audit.log',
      lockTimeoutMs: 2000,
      lockRetries: 5,
      holdLimitSeconds: 30,
      watchWindowSeconds: 60,
      watchIntervalMs: 1000,
      errorRateThreshold: 0.05,
      latencyFactor: 3,
      healthFailureLimit: 3,
      proxyAdminUrls: [],
      historyLimit: 200,
      synchronousReverse: false,
      compatSchema: true,
      schemaDump: 'auto',
      trace: 'auto',
      catchUpTimeoutSeconds: 600,
    },
  };
}

export function parseHostPort(key: string, value: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(key, `expected HOST:PORT, got "${value}"`);
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep merge of plain objects; arrays and scalars replace. */
export function merge<T>(base: T, over: unknown): T {
  if (!isObject(over)) return base;
  const out: Json = { ...(base as Json) };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isObject(v) && isObject(out[k]) ? merge(out[k], v) : v;
  }
  return out as T;
}

export function readConfigFile(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('--config', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const doc = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
    if (doc == null) return {};
    if (!isObject(doc)) throw new Error('top level must be a mapping');
    return doc;
  } catch (e) {
    throw new ConfigError('--config', `${file}: ${(e as Error).message}`);
  }
}

/** The environment variables (a contract: docs/architecture.md), as a partial config. */
export function envOverrides(env: NodeJS.ProcessEnv = process.env): Json {
  const o: Json = {};
  if (env.BLUE_DATABASE_URL) o.blue = { url: env.BLUE_DATABASE_URL };
  if (env.GREEN_DATABASE_URL) o.green = { url: env.GREEN_DATABASE_URL };
  for (const side of SIDES) {
    const admin = env[`${side.toUpperCase()}_ADMIN_DATABASE_URL`];
    if (admin) o[side] = { ...(o[side] as Json | undefined), adminUrl: admin };
  }
  if (env.PGFLIP_ACTIVE) o.active = env.PGFLIP_ACTIVE;
  const proxy: Json = {};
  if (env.PGFLIP_PROXY_WORKERS) proxy.workers = env.PGFLIP_PROXY_WORKERS === 'auto' ? 'auto' : Number(env.PGFLIP_PROXY_WORKERS);
  if (env.PGFLIP_POOL_MODE) proxy.poolMode = env.PGFLIP_POOL_MODE;
  if (env.PGFLIP_POOL_SIZE) proxy.poolSize = Number(env.PGFLIP_POOL_SIZE);
  if (Object.keys(proxy).length) o.proxy = proxy;
  const app: Json = {};
  if (env.DB_NAME) app.database = env.DB_NAME;
  if (env.DB_USER) app.user = env.DB_USER;
  if (env.DB_PASSWORD) app.password = env.DB_PASSWORD;
  if (Object.keys(app).length) o.app = app;
  if (env.REDIS_URL) o.redisUrl = env.REDIS_URL;
  const controller: Json = {};
  if (env.PGFLIP_API_TOKEN) controller.apiToken = env.PGFLIP_API_TOKEN;
  if (env.PGFLIP_BACKUP_DIR) controller.backupDir = env.PGFLIP_BACKUP_DIR;
  if (env.PGFLIP_AUDIT_LOG) controller.auditLog = env.PGFLIP_AUDIT_LOG;
  if (env.PGFLIP_SCHEMA_DUMP) controller.schemaDump = env.PGFLIP_SCHEMA_DUMP;
  if (env.PGFLIP_TRACE) controller.trace = env.PGFLIP_TRACE;
  if (env.PGFLIP_PROXY_ADMIN_URLS) controller.proxyAdminUrls = env.PGFLIP_PROXY_ADMIN_URLS.split(',').map((u) => u.trim()).filter(Boolean);
  if (Object.keys(controller).length) o.controller = controller;
  return o;
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** flags, already shaped as a partial config */
  flags?: Json;
  /** which parts must be complete (the proxy needs backends, the controller a token) */
  require?: Array<'backends' | 'apiToken'>;
}

export function loadConfig(opts: LoadOptions = {}): PgflipConfig {
  let cfg = defaultConfig();
  if (opts.file) cfg = merge(cfg, readConfigFile(opts.file));
  cfg = merge(cfg, envOverrides(opts.env ?? process.env));
  cfg = merge(cfg, opts.flags);
  // DB_USER/DB_PASSWORD is the application's account at the proxy.
  if (cfg.app.user && cfg.app.password && !cfg.proxy.users[cfg.app.user]) {
    cfg.proxy.users = { ...cfg.proxy.users, [cfg.app.user]: { password: cfg.app.password } };
  }
  validateConfig(cfg, opts.require ?? []);
  return cfg;
}

function checkUrl(key: string, url: unknown, required: boolean): void {
  if (url === '' || url === undefined) {
    if (required) throw new ConfigError(key, 'is required (a postgres:// URL)');
    return;
  }
  if (typeof url !== 'string') throw new ConfigError(key, 'must be a string');
  let u: URL;
  try { u = new URL(url); } catch { throw new ConfigError(key, 'is not a valid URL'); }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new ConfigError(key, `must start with postgres:// (got ${u.protocol}//)`);
  }
}

function checkPort(key: string, hp: HostPort): void {
  if (!isObject(hp) || typeof hp.host !== 'string' || !Number.isInteger(hp.port) || hp.port < 0 || hp.port > 65535) {
    throw new ConfigError(key, 'must be {host, port} with a port from 0 to 65535');
  }
}

function checkPoolMode(key: string, v: unknown): void {
  if (v !== 'session' && v !== 'transaction') throw new ConfigError(key, `must be session or transaction (got ${JSON.stringify(v)})`);
}

function checkPositiveInt(key: string, v: unknown): void {
  if (!Number.isInteger(v) || (v as number) <= 0) throw new ConfigError(key, `must be a positive integer (got ${JSON.stringify(v)})`);
}

export function validateConfig(cfg: PgflipConfig, required: Array<'backends' | 'apiToken'>): void {
  const needBackends = required.includes('backends');
  checkUrl('blue.url', cfg.blue?.url, needBackends);
  checkUrl('green.url', cfg.green?.url, needBackends);
  checkUrl('blue.adminUrl', cfg.blue?.adminUrl, false);
  checkUrl('green.adminUrl', cfg.green?.adminUrl, false);
  if (!SIDES.includes(cfg.active)) throw new ConfigError('active', `must be blue or green (got ${JSON.stringify(cfg.active)})`);
  if (cfg.redisUrl !== undefined && !/^rediss?:\/\//.test(cfg.redisUrl)) throw new ConfigError('redisUrl', 'must start with redis:// or rediss://');
  const p = cfg.proxy;
  checkPort('proxy.listen', p.listen);
  checkPort('proxy.admin', p.admin);
  if (p.auth !== 'scram' && p.auth !== 'trust') throw new ConfigError('proxy.auth', `must be scram or trust (got ${JSON.stringify(p.auth)})`);
  if (!isObject(p.users)) throw new ConfigError('proxy.users', 'must be a mapping of user name to {password} or {scramVerifier}');
  for (const [name, entry] of Object.entries(p.users)) {
    if (!isObject(entry) || (typeof entry.password !== 'string' && typeof entry.scramVerifier !== 'string')) {
      throw new ConfigError(`proxy.users.${name}`, 'needs password or scramVerifier');
    }
    const u = entry as ProxyUser;
    if (u.scramVerifier !== undefined && !/^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/.test(u.scramVerifier)) {
      throw new ConfigError(`proxy.users.${name}.scramVerifier`, 'must look like SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>');
    }
  }
  if (p.tls !== undefined && (!isObject(p.tls) || typeof p.tls.cert !== 'string' || typeof p.tls.key !== 'string')) {
    throw new ConfigError('proxy.tls', 'needs cert and key (file paths)');
  }
  checkPositiveInt('proxy.maxClientConnections', p.maxClientConnections);
  checkPositiveInt('proxy.maxMessageBytes', p.maxMessageBytes);
  checkPositiveInt('proxy.healthCheck.intervalMs', p.healthCheck.intervalMs);
  checkPositiveInt('proxy.healthCheck.timeoutMs', p.healthCheck.timeoutMs);
  checkPositiveInt('proxy.connectTimeoutMs', p.connectTimeoutMs);
  if (p.pinnedPolicy !== 'terminate' && p.pinnedPolicy !== 'abort') throw new ConfigError('proxy.pinnedPolicy', 'must be terminate or abort');
  checkPositiveInt('proxy.holdGraceMs', p.holdGraceMs);
  checkPositiveInt('proxy.prepareConcurrency', p.prepareConcurrency);
  checkPositiveInt('proxy.lostBackendWaitMs', p.lostBackendWaitMs);
  if (p.workers !== 'auto') {
    if (!Number.isInteger(p.workers) || p.workers < 1 || p.workers > 64) throw new ConfigError('proxy.workers', `must be auto or an integer from 1 to 64 (got ${JSON.stringify(p.workers)})`);
    if (p.workers > 1 && !cfg.redisUrl) throw new ConfigError('proxy.workers', `${p.workers} workers need redisUrl (REDIS_URL): each worker is a fleet member, and they share the state store`);
  }
  checkPoolMode('proxy.poolMode', p.poolMode);
  checkPositiveInt('proxy.poolSize', p.poolSize);
  checkPositiveInt('proxy.poolTimeoutMs', p.poolTimeoutMs);
  checkPositiveInt('proxy.maxPreparedStatements', p.maxPreparedStatements);
  if (!Array.isArray(p.pools)) throw new ConfigError('proxy.pools', 'must be a list of {database?, user?, poolMode?, poolSize?}');
  p.pools.forEach((o, i) => {
    const key = `proxy.pools[${i}]`;
    if (!isObject(o)) throw new ConfigError(key, 'must be a mapping {database?, user?, poolMode?, poolSize?}');
    const unknown = Object.keys(o).filter((k) => !['database', 'user', 'poolMode', 'poolSize'].includes(k));
    if (unknown.length) throw new ConfigError(`${key}.${unknown[0]}`, 'is not a pool setting (database, user, poolMode, poolSize)');
    for (const k of ['database', 'user'] as const) if (o[k] !== undefined && typeof o[k] !== 'string') throw new ConfigError(`${key}.${k}`, 'must be a string');
    if (o.poolMode !== undefined) checkPoolMode(`${key}.poolMode`, o.poolMode);
    if (o.poolSize !== undefined) checkPositiveInt(`${key}.poolSize`, o.poolSize);
  });
  const c = cfg.controller;
  checkPort('controller.listen', c.listen);
  if (required.includes('apiToken') && !c.apiToken) throw new ConfigError('PGFLIP_API_TOKEN', 'is required (controller.apiToken)');
  if (c.apiToken !== undefined && c.apiToken.length < 16) throw new ConfigError('controller.apiToken', 'must be at least 16 characters');
  checkPositiveInt('controller.backupRetention', c.backupRetention);
  if (typeof c.backupDir !== 'string' || !c.backupDir) throw new ConfigError('controller.backupDir', 'must be a directory path');
  if (typeof c.auditLog !== 'string' || !c.auditLog) throw new ConfigError('controller.auditLog', 'must be a file path');
  checkPositiveInt('controller.lockTimeoutMs', c.lockTimeoutMs);
  if (!Number.isInteger(c.lockRetries) || c.lockRetries < 0) throw new ConfigError('controller.lockRetries', `must be an integer >= 0 (got ${JSON.stringify(c.lockRetries)})`);
  checkPositiveInt('controller.holdLimitSeconds', c.holdLimitSeconds);
  if (typeof c.watchWindowSeconds !== 'number' || !(c.watchWindowSeconds >= 0)) throw new ConfigError('controller.watchWindowSeconds', `must be a number >= 0 (got ${JSON.stringify(c.watchWindowSeconds)})`);
  checkPositiveInt('controller.watchIntervalMs', c.watchIntervalMs);
  if (typeof c.errorRateThreshold !== 'number' || !(c.errorRateThreshold > 0 && c.errorRateThreshold <= 1)) throw new ConfigError('controller.errorRateThreshold', `must be a fraction in (0, 1] (got ${JSON.stringify(c.errorRateThreshold)})`);
  if (typeof c.latencyFactor !== 'number' || !(c.latencyFactor > 1)) throw new ConfigError('controller.latencyFactor', `must be a number > 1 (got ${JSON.stringify(c.latencyFactor)})`);
  checkPositiveInt('controller.healthFailureLimit', c.healthFailureLimit);
  if (typeof c.synchronousReverse !== 'boolean') throw new ConfigError('controller.synchronousReverse', `must be true or false (got ${JSON.stringify(c.synchronousReverse)})`);
  if (typeof c.compatSchema !== 'boolean') throw new ConfigError('controller.compatSchema', `must be true or false (got ${JSON.stringify(c.compatSchema)})`);
  if (!SCHEMA_DUMP_SETTINGS.includes(c.schemaDump)) throw new ConfigError('controller.schemaDump', `must be one of ${SCHEMA_DUMP_SETTINGS.join(', ')} (got ${JSON.stringify(c.schemaDump)})`);
  checkPositiveInt('controller.catchUpTimeoutSeconds', c.catchUpTimeoutSeconds);
  if (!TRACE_SETTINGS.includes(c.trace)) throw new ConfigError('controller.trace', `must be one of ${TRACE_SETTINGS.join(', ')} (got ${JSON.stringify(c.trace)})`);
  if (!Array.isArray(c.proxyAdminUrls) || c.proxyAdminUrls.some((u) => typeof u !== 'string' || !/^https?:\/\//.test(u))) {
    throw new ConfigError('controller.proxyAdminUrls', 'must be a list of http:// URLs');
  }
  checkPositiveInt('controller.historyLimit', c.historyLimit);
  if (c.copyWorkers !== undefined) checkPositiveInt('controller.copyWorkers', c.copyWorkers);
}

/** The URL the controller and the sync engine use for a side. */
export const adminUrl = (cfg: PgflipConfig, side: Side): string => cfg[side].adminUrl || cfg[side].url;

/**
 * One typed configuration object, from (lowest to highest precedence) defaults,
 * a YAML/JSON file, environment variables and command-line flags.
 *
 * Every problem is reported as a ConfigError naming the key and what is wrong,
 * so start-up can stop with one clear line.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';

export type Side = 'blue' | 'green';
export const SIDES: readonly Side[] = ['blue', 'green'];
export const otherSide = (s: Side): Side => (s === 'blue' ? 'green' : 'blue');

export interface HostPort { host: string; port: number }

export interface ProxyUser {
  /** plain password (the proxy derives a SCRAM verifier from it) … */
  password?: string;
  /** … or a stored verifier: SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey> */
  scramVerifier?: string;
}

export interface PgflipConfig {
  /** per-side backend URLs, each with its own credentials and sslmode */
  blue: { url: string };
  green: { url: string };
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
    /** what happens to pinned sessions when a switch reaches its deadline */
    pinnedPolicy: 'terminate' | 'abort';
  };
  controller: {
    listen: HostPort;
    apiToken?: string;
    backupDir: string;
    backupRetention: number;
  };
  /** absent → in-process memory state store */
  redisUrl?: string;
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
    },
    controller: {
      listen: { host: '127.0.0.1', port: 8080 },
      backupDir: './backups',
      backupRetention: 10,
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

/** The env variables of DESIGN §3.5, as a partial config. */
export function envOverrides(env: NodeJS.ProcessEnv = process.env): Json {
  const o: Json = {};
  if (env.BLUE_DATABASE_URL) o.blue = { url: env.BLUE_DATABASE_URL };
  if (env.GREEN_DATABASE_URL) o.green = { url: env.GREEN_DATABASE_URL };
  if (env.PGFLIP_ACTIVE) o.active = env.PGFLIP_ACTIVE;
  const app: Json = {};
  if (env.DB_NAME) app.database = env.DB_NAME;
  if (env.DB_USER) app.user = env.DB_USER;
  if (env.DB_PASSWORD) app.password = env.DB_PASSWORD;
  if (Object.keys(app).length) o.app = app;
  if (env.REDIS_URL) o.redisUrl = env.REDIS_URL;
  const controller: Json = {};
  if (env.PGFLIP_API_TOKEN) controller.apiToken = env.PGFLIP_API_TOKEN;
  if (env.PGFLIP_BACKUP_DIR) controller.backupDir = env.PGFLIP_BACKUP_DIR;
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

function checkPositiveInt(key: string, v: unknown): void {
  if (!Number.isInteger(v) || (v as number) <= 0) throw new ConfigError(key, `must be a positive integer (got ${JSON.stringify(v)})`);
}

export function validateConfig(cfg: PgflipConfig, required: Array<'backends' | 'apiToken'>): void {
  const needBackends = required.includes('backends');
  checkUrl('blue.url', cfg.blue?.url, needBackends);
  checkUrl('green.url', cfg.green?.url, needBackends);
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
  const c = cfg.controller;
  checkPort('controller.listen', c.listen);
  if (required.includes('apiToken') && !c.apiToken) throw new ConfigError('PGFLIP_API_TOKEN', 'is required (controller.apiToken)');
  if (c.apiToken !== undefined && c.apiToken.length < 16) throw new ConfigError('controller.apiToken', 'must be at least 16 characters');
  checkPositiveInt('controller.backupRetention', c.backupRetention);
}

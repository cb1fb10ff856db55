import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { adminUrl, ConfigError, loadConfig, parseHostPort } from '../src/config';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'pgflip-config-'));
function file(name: string, text: string): string {
  const f = path.join(tmp, name);
  writeFileSync(f, text);
  return f;
}

describe('configuration', () => {
  it('takes flags over env over file over defaults', () => {
    const f = file('a.yaml', 'blue:\n  url: postgres://f@h:1/db\ngreen:\n  url: postgres://f@h:2/db\nproxy:\n  listen: {host: 0.0.0.0, port: 7000}\n  auth: trust\n');
    const env = { BLUE_DATABASE_URL: 'postgres://env@h:3/db' };
    const cfg = loadConfig({ file: f, env, flags: { proxy: { listen: { host: '127.0.0.1', port: 7001 } } } });
    expect(cfg.blue.url).toBe('postgres://env@h:3/db');
    expect(cfg.green.url).toBe('postgres://f@h:2/db');
    expect(cfg.proxy.listen).toEqual({ host: '127.0.0.1', port: 7001 });
    expect(cfg.proxy.auth).toBe('trust');
    expect(cfg.proxy.maxMessageBytes).toBe(1024 ** 3);
  });

  it('adds the application account from DB_USER and DB_PASSWORD', () => {
    const cfg = loadConfig({ env: { DB_USER: 'app', DB_PASSWORD: 'secret', DB_NAME: 'shop' } });
    expect(cfg.proxy.users.app).toEqual({ password: 'secret' });
    expect(cfg.app.database).toBe('shop');
  });

  type Case = [string, Parameters<typeof loadConfig>[0] & object, string];
  it.each<Case>([
    ['blue.url', { require: ['backends'], env: { GREEN_DATABASE_URL: 'postgres://x@h/d' } }, 'config blue.url: is required'],
    ['green.url', { env: { GREEN_DATABASE_URL: 'mysql://x@h/d' } }, 'config green.url: must start with postgres://'],
    ['active', { env: { PGFLIP_ACTIVE: 'red' } }, 'config active: must be blue or green (got "red")'],
    ['proxy.auth', { flags: { proxy: { auth: 'md5' } } }, 'config proxy.auth: must be scram or trust'],
    ['proxy.maxMessageBytes', { flags: { proxy: { maxMessageBytes: -1 } } }, 'config proxy.maxMessageBytes: must be a positive integer (got -1)'],
    ['proxy.users.bob', { flags: { proxy: { users: { bob: {} } } } }, 'config proxy.users.bob: needs password or scramVerifier'],
    ['PGFLIP_API_TOKEN', { require: ['apiToken'], env: {} }, 'config PGFLIP_API_TOKEN: is required'],
    ['controller.apiToken', { env: { PGFLIP_API_TOKEN: 'short' } }, 'config controller.apiToken: must be at least 16 characters'],
    ['redisUrl', { env: { REDIS_URL: 'localhost:6379' } }, 'config redisUrl: must start with redis://'],
    ['controller.copyWorkers', { flags: { controller: { copyWorkers: 0 } } }, 'config controller.copyWorkers: must be a positive integer (got 0)'],
    ['controller.catchUpTimeoutSeconds', { flags: { controller: { catchUpTimeoutSeconds: 0 } } }, 'config controller.catchUpTimeoutSeconds: must be a positive integer (got 0)'],
    ['controller.trace', { env: { PGFLIP_TRACE: 'yes' } }, 'config controller.trace: must be one of auto, on, off (got "yes")'],
    ['proxy.workers', { env: { PGFLIP_PROXY_WORKERS: '2' } }, 'config proxy.workers: 2 workers need redisUrl (REDIS_URL): each worker is a fleet member, and they share the state store'],
    ['proxy.workers', { env: { PGFLIP_PROXY_WORKERS: '0', REDIS_URL: 'redis://h:6379' } }, 'config proxy.workers: must be auto or an integer from 1 to 64 (got 0)'],
    ['proxy.poolMode', { env: { PGFLIP_POOL_MODE: 'statement' } }, 'config proxy.poolMode: must be session or transaction (got "statement")'],
    ['proxy.poolSize', { env: { PGFLIP_POOL_SIZE: '0' } }, 'config proxy.poolSize: must be a positive integer (got 0)'],
    ['proxy.pools[0].size', { flags: { proxy: { pools: [{ database: 'app', size: 5 }] } } as never }, 'config proxy.pools[0].size: is not a pool setting (database, user, poolMode, poolSize)'],
    ['proxy.pools[1].poolMode', { flags: { proxy: { pools: [{ user: 'a' }, { user: 'b', poolMode: 'stmt' }] } } as never }, 'config proxy.pools[1].poolMode: must be session or transaction (got "stmt")'],
    ['proxy.pools[0].database', { flags: { proxy: { pools: [{ database: 5 }] } } as never }, 'config proxy.pools[0].database: must be a string'],
  ])('names the key %s and the problem', (key, opts, message) => {
    const run = () => loadConfig({ env: {}, ...opts });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(message);
    try { run(); } catch (e) { expect((e as ConfigError).key).toBe(key); }
  });

  it('traces in the validate step by default; PGFLIP_TRACE turns it off or makes it required', () => {
    expect(loadConfig({ env: {} }).controller.trace).toBe('auto');
    expect(loadConfig({ env: { PGFLIP_TRACE: 'off' } }).controller.trace).toBe('off');
    expect(loadConfig({ env: { PGFLIP_TRACE: 'on' } }).controller.trace).toBe('on');
  });

  it('proxy.workers auto: the cores on a machine of 4 or more with a Redis store, else 1', () => {
    const { resolveWorkers } = require('../src/proxy/workers') as typeof import('../src/proxy/workers');
    expect(resolveWorkers(loadConfig({ env: {} }), 8)).toBe(1);
    expect(resolveWorkers(loadConfig({ env: { REDIS_URL: 'redis://h:6379' } }), 2)).toBe(1);
    expect(resolveWorkers(loadConfig({ env: { REDIS_URL: 'redis://h:6379' } }), 8)).toBe(8);
    expect(resolveWorkers(loadConfig({ env: { REDIS_URL: 'redis://h:6379', PGFLIP_PROXY_WORKERS: '3' } }), 2)).toBe(3);
    expect(resolveWorkers(loadConfig({ env: { REDIS_URL: 'redis://h:6379' } }), 256)).toBe(64);
    // each worker's share of the client limit: together never more than the total
    const { workerConfig } = require('../src/proxy/workers') as typeof import('../src/proxy/workers');
    const cfg = loadConfig({ env: { REDIS_URL: 'redis://h:6379' }, flags: { proxy: { maxClientConnections: 10 } } });
    expect(workerConfig(cfg, 4).proxy.maxClientConnections).toBe(2);
    expect(workerConfig(cfg, 4).proxy.admin.port).toBe(0);
  });

  it('reports an unreadable or malformed file with its name', () => {
    expect(() => loadConfig({ file: path.join(tmp, 'missing.yaml'), env: {} })).toThrow(/config --config: cannot read .*missing\.yaml: ENOENT/);
    const bad = file('bad.yaml', 'proxy: [unclosed\n');
    expect(() => loadConfig({ file: bad, env: {} })).toThrow(/config --config: .*bad\.yaml: /);
  });

  it('parses HOST:PORT and rejects anything else', () => {
    expect(parseHostPort('--listen', '0.0.0.0:6432')).toEqual({ host: '0.0.0.0', port: 6432 });
    expect(parseHostPort('--listen', '[::1]:5')).toEqual({ host: '::1', port: 5 });
    expect(parseHostPort('--listen', ':7')).toEqual({ host: '127.0.0.1', port: 7 });
    expect(() => parseHostPort('--listen', 'localhost')).toThrow('config --listen: expected HOST:PORT, got "localhost"');
    expect(() => parseHostPort('--listen', 'h:70000')).toThrow('config --listen');
  });
});

describe('per-side admin URL', () => {
  it('defaults to the backend URL and can be set apart from it', () => {
    const env = { BLUE_DATABASE_URL: 'postgres://app@h:1/db', GREEN_DATABASE_URL: 'postgres://app@h:2/db', GREEN_ADMIN_DATABASE_URL: 'postgres://admin@h:2/db' };
    const cfg = loadConfig({ env });
    expect(adminUrl(cfg, 'blue')).toBe('postgres://app@h:1/db');
    expect(adminUrl(cfg, 'green')).toBe('postgres://admin@h:2/db');
    expect(() => loadConfig({ env: { ...env, BLUE_ADMIN_DATABASE_URL: 'http://x' } })).toThrow('config blue.adminUrl: must start with postgres://');
  });
});

import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { findPgBinaries, PgBinaries } from './binaries';

const run = promisify(execFile);

/** A PostgreSQL cluster that pgflip (or its tests) runs as a child on this machine. */
export interface LocalClusterOptions {
  /** Directory that holds the cluster's data, socket and log; created if missing. */
  dir: string;
  port?: number;
  superuser?: string;
  password?: string;
  /** Extra postgresql.conf settings. */
  settings?: Record<string, string | number>;
  binaries?: PgBinaries;
  /**
   * Initialise from a copy of a cached initdb output of these binaries instead of running
   * initdb (for throwaway clusters, which start often: a copy costs a fraction of a bootstrap).
   * The cache is made on first use under the OS temp dir, keyed by the binaries (path, size and
   * time of initdb and postgres), the superuser and initdb's flags, and is never started
   * itself; the superuser's password is set after the first start, over the local socket.
   * A copy that does not start is replaced by a fresh initdb (and the cache made again).
   */
  template?: boolean;
}

const INITDB_FLAGS = ['--auth-local=trust', '--auth-host=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync'];

export const DEFAULT_CLUSTER_SETTINGS: Record<string, string | number> = {
  wal_level: 'logical',
  max_replication_slots: 20,
  max_wal_senders: 20,
  max_connections: 300,
  listen_addresses: "'127.0.0.1'",
};

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** PostgreSQL refuses to run as root: when root, run its binaries as the `postgres` OS user. */
function osUser(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  try {
    execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
  }
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

function quoteConf(v: string | number): string {
  return typeof v === 'number' || /^'.*'$/.test(v) || /^[A-Za-z0-9_.]+$/.test(v) ? String(v) : `'${v.replace(/'/g, "''")}'`;
}

/**
 * As root the server runs as `postgres`, which may not be able to reach binaries
 * installed under a private directory (a checkout in a 0700 temp dir, say).
 * Then the installation (bin, lib, share) is copied once to a world-readable
 * place next to the system temp dir and run from there.
 */
function reachableBy(user: string, bins: PgBinaries): PgBinaries {
  const initdb = path.join(bins.dir, 'initdb');
  try {
    execFileSync('runuser', ['-u', user, '--', 'test', '-x', initdb], { stdio: 'ignore' });
    return bins;
  } catch { /* not reachable: copy below */ }
  const root = path.dirname(bins.dir);
  const version = execFileSync(initdb, ['--version']).toString().trim().split(' ').pop() ?? 'unknown';
  const target = path.join(os.tmpdir(), `pgflip-pg-${version}-${createHash('sha1').update(root).digest('hex').slice(0, 8)}`);
  if (!existsSync(path.join(target, 'bin', 'initdb'))) {
    const partial = `${target}.${process.pid}.partial`;
    rmSync(partial, { recursive: true, force: true });
    cpSync(root, partial, { recursive: true, verbatimSymlinks: true });
    execFileSync('chmod', ['-R', 'a+rX', partial]);
    chmodSync(partial, 0o755);
    try { renameSync(partial, target); } catch { rmSync(partial, { recursive: true, force: true }); /* a concurrent copy won */ }
  }
  return { dir: path.join(target, 'bin'), source: bins.source };
}

export class LocalCluster {
  readonly dataDir: string;
  readonly socketDir: string;
  readonly logFile: string;
  readonly superuser: string;
  readonly password: string;
  port = 0;
  private readonly bins: PgBinaries;
  private readonly owner = osUser();
  /** copied from the template and not yet given its own password */
  private passwordPending = false;
  /** the template's copy did not start: initdb from now on */
  private templateFailed = false;

  constructor(private readonly opts: LocalClusterOptions) {
    this.dataDir = path.join(opts.dir, 'data');
    this.socketDir = path.join(opts.dir, 'sock');
    this.logFile = path.join(opts.dir, 'postgres.log');
    this.superuser = opts.superuser ?? 'postgres';
    this.password = opts.password ?? 'postgres';
    const bins = opts.binaries ?? findPgBinaries();
    this.bins = this.owner ? reachableBy('postgres', bins) : bins;
  }

  get host(): string {
    return '127.0.0.1';
  }

  /** URL of a database on this cluster, with the superuser's credentials. */
  url(database = 'postgres'): string {
    return `postgres://${encodeURIComponent(this.superuser)}:${encodeURIComponent(this.password)}@${this.host}:${this.port}/${encodeURIComponent(database)}`;
  }

  private pg(bin: string, args: string[]): Promise<string> {
    return this.asOwner(path.join(this.bins.dir, bin), args);
  }

  /** Runs a program as the cluster's OS user (postgres when we are root). */
  private async asOwner(file: string, args: string[]): Promise<string> {
    const env = { ...process.env, LC_ALL: 'C', LANG: 'C' };
    const { stdout } = this.owner
      ? await run('runuser', ['-u', 'postgres', '--', file, ...args], { env, maxBuffer: 1 << 24 })
      : await run(file, args, { env, maxBuffer: 1 << 24 });
    return stdout;
  }

  private chown(p: string): void {
    if (this.owner) chownSync(p, this.owner.uid, this.owner.gid);
  }

  get initialised(): boolean {
    return existsSync(path.join(this.dataDir, 'PG_VERSION'));
  }

  async init(): Promise<void> {
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o755 });
    this.chown(this.opts.dir);
    mkdirSync(this.socketDir, { recursive: true, mode: 0o755 });
    this.chown(this.socketDir);
    if (this.initialised) return;
    if (this.opts.template && !this.templateFailed) {
      await this.asOwner('cp', ['-a', path.join(await this.template(), 'data'), this.dataDir]);
      this.passwordPending = true;
    } else {
      await this.initdb(this.dataDir, this.password, this.opts.dir);
    }
    // Replication connections from loopback need their own pg_hba line.
    appendFileSync(path.join(this.dataDir, 'pg_hba.conf'),
      'host replication all 127.0.0.1/32 scram-sha-256\n');
    const settings = { ...DEFAULT_CLUSTER_SETTINGS, ...this.opts.settings };
    const conf = Object.entries(settings).map(([k, v]) => `${k} = ${quoteConf(v)}`).join('\n');
    appendFileSync(path.join(this.dataDir, 'postgresql.conf'), `\n# pgflip\n${conf}\n`);
  }

  private async initdb(dataDir: string, password: string, scratch: string): Promise<void> {
    const pwfile = path.join(scratch, '.pwfile');
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    this.chown(pwfile);
    try {
      await this.pg('initdb', ['-D', dataDir, '-U', this.superuser, `--pwfile=${pwfile}`, ...INITDB_FLAGS]);
    } finally {
      rmSync(pwfile, { force: true });
    }
  }

  private templatePath(): string {
    const files = ['initdb', 'postgres'].map((b) => { const st = statSync(path.join(this.bins.dir, b)); return `${st.size}:${st.mtimeMs}`; });
    const key = createHash('sha1').update([realpathSync(this.bins.dir), ...files, this.superuser, ...INITDB_FLAGS].join('\n')).digest('hex').slice(0, 16);
    return path.join(os.tmpdir(), `pgflip-initdb-${key}`);
  }

  /** The cached initdb output (its `data` directory), made now when missing; its password is random and forgotten. */
  private async template(): Promise<string> {
    const dir = this.templatePath();
    const complete = (d: string) => existsSync(path.join(d, 'data', 'PG_VERSION')) && existsSync(path.join(d, 'data', 'global', 'pg_control'));
    if (complete(dir)) return dir;
    const partial = `${dir}.${process.pid}.${randomBytes(4).toString('hex')}.partial`;
    mkdirSync(partial, { mode: 0o755 });
    this.chown(partial);
    try {
      await this.initdb(path.join(partial, 'data'), randomBytes(18).toString('base64url'), partial);
      if (!complete(dir)) {
        rmSync(dir, { recursive: true, force: true }); // a broken leftover
        renameSync(partial, dir);
      }
    } catch (err) {
      if (!complete(dir)) throw err; // else a concurrent run made it first
    } finally {
      rmSync(partial, { recursive: true, force: true });
    }
    return dir;
  }

  /** A cluster copied from the template sets its own superuser password: over the socket, which trusts local connections. */
  private async setPassword(): Promise<void> {
    const c = new Client({ host: this.socketDir, port: this.port, user: this.superuser, database: 'postgres' });
    c.on('error', () => undefined);
    await c.connect();
    try {
      await c.query(`ALTER ROLE "${this.superuser.replace(/"/g, '""')}" PASSWORD '${this.password.replace(/'/g, "''")}'`);
    } finally {
      await c.end().catch(() => undefined);
    }
    this.passwordPending = false;
  }

  async start(): Promise<void> {
    try {
      await this.startServer();
      if (this.passwordPending) await this.setPassword();
    } catch (err) {
      if (!this.passwordPending) throw err;
      // a copy of a damaged template (a temp-dir cleaner, say): initdb instead, and the template made again next time
      await this.stop('immediate');
      rmSync(this.dataDir, { recursive: true, force: true });
      rmSync(this.templatePath(), { recursive: true, force: true });
      this.passwordPending = false;
      this.templateFailed = true;
      await this.startServer();
    }
  }

  private async startServer(): Promise<void> {
    if (!this.initialised) await this.init();
    // A restarted cluster keeps its port, so clients and proxies can reconnect.
    const fixed = this.opts.port ?? (this.port || undefined);
    for (let attempt = 0; ; attempt++) {
      this.port = fixed ?? (await freePort());
      try {
        await this.pg('pg_ctl', [
          'start', '-w', '-t', '60', '-D', this.dataDir, '-l', this.logFile,
          '-o', `-p ${this.port} -k ${this.socketDir}`,
        ]);
        return;
      } catch (err) {
        // A port taken between freePort() and bind: try another one.
        if (fixed !== undefined || attempt >= 3) throw new Error(`${(err as Error).message}\n${this.tailLog()}`);
      }
    }
  }

  /** mode: 'immediate' for tests and crash simulation, 'fast' for a clean stop. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!existsSync(path.join(this.dataDir, 'postmaster.pid'))) return;
    try {
      await this.pg('pg_ctl', ['stop', '-w', '-t', '60', '-m', mode, '-D', this.dataDir]);
    } catch {
      /* already stopped */
    }
  }

  /** pid of the running postmaster, if any. */
  postmasterPid(): number | undefined {
    try {
      return Number(readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return undefined;
    }
  }

  tailLog(lines = 20): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  async destroy(): Promise<void> {
    await this.stop('immediate');
    rmSync(this.opts.dir, { recursive: true, force: true });
  }
}

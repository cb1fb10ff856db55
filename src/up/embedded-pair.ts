/**
 * The blue and green PostgreSQL clusters of `pgflip up`: persistent under a data
 * directory, started on free ports, each with the application's database and role.
 * Generated secrets are kept in <dataDir>/secrets.json (mode 0600) so a restart
 * keeps working with the same credentials.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, escapeIdentifier, escapeLiteral } from 'pg';
import { Side, SIDES } from '../side';
import { LocalCluster } from '../pgcluster/local-cluster';

export interface Secrets {
  superuserPassword: string;
  appPassword: string;
  apiToken: string;
}

export interface EmbeddedSide {
  side: Side;
  cluster: LocalCluster;
  /** the application role's URL (what the proxy uses as this side's backend) */
  appUrl: string;
  /** the superuser's URL (what the controller and sync engine use) */
  adminUrl: string;
}

export const APP_DATABASE = 'app';
export const APP_ROLE = 'app';

const secret = () => randomBytes(18).toString('base64url');

export function loadSecrets(dataDir: string): Secrets {
  const file = path.join(dataDir, 'secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as Secrets;
  const s: Secrets = { superuserPassword: secret(), appPassword: secret(), apiToken: secret() };
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, JSON.stringify(s, null, 2), { mode: 0o600 });
  return s;
}

async function ensureAppDatabase(cluster: LocalCluster, appPassword: string): Promise<void> {
  const c = new Client({ connectionString: cluster.url('postgres') });
  await c.connect();
  try {
    const role = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [APP_ROLE]);
    const verb = role.rowCount ? 'ALTER' : 'CREATE';
    await c.query(`${verb} ROLE ${escapeIdentifier(APP_ROLE)} LOGIN PASSWORD ${escapeLiteral(appPassword)}`);
    const db = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [APP_DATABASE]);
    if (!db.rowCount) await c.query(`CREATE DATABASE ${escapeIdentifier(APP_DATABASE)} OWNER ${escapeIdentifier(APP_ROLE)}`);
  } finally {
    await c.end();
  }
  // Migrations run as the superuser, so the tables they create belong to it: the
  // application's role gets its privileges on them by default (database-wide, so
  // the sync engine rebuilding a side's schemas does not drop them).
  const a = new Client({ connectionString: cluster.url(APP_DATABASE) });
  await a.connect();
  try {
    const owner = escapeIdentifier(cluster.superuser);
    const role = escapeIdentifier(APP_ROLE);
    await a.query(`ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLES TO ${role}`);
    await a.query(`ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ${role}`);
  } finally {
    await a.end();
  }
}

/**
 * As root, PostgreSQL runs as the `postgres` OS user (it refuses root), which
 * cannot work in a data directory below a private one (/root, a 0700 temp dir):
 * say so instead of letting initdb fail with "Permission denied".
 */
function checkReachable(dataDir: string): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  try {
    execFileSync('runuser', ['-u', 'postgres', '--', 'test', '-x', dataDir], { stdio: 'ignore' });
  } catch {
    throw new Error(`--data-dir ${dataDir}: running as root, pgflip runs PostgreSQL as the "postgres" OS user, which cannot reach this directory (a parent directory is private); use a --data-dir that user can reach, e.g. under /var/tmp, or run as a regular user`);
  }
}

export async function startEmbeddedPair(dataDir: string, secrets: Secrets): Promise<EmbeddedSide[]> {
  // constructing a cluster creates the postgres OS user when root and it is missing
  const clusters = SIDES.map((side) => ({ side, cluster: new LocalCluster({ dir: path.join(dataDir, side), password: secrets.superuserPassword }) }));
  checkReachable(dataDir);
  const started = await Promise.allSettled(clusters.map(async ({ side, cluster }) => {
    // the caller holds the data dir's lock: a running server here was left by an up that was killed
    if (cluster.postmasterPid() !== undefined) await cluster.stop('fast');
    await cluster.start();
    await ensureAppDatabase(cluster, secrets.appPassword);
    const appUrl = `postgres://${APP_ROLE}:${encodeURIComponent(secrets.appPassword)}@${cluster.host}:${cluster.port}/${APP_DATABASE}`;
    return { side, cluster, appUrl, adminUrl: cluster.url(APP_DATABASE) };
  }));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    // one side failing must not leave the other running
    await Promise.all(clusters.map(({ cluster }) => cluster.stop('fast')));
    throw failed.reason;
  }
  return started.map((r) => (r as PromiseFulfilledResult<EmbeddedSide>).value);
}

/**
 * The blue and green PostgreSQL clusters of `pgflip up`: persistent under a data
 * directory, started on free ports, each with the application's database and role.
 * Generated secrets are kept in <dataDir>/secrets.json (mode 0600) so a restart
 * keeps working with the same credentials.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, escapeIdentifier, escapeLiteral } from 'pg';
import { Side, SIDES } from '../config';
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
}

export async function startEmbeddedPair(dataDir: string, secrets: Secrets): Promise<EmbeddedSide[]> {
  return Promise.all(SIDES.map(async (side) => {
    const cluster = new LocalCluster({ dir: path.join(dataDir, side), password: secrets.superuserPassword });
    await cluster.start();
    await ensureAppDatabase(cluster, secrets.appPassword);
    const appUrl = `postgres://${APP_ROLE}:${encodeURIComponent(secrets.appPassword)}@${cluster.host}:${cluster.port}/${APP_DATABASE}`;
    return { side, cluster, appUrl, adminUrl: cluster.url(APP_DATABASE) };
  }));
}

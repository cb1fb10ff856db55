/**
 * `pgflip up`: blue and green PostgreSQL, one proxy and one controller in this
 * process, sharing an in-memory state store — the whole product on one machine
 * with nothing but Node.
 */
import path from 'node:path';
import { defaultConfig, merge, PgflipConfig, validateConfig } from '../config';
import { logger } from '../observability/logger';
import { startProxy } from '../proxy';
import { startController } from '../controller/wiring';
import { APP_DATABASE, APP_ROLE, EmbeddedSide, loadSecrets, startEmbeddedPair } from './embedded-pair';
import { lockDataDir } from './lock';
import { DataDirStateStore, savedActiveSide } from './active-side';

export interface UpOptions {
  dataDir: string;
  proxyPort: number;
  apiPort: number;
  apiToken?: string;
  host?: string;
  /** controller.watchWindowSeconds: how long a risky flip is watched before it is finalized */
  watchSeconds?: number;
}

export interface UpInfo {
  appUrl: string;
  controllerUrl: string;
  apiToken: string;
  blueUrl: string;
  greenUrl: string;
}

export interface RunningStack {
  info: UpInfo;
  config: PgflipConfig;
  stop(): Promise<void>;
}

export async function up(opts: UpOptions): Promise<RunningStack> {
  const log = logger().child({ component: 'up' });
  const dataDir = path.resolve(opts.dataDir);
  const secrets = loadSecrets(dataDir);
  const apiToken = opts.apiToken ?? secrets.apiToken;
  const host = opts.host ?? '127.0.0.1';
  const unlock = lockDataDir(dataDir);
  let sides: EmbeddedSide[];
  try {
    sides = await startEmbeddedPair(dataDir, secrets);
  } catch (err) {
    unlock();
    throw err;
  }
  const [blue, green] = sides;
  const stops: Array<() => Promise<unknown>> = [async () => unlock(), () => Promise.all(sides.map((s) => s.cluster.stop('fast')))];
  const stop = async () => { for (const s of stops.reverse()) await s().catch((err) => log.error({ err }, 'stop failed')); };
  try {
    const config = merge(defaultConfig(), {
      // the side the last run ended on (a risky migration flips it)
      active: savedActiveSide(dataDir) ?? 'blue',
      // the proxy reaches each side as the application's role, so fencing the old
      // side after a flip binds it; the controller and sync engine as the superuser
      blue: { url: blue.appUrl, adminUrl: blue.adminUrl },
      green: { url: green.appUrl, adminUrl: green.adminUrl },
      app: { database: APP_DATABASE, user: APP_ROLE, password: secrets.appPassword },
      proxy: {
        listen: { host, port: opts.proxyPort },
        admin: { host, port: 0 },
        users: { [APP_ROLE]: { password: secrets.appPassword } },
      },
      controller: {
        listen: { host, port: opts.apiPort },
        apiToken,
        backupDir: path.join(dataDir, 'backups'),
        auditLog: path.join(dataDir, 'audit.log'),
        ...(opts.watchSeconds !== undefined ? { watchWindowSeconds: opts.watchSeconds } : {}),
      },
    }) as PgflipConfig;
    validateConfig(config, ['backends', 'apiToken']);
    const store = new DataDirStateStore(dataDir);
    stops.push(() => store.close());
    const proxy = await startProxy(config, { store });
    stops.push(() => proxy.close());
    const controller = await startController(config, { store });
    stops.push(() => controller.close());
    const info: UpInfo = {
      appUrl: `postgres://${APP_ROLE}:${encodeURIComponent(secrets.appPassword)}@${host}:${proxy.port}/${APP_DATABASE}`,
      controllerUrl: controller.url,
      apiToken,
      blueUrl: blue.appUrl,
      greenUrl: green.appUrl,
    };
    return { info, config, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

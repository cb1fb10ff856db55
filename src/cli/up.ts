import { Command, InvalidArgumentError } from 'commander';
import { up } from '../up/stack';

const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port from 0 to 65535');
  return n;
};

const seconds = (v: string): number => {
  const n = Number(v);
  if (!v.trim() || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of seconds >= 0');
  return n;
};

export function registerUp(program: Command): void {
  program.command('up')
    .description('blue and green PostgreSQL, a proxy and a controller on this machine (Ctrl-C stops everything)')
    .option('--data-dir <dir>', 'where the clusters and generated secrets live', '.pgflip')
    .option('--proxy-port <n>', 'application port of the proxy', port, 6432)
    .option('--api-port <n>', 'controller HTTP API port', port, 8080)
    .option('--api-token <token>', 'controller API token (default: generated, kept in the data dir)')
    .option('--watch-seconds <n>', 'how long a risky migration watches the new side before finalizing (controller.watchWindowSeconds, default 60)', seconds)
    .option('--json', 'print one JSON line with the URLs and token once everything is ready')
    .action(async (o: { dataDir: string; proxyPort: number; apiPort: number; apiToken?: string; watchSeconds?: number; json?: boolean }) => {
      // Listen before anything starts: a signal while the clusters start must stop them once they
      // are up, not kill this process and leave both servers running. Repeats are ignored so a
      // second Ctrl-C cannot cut the stop short.
      const signalled = new Promise<void>((resolve) => {
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => resolve());
      });
      // A parent that exited closed our pipes: the output is lost, the stop must not be.
      for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
      let stopping = false;
      const starting = up({ dataDir: o.dataDir, proxyPort: o.proxyPort, apiPort: o.apiPort, apiToken: o.apiToken, watchSeconds: o.watchSeconds });
      void signalled.then(() => { stopping = true; });
      const stack = await starting;
      if (stopping) {
        await stack.stop();
        return;
      }
      const { info } = stack;
      if (o.json) {
        process.stdout.write(`${JSON.stringify(info)}\n`);
      } else {
        process.stdout.write([
          'pgflip is up.',
          `  application URL  ${info.appUrl}`,
          `  controller       ${info.controllerUrl}   (API token: ${info.apiToken})`,
          `  status page      ${info.controllerUrl}/   (open in a browser; actions ask for the API token)`,
          `  blue             ${info.blueUrl}`,
          `  green            ${info.greenUrl}`,
          '',
          'Try:',
          `  export PGFLIP_CONTROLLER_URL=${info.controllerUrl} PGFLIP_API_TOKEN=${info.apiToken}`,
          '  scripts/migration/execute-migration.sh --type safe --yes migrations/000_example_schema.sql',
          '  scripts/migration/execute-migration.sh --type risky --yes migrations/002_drop_unused_table.sql',
          'or, on a data dir of its own, the whole story with an application writing:  npm run demo',
          'Ctrl-C stops everything.',
          '',
        ].join('\n'));
      }
      await signalled;
      await stack.stop();
    });
}

import { Command, InvalidArgumentError } from 'commander';
import { DemoUsageError, runDemo } from '../demo/story';

const count = (min: number) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
  return n;
};

export function registerDemo(program: Command): void {
  program.command('demo')
    .description('the whole story on the embedded default: writes through the proxy, a risky migration, the flip, and a summary (exit 0 only if no acknowledged write was lost and no client saw an error)')
    .option('--data-dir <dir>', 'a new or empty directory for the clusters (default: a temporary one, removed after a successful run)')
    .option('--writers <n>', 'client connections writing through the proxy', count(1), 4)
    .option('--seed-rows <n>', 'users rows present before the migration', count(0), 20_000)
    .option('--watch-seconds <n>', 'how long the new side is watched after the flip', count(0), 5)
    .action(async (o: { dataDir?: string; writers: number; seedRows: number; watchSeconds: number }) => {
      try {
        const s = await runDemo({ ...o, print: (l) => process.stdout.write(`${l}\n`) });
        process.exitCode = s.ok ? 0 : 1;
      } catch (err) {
        if (err instanceof DemoUsageError) {
          process.stderr.write(`pgflip demo: ${err.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw err;
      }
    });
}

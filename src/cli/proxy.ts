import { Command } from 'commander';

export function registerProxy(program: Command): void {
  program.command('proxy').description('run the wire-protocol proxy (not yet available)')
    .action(() => { process.stderr.write('pgflip proxy: not yet available\n'); process.exitCode = 1; });
}

import { Command } from 'commander';

export function registerUp(program: Command): void {
  program.command('up').description('blue and green PostgreSQL, proxy and controller on this machine')
    .action(() => { process.stdout.write('pgflip up: not yet available\n'); });
}

import { Command } from 'commander';

export function registerValidate(program: Command): void {
  program.command('validate').description('classify migration files (not yet available)').argument('<file...>')
    .action(() => { process.stderr.write('pgflip validate: not yet available\n'); process.exitCode = 1; });
}

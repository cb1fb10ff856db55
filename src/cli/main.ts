#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { registerValidate } from './validate';
import { registerProxy } from './proxy';
import { registerUp } from './up';
import { registerController } from './controller';
import { registerMigrate } from './migrate';
import { registerSwitch } from './switch';
import { registerStatus } from './status';
import { registerRollback } from './rollback';
import { registerDemo } from './demo';
import { registerVersions } from './versions';

/** Exit codes of the CLI: a contract (docs/architecture.md). */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export function buildProgram(): Command {
  const program = new Command('pgflip')
    .description('zero-downtime PostgreSQL schema migrations on a blue/green pair')
    .version(require('../../package.json').version)
    .exitOverride()
    .showHelpAfterError();
  registerValidate(program);
  registerProxy(program);
  registerUp(program);
  registerController(program);
  registerMigrate(program);
  registerSwitch(program);
  registerStatus(program);
  registerRollback(program);
  registerDemo(program);
  registerVersions(program);
  return program;
}

export async function main(argv = process.argv): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return process.exitCode === undefined ? EXIT.ok : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are not errors; everything else commander rejects is a usage error
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    process.stderr.write(`pgflip: ${(err as Error).message}\n`);
    return EXIT.failed;
  }
}

if (require.main === module) {
  main().then((code) => { process.exitCode = code; });
}

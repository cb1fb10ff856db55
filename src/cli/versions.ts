import { Command } from 'commander';
import { ControllerClient } from '../controller/client';

interface Rec { id: string; name: string; compat?: { schema: string; side: string; state: string } }

/** `pgflip release` and `pgflip finalize`: the previous schema version a risky migration serves. */
export function registerVersions(program: Command): void {
  program.command('release')
    .description('new sessions get the new schema version of a migration; sessions alive keep theirs')
    .argument('<migration-id>')
    .action(async (id: string) => {
      const r = await new ControllerClient().post<Rec>(`/migrations/${encodeURIComponent(id)}/release`, {});
      process.stdout.write(`${r.name}: new sessions use the new schema; sessions already connected keep ${r.compat?.schema ?? 'theirs'} until they end or \`pgflip finalize ${r.id}\`\n`);
    });
  program.command('finalize')
    .description('drop the previous schema version of a migration (its compatibility schema): sessions still on it see the new schema')
    .argument('<migration-id>')
    .action(async (id: string) => {
      const r = await new ControllerClient().post<Rec>(`/migrations/${encodeURIComponent(id)}/finalize`, {});
      process.stdout.write(`${r.name}: previous schema version dropped (${r.compat?.schema ?? '?'} on ${r.compat?.side ?? '?'})\n`);
    });
}

import { Command } from 'commander';
import { confirm, ControllerClient } from '../controller/client';

interface Point { id: string; file: string; migrationId: string; side: string; database: string; createdAt: string; bytes: number }

export function registerRollback(program: Command): void {
  const cmd = program.command('rollback').description('rollback points: plain SQL dumps taken before migrations');
  cmd.command('list')
    .description('rollback points, newest first')
    .option('--json', 'as JSON')
    .action(async (o: { json?: boolean }) => {
      const points = await new ControllerClient().get<Point[]>('/rollback-points');
      if (o.json) { process.stdout.write(`${JSON.stringify(points, null, 2)}\n`); return; }
      if (!points.length) { process.stdout.write('no rollback points\n'); return; }
      for (const p of points) process.stdout.write(`${p.id}  ${p.side}  ${p.database}  ${p.createdAt}  ${p.bytes} bytes\n`);
    });
  cmd.command('restore')
    .description('replace a side\'s schema and data with a rollback point')
    .argument('<id>', 'rollback point id (from rollback list)')
    .option('--yes', 'do not ask for confirmation')
    .action(async (id: string, o: { yes?: boolean }) => {
      const client = new ControllerClient();
      const point = (await client.get<Point[]>('/rollback-points')).find((p) => p.id === id);
      if (!point) throw new Error(`rollback point ${id} not found (see pgflip rollback list)`);
      if (!o.yes) {
        if (!process.stdin.isTTY) throw new Error('restore replaces a side\'s schema and data: pass --yes when stdin is not a terminal');
        if (!(await confirm(`Replace the schema and data of ${point.side} (${point.database}) with ${id} from ${point.createdAt}?`))) {
          process.stderr.write('cancelled\n');
          process.exitCode = 1;
          return;
        }
      }
      const r = await client.post<{ restored: string; side: string }>(`/rollback-points/${encodeURIComponent(id)}/restore`, { confirm: true }, 30 * 60_000);
      process.stdout.write(`restored ${r.restored} to ${r.side}\n`);
    });
}

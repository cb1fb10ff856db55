import { Command, Argument } from 'commander';
import { ControllerClient } from '../controller/client';

export function registerSwitch(program: Command): void {
  program.command('switch')
    .description('flip every proxy to a side through the controller (pause at transaction boundaries, then switch)')
    .addArgument(new Argument('<side>', 'target side').choices(['blue', 'green']))
    .option('--force', 'switch although the target does not hold the migrations the active side holds (it then serves old data)')
    .action(async (side: 'blue' | 'green', o: { force?: boolean }) => {
      const r = await new ControllerClient().post<{ active: string; epoch: number; pauseMs?: number; changed: boolean }>('/switch', { target: side, ...(o.force ? { force: true } : {}) }, 120_000);
      process.stdout.write(r.changed
        ? `active: ${r.active} (epoch ${r.epoch}${r.pauseMs !== undefined ? `, pause ${Math.round(r.pauseMs)} ms` : ''})\n`
        : `active: ${r.active} already (epoch ${r.epoch})\n`);
    });
}

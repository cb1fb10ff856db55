import { Command } from 'commander';
import { ControllerClient, UnreachableError } from '../controller/client';

interface SideView { up: boolean; active: boolean; latencyMs?: number; error?: string; url?: string; lag?: { seconds: number; bytes: number } | null }
interface Status {
  active: string; epoch: number; health: string; leader: boolean;
  sides: Record<'blue' | 'green', SideView>;
  migration: { id: string; name: string; type: string; state: string; progress: number; steps: Array<{ name: string; state: string }> } | null;
  proxies: Array<{ id: string }>;
}
interface Health { status: string; components: Record<string, { up: boolean | null; leader?: boolean; count?: number; latencyMs?: number; error?: string; active?: boolean }> }

const sideLine = (name: string, s: SideView): string =>
  `${name}: ${s.up ? 'up' : 'DOWN'}${s.active ? ' (active)' : ''}${s.latencyMs !== undefined ? ` ${s.latencyMs} ms` : ''}${s.error ? ` — ${s.error}` : ''}${s.lag ? ` lag ${s.lag.seconds.toFixed(1)}s/${s.lag.bytes}B` : ''}`;

/** status, health (check-migration-health.sh) and baseline (performance-baseline.sh). */
export function registerStatus(program: Command): void {
  program.command('status')
    .description('active side, epoch, health of both sides, proxies, the running migration')
    .option('--json', 'print the controller\'s /status as JSON')
    .action(async (o: { json?: boolean }) => {
      const s = await new ControllerClient().get<Status>('/status');
      if (o.json) { process.stdout.write(`${JSON.stringify(s, null, 2)}\n`); return; }
      const lines = [
        `active: ${s.active} (epoch ${s.epoch})`,
        `health: ${s.health}${s.leader ? '' : ' (controller is not the leader)'}`,
        sideLine('blue', s.sides.blue),
        sideLine('green', s.sides.green),
        `proxies: ${s.proxies.length ? s.proxies.map((p) => p.id).join(', ') : 'none registered'}`,
        s.migration ? `migration: ${s.migration.name} (${s.migration.type}, id ${s.migration.id}) ${s.migration.state} ${Math.round(s.migration.progress * 100)}% — ${s.migration.steps.at(-1)?.name ?? 'starting'}` : 'migration: none running',
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  program.command('health')
    .description('one line per component; exit 0 healthy, 1 degraded, 2 controller unreachable')
    .action(async () => {
      let h: Health;
      try {
        h = await new ControllerClient().get<Health>('/health');
      } catch (err) {
        process.stdout.write(`controller: UNREACHABLE — ${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      const c = h.components;
      const lines = [
        `controller: up${c.controller?.leader ? ' (leader)' : ' (not the leader)'}`,
        `proxies: ${c.proxies?.count ? `${c.proxies.count} live` : 'none registered'}`,
        `blue: ${c.blue?.up ? 'up' : 'DOWN'}${c.blue?.active ? ' (active)' : ''}${c.blue?.latencyMs !== undefined ? ` ${c.blue.latencyMs} ms` : ''}${c.blue?.error ? ` — ${c.blue.error}` : ''}`,
        `green: ${c.green?.up ? 'up' : 'DOWN'}${c.green?.active ? ' (active)' : ''}${c.green?.latencyMs !== undefined ? ` ${c.green.latencyMs} ms` : ''}${c.green?.error ? ` — ${c.green.error}` : ''}`,
      ];
      process.stdout.write(`${lines.join('\n')}\nstatus: ${h.status}\n`);
      process.exitCode = h.status === 'ok' ? 0 : 1;
    });

  program.command('baseline')
    .description('the p95 latency and error rate the post-flip watch compares with')
    .option('--update', 'measure the active side through the proxies now and store it')
    .option('--seconds <n>', 'measurement length with --update', '5')
    .action(async (o: { update?: boolean; seconds: string }) => {
      const client = new ControllerClient();
      const b = o.update
        ? await client.post<{ p95Ms: number; errorRate: number; queries: number; measuredAt: string }>('/baseline', { seconds: Number(o.seconds) }, (Number(o.seconds) + 30) * 1000)
        : await client.get<{ p95Ms: number; errorRate: number; queries: number; measuredAt: string } | null>('/baseline');
      if (!b) { process.stdout.write('baseline: none stored (run with --update while traffic flows)\n'); return; }
      process.stdout.write(`baseline: p95 ${b.p95Ms} ms, error rate ${(b.errorRate * 100).toFixed(2)}%, ${b.queries} queries, measured ${b.measuredAt}\n`);
    });
  void UnreachableError;
}

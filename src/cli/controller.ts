import { Command } from 'commander';
import { loadConfig, parseHostPort } from '../config';
import { startController } from '../controller/wiring';

export function registerController(program: Command): void {
  program.command('controller')
    .description('run the controller: HTTP API, orchestrator, rollback points')
    .option('--config <file>', 'pgflip.yaml or JSON (env overrides the file, flags override env)')
    .option('--listen <host:port>', 'API address (default 127.0.0.1:8080)')
    .option('--blue <url>', 'blue side URL (BLUE_DATABASE_URL)')
    .option('--green <url>', 'green side URL (GREEN_DATABASE_URL)')
    .option('--backup-dir <dir>', 'rollback points directory (PGFLIP_BACKUP_DIR)')
    .option('--audit-log <file>', 'audit log file (PGFLIP_AUDIT_LOG)')
    .action(async (o: { config?: string; listen?: string; blue?: string; green?: string; backupDir?: string; auditLog?: string }) => {
      const controller: Record<string, unknown> = {};
      if (o.listen) controller.listen = parseHostPort('--listen', o.listen);
      if (o.backupDir) controller.backupDir = o.backupDir;
      if (o.auditLog) controller.auditLog = o.auditLog;
      const cfg = loadConfig({
        file: o.config,
        flags: { controller, ...(o.blue ? { blue: { url: o.blue } } : {}), ...(o.green ? { green: { url: o.green } } : {}) },
        require: ['backends', 'apiToken'],
      });
      const handle = await startController(cfg);
      process.stdout.write(`pgflip controller listening on ${handle.url} (state store: ${handle.store.kind})\n`);
      await new Promise<void>((resolve) => {
        const stop = () => { handle.close().finally(resolve); };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}

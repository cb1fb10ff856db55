import { cleanupClusters } from './global-teardown';

/** Names this run, and clears clusters that earlier runs (now dead) left behind. */
export default async function globalSetup(): Promise<void> {
  process.env.PGFLIP_TEST_RUN = `run${process.pid}`;
  await cleanupClusters((name) => {
    const m = /^(?:run|solo)(\d+)-/.exec(name);
    if (!m) return false;
    try { process.kill(Number(m[1]), 0); return false; } catch { return true; }
  });
}

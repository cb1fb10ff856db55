import { readdirSync } from 'node:fs';
import path from 'node:path';
import { LocalCluster } from '../../src/pgcluster/local-cluster';
import { REGISTRY_ROOT, runId } from './clusters';

/** Stops and deletes every cluster of this run that a failed or timed-out test left behind. */
export default async function globalTeardown(): Promise<void> {
  await cleanupClusters((name) => name.startsWith(`${runId()}-`));
}

export async function cleanupClusters(match: (dirName: string) => boolean): Promise<number> {
  let names: string[];
  try { names = readdirSync(REGISTRY_ROOT); } catch { return 0; }
  const left = names.filter(match);
  await Promise.all(left.map((n) => new LocalCluster({ dir: path.join(REGISTRY_ROOT, n) }).destroy()));
  return left.length;
}

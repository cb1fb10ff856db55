/**
 * What a new leader repairs before anything else, whatever its predecessor was
 * doing: a flip (of a migration or a manual switch) left pausing, and a fence
 * left on the side serving traffic. Each flow then ends its own unfinished
 * migration (Flow.recover).
 */
import type { Side } from '../side';
import { logger } from '../observability/logger';
import type { StateStore } from '../state/store';
import type { AuditLog } from './audit';
import type { FencePort } from './ports';
import { errMsg } from './steps';

export async function repairAfterRestart(o: { store: StateStore; audit: AuditLog; fence?: FencePort; activeSide: () => Promise<{ active: Side }> }): Promise<void> {
  // a flip left pausing by a dead controller: release the proxies first
  const flip = await o.store.currentFlip();
  if (flip?.state === 'pausing') await o.store.abortFlip(flip.id, 'controller restarted');
  await unfenceActive(o);
}

/**
 * The side serving traffic must take writes. A flip fences the side it leaves inside its
 * pause, before the commit: a controller that died between the two left the active side
 * fenced, with nobody to lift the fence.
 */
async function unfenceActive(o: { audit: AuditLog; fence?: FencePort; activeSide: () => Promise<{ active: Side }> }): Promise<void> {
  if (!o.fence) return;
  try {
    const { active } = await o.activeSide();
    if (!(await o.fence.isFenced(active))) return;
    await o.fence.unfence(active);
    logger().warn({ side: active }, 'the active side was fenced (a flip interrupted after fencing it): fence lifted');
    await o.audit.write({ who: 'controller', via: 'controller', action: 'fence.lift', target: active, outcome: 'done', detail: { reason: 'the active side was found fenced at start-up' } });
  } catch (err) {
    logger().error({ err: errMsg(err) }, 'could not check or lift a fence on the active side');
  }
}

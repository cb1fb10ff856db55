/**
 * A manual flip (`POST /switch`) with the guarantees of a migration's flip:
 * inside the pause the target is unfenced and the side left is fenced; an
 * aborted flip lifts that fence again and traffic stays where it was.
 */
import type { Side } from '../side';
import type { FencePort, FlipPort } from './ports';

export interface ManualSwitchResult { active: Side; epoch: number; pauseMs?: number; changed: boolean }

export async function switchSides(o: { flipper: FlipPort; fence?: FencePort }, from: { active: Side; epoch: number }, target: Side): Promise<ManualSwitchResult> {
  const { active, epoch } = from;
  if (active === target) return { active, epoch, changed: false };
  // the side switched to was fenced when traffic last left it: an abort must leave it so again
  let targetWasFenced = false;
  const r = await o.flipper.flip({
    target, deadlineMs: 10_000,
    beforeCommit: async () => {
      targetWasFenced = (await o.fence?.isFenced(target)) ?? false;
      await o.fence?.unfence(target);
      await o.fence?.fence(active);
    },
    onAbort: async () => {
      await o.fence?.unfence(active);
      if (targetWasFenced) await o.fence?.fence(target);
    },
  });
  if (!r.committed) {
    throw new Error(`switch to ${target} aborted: ${r.reason ?? 'unknown'}; traffic stays on ${active}`);
  }
  return { active: target, epoch: r.epoch, pauseMs: r.pauseMs, changed: true };
}

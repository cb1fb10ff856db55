/**
 * A stand-in for the proxy in fleet-protocol tests: it keeps the side and
 * epoch it serves and records every call, so tests can assert what the fleet
 * protocol made each proxy do. Behaviours model what a real proxy may answer.
 */
import type { Side } from '../../src/side';
import type { FlipParticipant, PauseResult, SwitchResult } from '../../src/switch/participant';

export type PauseBehaviour =
  | { kind: 'pause' } // every session reaches a boundary at once
  | { kind: 'blocked'; sessions: string[] } // sessions stay in a transaction until the deadline
  | { kind: 'silent' }; // never answers (hung proxy)

export class RecordingParticipant implements FlipParticipant {
  side: Side | null = null;
  epoch = -1;
  /** serving: clients flow; held: paused at boundaries */
  state: 'serving' | 'held' = 'serving';
  readonly calls: string[] = [];
  private releasePause: ((r: PauseResult) => void) | null = null;

  constructor(readonly id: string, public behaviour: PauseBehaviour = { kind: 'pause' }, private readonly sessions = 3, private readonly onCall?: (call: string) => void) {}

  private record(call: string): void {
    this.calls.push(call);
    this.onCall?.(call);
  }

  pause(deadline: number, _opts?: { hold?: boolean }): Promise<PauseResult> {
    this.record('pause');
    this.state = 'held';
    const b = this.behaviour;
    if (b.kind === 'pause') return Promise.resolve({ paused: true });
    return new Promise((resolve) => {
      this.releasePause = resolve;
      if (b.kind === 'blocked') setTimeout(() => resolve({ paused: false, blocked: b.sessions }), Math.max(0, deadline - Date.now()));
    });
  }

  async switchTo(target: Side, epoch: number): Promise<SwitchResult> {
    this.record(`switchTo:${target}:${epoch}`);
    this.side = target;
    this.epoch = epoch;
    return { carried: this.sessions, terminated: 0 };
  }

  resume(): void {
    this.record('resume');
    this.state = 'serving';
  }

  abort(): void {
    this.record('abort');
    this.state = 'serving';
    this.releasePause?.({ paused: false });
    this.releasePause = null;
  }

  currentEpoch(): number {
    return this.epoch;
  }

  currentSide(): Side {
    if (!this.side) throw new Error(`${this.id}: no side adopted yet`);
    return this.side;
  }

  async adopt(active: Side, epoch: number): Promise<void> {
    this.record(`adopt:${active}:${epoch}`);
    this.side = active;
    this.epoch = epoch;
  }
}

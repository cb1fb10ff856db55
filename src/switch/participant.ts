/**
 * What a proxy implements so that a FleetMember can drive it through a flip
 * (the per-proxy switch of docs/proxy.md, the fleet flip of docs/fleet.md). The proxy never sees the store
 * or the messages; the FleetMember never sees sessions.
 */
import type { Side } from '../side';

export interface PauseResult {
  /** every session holds at a transaction boundary (ReadyForQuery `I`) */
  paused: boolean;
  /** when not paused: the sessions still inside a transaction at the deadline, for the outcome */
  blocked?: string[];
}

export interface SwitchResult {
  /** sessions moved to the target with their state replayed */
  carried: number;
  /** pinned sessions ended with an ErrorResponse (policy `terminate`) */
  terminated: number;
  /**
   * when the proxy began holding clients (ms since 1970), if later than the
   * receipt of pause (a proxy may prepare the target before it holds anyone);
   * the reported pause then runs from here to resume
   */
  heldSince?: number;
}

export interface FlipParticipant {
  /** unique in the fleet; the registration id */
  readonly id: string;
  /**
   * Holds new client bytes at transaction boundaries and new connections.
   * Resolves as soon as all sessions hold, or at `deadline` (ms since 1970 on
   * this machine's clock) with `paused: false` and the blocking sessions.
   * Must also resolve (paused: false) promptly when abort() is called meanwhile.
   */
  pause(deadline: number, opts?: { hold?: boolean }): Promise<PauseResult>;
  /** moves every held session to `target`; sessions stay held until resume() */
  switchTo(target: Side, epoch: number): Promise<SwitchResult>;
  /** releases held sessions and connections (after switchTo) */
  resume(): void;
  /** gives up the pause: all sessions continue on the side they were on; no client sees an error */
  abort(): void;
  /** the epoch the proxy is serving under */
  currentEpoch(): number;
  /** the side the proxy is serving (its last committed one) */
  currentSide(): Side;
  /**
   * Serve `active` under `epoch` from now on, without a coordinated pause: at
   * start-up before the first client is accepted, and when the proxy finds it
   * missed a flip (it was cut off from the store). Existing sessions move as in
   * switchTo.
   */
  adopt(active: Side, epoch: number): Promise<void>;
}

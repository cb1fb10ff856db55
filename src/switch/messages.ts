/**
 * The fleet flip's messages (docs/fleet.md). Commands go from the controller to
 * every proxy on CHANNELS.flip; acknowledgements come back on CHANNELS.flipAcks.
 * They travel as JSON; anything that does not parse as one of these is ignored.
 */
import type { Side } from '../side';

export interface PauseCommand {
  type: 'pause';
  flipId: string;
  /** the epoch being left, and the side that serves under it */
  fromEpoch: number;
  from: Side;
  /** fromEpoch + 1 if the flip commits */
  epoch: number;
  target: Side;
  /** how long sessions have to reach a boundary, counted from receipt (clocks differ) */
  timeoutMs: number;
  /** after the deadline, how long a paused member waits for switch/abort before asking the store */
  commitWindowMs: number;
  /**
   * A hold (maintenance): clients are held at transaction boundaries and released where they
   * are; this flip never commits, so nothing is prepared on the other side, which may be down.
   */
  hold?: boolean;
}

export interface SwitchCommand { type: 'switch'; flipId: string; epoch: number; target: Side }
export interface AbortCommand { type: 'abort'; flipId: string; reason: string }
export type FlipCommand = PauseCommand | SwitchCommand | AbortCommand;

export interface PausedAck { type: 'paused'; flipId: string; proxyId: string; paused: boolean; blocked?: string[] }
export interface SwitchedAck {
  type: 'switched'; flipId: string; proxyId: string; epoch: number;
  carried: number; terminated: number;
  /** how long this proxy held its clients: from receipt of pause (or, if later, from when it began holding) to resume */
  pauseMs: number;
  /** switchTo failed; the proxy re-synchronised with adopt() instead */
  error?: string;
}
export interface AbortedAck { type: 'aborted'; flipId: string; proxyId: string; pauseMs: number }
export type FlipAck = PausedAck | SwitchedAck | AbortedAck;

const isSide = (v: unknown): v is Side => v === 'blue' || v === 'green';
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function parseFlipCommand(m: unknown): FlipCommand | null {
  if (typeof m !== 'object' || m === null) return null;
  const o = m as Record<string, unknown>;
  if (!isStr(o.flipId)) return null;
  switch (o.type) {
    case 'pause':
      return isNum(o.fromEpoch) && isNum(o.epoch) && isSide(o.from) && isSide(o.target) && isNum(o.timeoutMs) && isNum(o.commitWindowMs)
        ? (o as unknown as PauseCommand) : null;
    case 'switch':
      return isNum(o.epoch) && isSide(o.target) ? (o as unknown as SwitchCommand) : null;
    case 'abort':
      return typeof o.reason === 'string' ? (o as unknown as AbortCommand) : null;
    default:
      return null;
  }
}

export function parseFlipAck(m: unknown): FlipAck | null {
  if (typeof m !== 'object' || m === null) return null;
  const o = m as Record<string, unknown>;
  if (!isStr(o.flipId) || !isStr(o.proxyId)) return null;
  switch (o.type) {
    case 'paused': return typeof o.paused === 'boolean' ? (o as unknown as PausedAck) : null;
    case 'switched': return isNum(o.carried) && isNum(o.terminated) && isNum(o.pauseMs) ? (o as unknown as SwitchedAck) : null;
    case 'aborted': return isNum(o.pauseMs) ? (o as unknown as AbortedAck) : null;
    default: return null;
  }
}

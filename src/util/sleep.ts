/**
 * The one sleep. Without a signal it always waits the full time. With one it
 * ends early when the signal aborts, and rejects with the signal's reason
 * (at once when the signal is already aborted): the caller's catch decides
 * whether an abort is an error or only the end of a wait.
 */
import { setTimeout as delay } from 'node:timers/promises';

export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (!signal) { await delay(ms); return; }
  try {
    await delay(ms, undefined, { signal });
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw err;
  }
}

/** `p`'s value, or `fallback` when `p` takes longer than `ms` or rejects (p keeps running). */
export function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return new Promise<T>((resolve) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    p.then((v) => { clearTimeout(timer); resolve(v); }, () => { clearTimeout(timer); resolve(fallback); });
  });
}

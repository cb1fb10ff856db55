/**
 * Cancel keys. Each client gets a BackendKeyData made by the proxy; the map
 * from that key to the session's current backend (host, port and the
 * backend's real key) lives behind CancelKeyStore so that a fleet can share it
 * (a Redis implementation can answer for sessions of other proxies) and a
 * switch can repoint it.
 */
import { randomInt } from 'node:crypto';
import net from 'node:net';
import { cancelRequest } from './protocol/serializer';

export interface CancelTarget { host: string; port: number; pid: number; secret: number }

export interface CancelKeyStore {
  set(pid: number, secret: number, target: CancelTarget): Promise<void> | void;
  get(pid: number, secret: number): Promise<CancelTarget | undefined> | CancelTarget | undefined;
  delete(pid: number): Promise<void> | void;
}

export class MemoryCancelKeyStore implements CancelKeyStore {
  private readonly keys = new Map<number, { secret: number; target: CancelTarget }>();
  set(pid: number, secret: number, target: CancelTarget): void { this.keys.set(pid, { secret, target }); }
  get(pid: number, secret: number): CancelTarget | undefined {
    const e = this.keys.get(pid);
    return e && e.secret === secret ? e.target : undefined;
  }
  delete(pid: number): void { this.keys.delete(pid); }
  has(pid: number): boolean { return this.keys.has(pid); }
}

/** A fresh (pid, secret) for a client: pid positive and unique in this store, secret random. */
export function newCancelKey(inUse: (pid: number) => boolean): { pid: number; secret: number } {
  for (;;) {
    const pid = randomInt(1, 0x7fffffff);
    if (!inUse(pid)) return { pid, secret: randomInt(-0x80000000, 0x7fffffff) };
  }
}

/** Send a CancelRequest to a backend; like libpq, wait for the server to close the connection. */
export function sendCancel(t: CancelTarget, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: t.host, port: t.port });
    const timer = setTimeout(() => s.destroy(), timeoutMs);
    s.once('connect', () => s.end(cancelRequest(t.pid, t.secret)));
    s.on('data', () => undefined);
    s.once('error', () => undefined);
    s.once('close', () => { clearTimeout(timer); resolve(); });
  });
}

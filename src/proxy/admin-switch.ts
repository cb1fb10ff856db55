/**
 * `POST /switch` on the proxy's admin port: a manual fleet flip without a
 * controller. It runs the same two-phase FlipCoordinator flip a controller
 * runs (every proxy of the fleet pauses, switches and resumes) and answers
 * with the outcome: pause per proxy, sessions carried and terminated, and on
 * failure why and which sessions blocked it.
 *
 * Authorised by `Authorization: Bearer <PGFLIP_API_TOKEN>` (controller.apiToken);
 * without a configured token the call is refused. It takes the leader lock for
 * the duration of the flip, so it never races a running controller.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type http from 'node:http';
import type { Logger } from 'pino';
import type { PgflipConfig } from '../config';
import { StateStoreError, StateStoreUnreachable, type StateStore } from '../state/store';
import { FlipCoordinator } from '../switch/coordinator';

export const DEFAULT_SWITCH_DEADLINE_MS = 5000;
const MAX_DEADLINE_MS = 600_000;
const MAX_BODY = 64 * 1024;

export interface AdminReply { status: number; body: unknown }

export class AdminSwitch {
  private coordinator: FlipCoordinator | null = null;

  constructor(private readonly store: StateStore, private readonly cfg: PgflipConfig, private readonly proxyId: string, private readonly log: Logger) {}

  async close(): Promise<void> {
    await this.coordinator?.close();
  }

  async handle(req: http.IncomingMessage): Promise<AdminReply> {
    const token = this.cfg.controller.apiToken;
    if (!token) return { status: 403, body: { error: 'POST /switch is disabled: set PGFLIP_API_TOKEN (controller.apiToken) to enable it' } };
    if (!bearerMatches(req.headers.authorization, token)) {
      this.log.warn({ remote: req.socket.remoteAddress }, 'unauthorised POST /switch refused');
      return { status: 401, body: { error: 'missing or wrong bearer token (Authorization: Bearer <PGFLIP_API_TOKEN>)' } };
    }
    let body: Record<string, unknown>;
    try {
      body = await readJson(req);
    } catch (e) {
      return { status: 400, body: { error: (e as Error).message } };
    }
    const target = body.target;
    if (target !== 'blue' && target !== 'green') return { status: 400, body: { error: `body.target must be "blue" or "green" (got ${JSON.stringify(target)})` } };
    const deadlineMs = body.deadlineMs ?? DEFAULT_SWITCH_DEADLINE_MS;
    if (!Number.isInteger(deadlineMs) || (deadlineMs as number) <= 0 || (deadlineMs as number) > MAX_DEADLINE_MS) {
      return { status: 400, body: { error: `body.deadlineMs must be an integer from 1 to ${MAX_DEADLINE_MS} (got ${JSON.stringify(body.deadlineMs)})` } };
    }

    this.coordinator ??= new FlipCoordinator(this.store);
    const leaseMs = (deadlineMs as number) + 5000 + 15_000;
    // the store down (or failing) is a 503 naming why, with the store's own error as detail
    const unavailable = (e?: Error): AdminReply => ({
      status: 503,
      body: { error: new StateStoreUnreachable(`switch to ${target}`).message, ...(e && !(e instanceof StateStoreUnreachable) ? { detail: e.message } : {}) },
    });
    if (!this.store.reachable()) return unavailable();
    let lease;
    try {
      lease = await this.store.acquireLeadership(`proxy-admin:${this.proxyId}`, leaseMs);
    } catch (e) {
      return unavailable(e as Error);
    }
    if (!lease) {
      const leader = await this.store.currentLeader();
      return { status: 409, body: { error: `the leader lock is held by ${leader?.holder ?? 'another controller'}: switch through it` } };
    }
    try {
      this.log.info({ target, deadlineMs }, 'manual switch requested on the admin port');
      const out = await this.coordinator.flip({ target, deadlineMs: deadlineMs as number, fencingToken: lease.token });
      const pauses = Object.values(out.pauseMs);
      const reply = { ...out, maxPauseMs: pauses.length ? Math.max(...pauses) : null };
      return { status: out.ok ? 200 : 409, body: reply };
    } catch (e) {
      if (e instanceof StateStoreError || !this.store.reachable()) return unavailable(e as Error);
      return { status: 500, body: { error: (e as Error).message } };
    } finally {
      await this.store.releaseLeadership(lease).catch(() => undefined);
    }
  }
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  // compare digests: equal length, constant time
  const a = createHash('sha256').update(m[1].trim()).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) { reject(new Error(`body larger than ${MAX_BODY} bytes`)); req.destroy(); return; }
      parts.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      if (!text.trim()) return reject(new Error('body must be JSON: {"target": "blue"|"green", "deadlineMs"?: N}'));
      try {
        const v = JSON.parse(text) as unknown;
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return reject(new Error('body must be a JSON object'));
        resolve(v as Record<string, unknown>);
      } catch (e) {
        reject(new Error(`body is not valid JSON: ${(e as Error).message}`));
      }
    });
    req.on('error', reject);
  });
}

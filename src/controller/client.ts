/**
 * The CLI's client of the controller API: PGFLIP_CONTROLLER_URL (default
 * http://127.0.0.1:8080) and PGFLIP_API_TOKEN.
 */
export const DEFAULT_CONTROLLER_URL = 'http://127.0.0.1:8080';

export class ApiError extends Error {
  constructor(message: string, readonly status: number, readonly body?: unknown) {
    super(message);
  }
}

export class UnreachableError extends Error {}

export class ControllerClient {
  readonly baseUrl: string;
  private readonly token: string | undefined;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.baseUrl = (env.PGFLIP_CONTROLLER_URL || DEFAULT_CONTROLLER_URL).replace(/\/+$/, '');
    this.token = env.PGFLIP_API_TOKEN || undefined;
  }

  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    const headers: Record<string, string> = { 'user-agent': `pgflip-cli/${require('../../package.json').version}`, accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const c = (err as { cause?: { code?: string; message?: string } }).cause;
      const cause = c?.code ?? c?.message ?? (err as Error).message;
      throw new UnreachableError(`cannot reach the controller at ${this.baseUrl} (${cause}); set PGFLIP_CONTROLLER_URL`);
    }
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
    if (!res.ok) {
      const msg = typeof parsed === 'object' && parsed && 'error' in parsed ? String((parsed as { error: unknown }).error) : text || res.statusText;
      const hint = res.status === 401 ? ' (set PGFLIP_API_TOKEN)' : '';
      throw new ApiError(`${method} ${path}: HTTP ${res.status}: ${msg}${hint}`, res.status, parsed);
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> { return this.request<T>('GET', path); }
  post<T>(path: string, body: unknown = {}, timeoutMs?: number): Promise<T> { return this.request<T>('POST', path, body, timeoutMs); }
}

/** Asks on the terminal; false when stdin is not a terminal. */
export async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

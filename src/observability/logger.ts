import pino, { Logger } from 'pino';

/**
 * Structured JSON logs. Secrets are redacted by key wherever they appear, so a
 * config object or a connection URL passed as a field never leaks a password.
 */
export const REDACT_PATHS = [
  'password', '*.password', '*.*.password', 'token', '*.token', 'apiToken', '*.apiToken',
  'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization',
];

let root: Logger | undefined;

export function logger(): Logger {
  root ??= pino({
    level: process.env.PGFLIP_LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'silent' : 'info'),
    base: { app: 'pgflip' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, pino.destination({ fd: 2, sync: false })); // stdout is for command output (--json)
  return root;
}

/** Replace the root logger (tests capture output; `up` picks a destination). */
export function setLogger(l: Logger): void {
  root = l;
}

/** A URL with its password replaced, safe for logs and status output. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/:\/\/([^:/@]+):[^@]*@/, '://$1:***@');
  }
}

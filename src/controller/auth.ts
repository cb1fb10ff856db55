/**
 * Bearer-token check for mutating API calls. Both sides are hashed first so the
 * constant-time comparison always sees equal lengths and leaks nothing about
 * the token's length.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Who made a call, for the audit log: never the token itself. */
export const tokenFingerprint = (token: string): string => `token:${sha256(token).toString('hex').slice(0, 12)}`;

export function tokenMatches(expected: string, presented: string): boolean {
  return timingSafeEqual(sha256(expected), sha256(presented));
}

export interface AuthedLocals {
  who: string;
  via: 'cli' | 'http';
}

/** 401 without a bearer token, 403 with a wrong one. Sets res.locals.who. */
export function requireToken(expected: string | undefined) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const header = req.get('authorization');
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) {
      res.status(401).set('WWW-Authenticate', 'Bearer').json({ error: 'authorization: a Bearer token is required (Authorization: Bearer <PGFLIP_API_TOKEN>)' });
      return;
    }
    if (!expected || !tokenMatches(expected, m[1])) {
      res.status(403).json({ error: 'authorization: the token is not valid for this controller' });
      return;
    }
    res.locals.who = tokenFingerprint(m[1]);
    res.locals.via = /^pgflip-cli\//.test(req.get('user-agent') ?? '') ? 'cli' : 'http';
    next();
  };
}

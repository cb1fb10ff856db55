/**
 * The proxy's own request/response on a backend connection it holds (replay of
 * session state, the health check): write the messages, read until the
 * expected number of ReadyForQuery, and report the first ErrorResponse.
 */
import type net from 'node:net';
import { MessageCode } from './protocol/codes';
import { parseErrorFields } from './protocol/parser';

export interface ExchangeResult {
  /** first error as "SQLSTATE: message", if any */
  error?: string;
  /** every error, with the index of the request (ReadyForQuery) it belongs to */
  errors: Array<{ request: number; error: string }>;
}

export function exchange(s: net.Socket, request: Buffer, expectedReady: number, opts: { timeoutMs?: number; what: string }): Promise<ExchangeResult> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let ready = 0;
    let error: string | undefined;
    const errors: ExchangeResult['errors'] = [];
    const timer = opts.timeoutMs ? setTimeout(() => finish(new Error(`${opts.what} timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs) : undefined;
    const finish = (err?: Error) => {
      if (timer) clearTimeout(timer);
      s.off('data', onData); s.off('close', onClose);
      s.pause();
      if (err) reject(err); else resolve({ error, errors });
    };
    const onData = (c: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, c]) : c;
      let p = 0;
      while (buf.length - p >= 5) {
        const len = buf.readInt32BE(p + 1);
        if (buf.length - p < 1 + len) break;
        const type = buf[p];
        if (type === MessageCode.ErrorResponse) {
          const f = parseErrorFields(buf, p + 5, p + 1 + len);
          errors.push({ request: ready, error: `${f.C}: ${f.M}` });
          error ??= `${f.C}: ${f.M}`;
        }
        p += 1 + len;
        if (type === MessageCode.ReadyForQuery && ++ready === expectedReady) return finish();
      }
      buf = buf.subarray(p);
    };
    const onClose = () => finish(new Error(`backend closed the connection during ${opts.what}`));
    s.on('data', onData);
    s.once('close', onClose);
    s.resume();
    s.write(request);
  });
}

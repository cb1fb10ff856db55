/**
 * Replays a plain SQL script — pg_dump's plain format or pgflip's own — on a
 * connection, without psql: SQL between COPY blocks goes as one simple-query
 * message (PostgreSQL runs the statements in order), `COPY … FROM stdin;`
 * blocks stream their data lines up to `\.`, and the psql meta-commands such
 * scripts hold (`\restrict`, `\unrestrict`) are skipped. Any other
 * meta-command is refused by line, since it would mean something psql does
 * and this does not.
 *
 * A failure names the file, the line and the SQLSTATE. The caller decides the
 * transaction (a restore runs inside one, so nothing is half-applied).
 */
import { createReadStream } from 'node:fs';
import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { loadParser, parseFile, parseSql } from '../classifier/parser';

export class ReplayError extends Error {
  override name = 'ReplayError';
  constructor(readonly where: string, readonly line: number, message: string, readonly code?: string) {
    super(`${where}:${line}: ${message}${code ? ` (SQLSTATE ${code})` : ''}`);
  }
}

const COPY_RE = /^COPY\s.+\sFROM\s+stdin\s*;\s*$/i;
const SKIPPED_META = /^\\(restrict|unrestrict)\b/;

/** Replay the file at `file`. */
export function replayFile(c: Client, file: string): Promise<void> {
  return replayLines(c, fileLines(file), file);
}

/** Lines split at \n only: a \r is data (a literal, a function body), as psql keeps it. */
async function* fileLines(file: string): AsyncGenerator<string> {
  let rest = '';
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest) yield rest;
}

/** Replay a script held in memory; `where` names it in errors. */
export function replayText(c: Client, sql: string, where = 'script'): Promise<void> {
  return replayLines(c, sql.split('\n'), where);
}

async function replayLines(c: Client, lines: AsyncIterable<string> | Iterable<string>, where: string): Promise<void> {
  await loadParser();
  let chunk: string[] = [];
  let chunkStart = 1;
  let lineNo = 0;
  let copy: { stream: ReturnType<typeof copyFrom>; line: number; done: Promise<void> } | undefined;

  const flush = async (): Promise<void> => {
    const text = chunk.join('\n');
    const start = chunkStart;
    chunk = [];
    chunkStart = lineNo + 1;
    if (!text.trim()) return;
    // statement by statement where the parser can split it, so a failure names its own line
    const parsed = parseFile(text);
    const pieces = parsed.failures.length ? [{ text, line: 1 }] : parsed.statements.map((st) => ({ text: st.text, line: st.line }));
    for (const piece of pieces) {
      try {
        await c.query(piece.text);
      } catch (err) {
        const e = err as Error & { position?: string; code?: string };
        const within = e.position ? piece.text.slice(0, Number(e.position) - 1).split('\n').length - 1 : 0;
        throw new ReplayError(where, start + piece.line - 1 + within, e.message, e.code);
      }
    }
  };
  // A COPY or meta-command line counts only where a statement may start: after a line ending in
  // `;`, and where the SQL before it is complete — not inside a literal or a dollar-quoted body
  // (the real parser says so; it runs only at such lines, on the SQL since the last one)
  const atBoundary = (): boolean => {
    for (let i = chunk.length - 1; i >= 0; i--) {
      const t = chunk[i].trim();
      if (t === '' || t.startsWith('--')) continue;
      if (!t.endsWith(';')) return false;
      try { parseSql(chunk.join('\n')); return true; } catch { return false; }
    }
    return true;
  };

  for await (const line of lines) {
    lineNo++;
    if (copy) {
      if (line === '\\.') {
        copy.stream.end();
        await copy.done;
        copy = undefined;
        chunkStart = lineNo + 1;
      } else if (!copy.stream.write(`${line}\n`)) {
        // a row PostgreSQL rejects ends the COPY: stop waiting for room and report it
        const current = copy;
        await Promise.race([new Promise<void>((resolve) => current.stream.once('drain', resolve)), current.done]);
      }
      continue;
    }
    if (line.startsWith('\\') && atBoundary()) {
      if (!SKIPPED_META.test(line)) throw new ReplayError(where, lineNo, `psql meta-command ${line.split(/\s/)[0]} is not supported here`);
      await flush();
      continue;
    }
    if (COPY_RE.test(line) && atBoundary()) {
      await flush();
      const line0 = lineNo;
      const stream = c.query(copyFrom(line));
      const done = new Promise<void>((resolve, reject) => {
        stream.on('finish', resolve);
        stream.on('error', reject);
      }).catch((err: Error & { code?: string; where?: string }) => {
        // COPY's error context names the row ("COPY t, line 3"): turn it into a file line
        const row = /COPY [^,]+, line (\d+)/.exec(err.where ?? '');
        throw new ReplayError(where, row ? line0 + Number(row[1]) : line0, err.message, err.code);
      });
      done.catch(() => undefined); // awaited at `\.` or below
      copy = { stream, line: line0, done };
      continue;
    }
    chunk.push(line);
  }
  if (copy) {
    copy.stream.destroy();
    await copy.done.catch(() => undefined);
    throw new ReplayError(where, copy.line, 'COPY data not terminated by a line \\.');
  }
  await flush();
}

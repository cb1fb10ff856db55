/**
 * Every connection of the sync engine reads and writes values as text (COPY, pgoutput, the
 * verify checksums), and a value's text depends on the session: DateStyle, IntervalStyle and
 * extra_float_digits. Two servers configured differently (a DMY DateStyle on one side) would
 * exchange misread dates and rounded floats. Pinned as PostgreSQL's own apply worker pins
 * them on its publisher connection, on both ends, whatever the server or role defaults.
 */
import { Client, ClientConfig } from 'pg';

export const PINNED_SESSION_OPTIONS = '-c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3';

/** A client of the sync engine: `url` with the pinned session settings (and any extra startup fields). */
export function syncClient(url: string, extra: Record<string, unknown> = {}): Client {
  return new Client({ connectionString: url, options: PINNED_SESSION_OPTIONS, ...extra } as ClientConfig);
}

/**
 * Connections for pgflip's own work on a side. A connection that breaks while
 * idle (a side killed, a restart) must not crash the process: its error
 * surfaces through the next query instead.
 */
import { Client } from 'pg';

export async function connectClient(url: string, applicationName?: string): Promise<Client> {
  const c = new Client({ connectionString: url, application_name: applicationName });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** Runs fn on a connection of its own, closed afterwards whatever fn does. */
export async function withClient<T>(url: string, fn: (c: Client) => Promise<T>, applicationName?: string): Promise<T> {
  const c = await connectClient(url, applicationName);
  try { return await fn(c); } finally { await c.end().catch(() => undefined); }
}

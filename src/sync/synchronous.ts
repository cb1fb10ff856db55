/**
 * Synchronous replication of a logical stream: PostgreSQL makes a commit wait for the standbys
 * named in `synchronous_standby_names`, and a logical walsender counts as one by its
 * `application_name`, confirmed by the flush position its client reports. The sync engine
 * reports a position only once the change is committed on the other side, so with the reverse
 * stream named there a commit acknowledged on the new side after a flip is already applied on
 * the old one: a new side lost for good loses nothing.
 *
 * The price is availability: while it is on, every commit on the new side waits for the stream.
 * So it is switched off (`release`) before the stream stops, and whenever the stream fails.
 */
import { Client, escapeLiteral } from 'pg';

/** how the setting names a stream: a double-quoted standby name */
const standbyName = (appName: string): string => `"${appName.replace(/"/g, '""')}"`;

export interface ConfirmationResult {
  enabled: boolean;
  /** why not, or (enabled) what limits it */
  reason?: string;
}

/**
 * Make commits on the server of `client` wait for the stream `appName`. Not done (with the
 * reason) when the server already has synchronous standbys of its own, or the role may not
 * change the server's configuration. Resolves once the walsender serves as synchronous.
 */
export async function requireConfirmation(client: Client, appName: string, timeoutMs = 5000): Promise<ConfirmationResult> {
  const { rows } = await client.query<{ v: string }>('SELECT current_setting($1) AS v', ['synchronous_standby_names']);
  const current = rows[0].v.trim();
  if (current && current !== standbyName(appName)) {
    return { enabled: false, reason: `synchronous_standby_names is already set (${current}); pgflip does not change it` };
  }
  try {
    await client.query(`ALTER SYSTEM SET synchronous_standby_names = ${escapeLiteral(standbyName(appName))}`);
    await client.query('SELECT pg_reload_conf()');
  } catch (err) {
    return { enabled: false, reason: `cannot set synchronous_standby_names: ${(err as Error).message}` };
  }
  const deadline = Date.now() + timeoutMs;
  const { rows: sc } = await client.query<{ v: string }>('SELECT current_setting($1) AS v', ['synchronous_commit']);
  // as for any synchronous standby: commits made with synchronous_commit off or local do not wait
  const weak = sc[0].v === 'off' || sc[0].v === 'local' ? `synchronous_commit is ${sc[0].v} on this server: only sessions that set it higher wait for the stream` : undefined;
  for (;;) {
    const { rows: r } = await client.query<{ s: string }>('SELECT sync_state AS s FROM pg_stat_replication WHERE application_name = $1', [appName]);
    if (r.some((x) => x.s === 'sync')) return { enabled: true, reason: weak };
    if (Date.now() > deadline) {
      await release(client, appName);
      return { enabled: false, reason: `the stream ${appName} did not become synchronous within ${timeoutMs} ms` };
    }
    await new Promise((res) => setTimeout(res, 10));
  }
}

/** Commits stop waiting for the stream (a no-op when the setting names something else). */
export async function release(client: Client, appName: string): Promise<void> {
  const { rows } = await client.query<{ v: string }>('SELECT current_setting($1) AS v', ['synchronous_standby_names']);
  if (rows[0].v.trim() !== standbyName(appName)) return;
  await client.query('ALTER SYSTEM RESET synchronous_standby_names');
  await client.query('SELECT pg_reload_conf()');
}

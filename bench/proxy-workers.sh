#!/usr/bin/env bash
# proxy.workers 1 vs 2, side by side in one run: pgbench -S TPS, p99 and the proxy's CPU per
# transaction (see bench/proxy/workers.js). Not part of `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v pgbench >/dev/null || missing+=("pgbench (Debian package postgresql-client)")
command -v redis-server >/dev/null || missing+=("redis-server (Debian package redis-server)")
if [ ${#missing[@]} -gt 0 ]; then printf 'bench/proxy-workers.sh: missing %s\n' "${missing[@]}" >&2; exit 1; fi
npm run build --silent
exec node bench/proxy/workers.js

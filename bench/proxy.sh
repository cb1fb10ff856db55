#!/usr/bin/env bash
# pgflip proxy vs PostgreSQL directly vs PgBouncer (session mode), in one run:
# pgbench -S (-M simple and prepared, 8 and 32 clients) TPS and p99 latency with the ratios
# pgflip/PgBouncer and pgflip/direct per row, the proxies' CPU time per transaction, and their
# RSS per idle client with IDLE_CLIENTS (1000) authenticated idle connections.
# Knobs: BENCH_SECONDS BENCH_ROUNDS BENCH_SCALE BENCH_MODES BENCH_CLIENTS BENCH_THREADS IDLE_CLIENTS
# (see bench/proxy/run.js). Not part of `npm test`. CPU per transaction of pgflip against a bare
# Node.js pipe, PgBouncer and an earlier build: bench/proxy/cpu.js.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v pgbench >/dev/null || missing+=("pgbench (Debian package postgresql-client)")
command -v pgbouncer >/dev/null || missing+=("pgbouncer (Debian package pgbouncer)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'bench/proxy.sh: missing %s\n' "${missing[@]}" >&2
  exit 1
fi

# 1,000 idle clients mean ~2,000 sockets in each proxy.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

npm run build --silent
exec node bench/proxy/run.js

#!/usr/bin/env bash
# The live switch under write load: pgbench (TPC-B-like default script, -M prepared, 32 clients)
# writes through `pgflip proxy` to two databases of the same schema (both initialised with
# pgbench -i) while the fleet flips blue <-> green FLIPS (10) times through POST /switch.
# Prints the pause p50/p99/max, client errors (pgbench failed transactions and aborted clients)
# and the TPS dip (TPS in the seconds around each flip vs the run's median).
# Targets: 0 client errors, p99 pause <= 100 ms.
# Knobs: FLIPS FLIP_INTERVAL_MS BENCH_CLIENTS BENCH_THREADS BENCH_SCALE (see bench/flip/run.js);
# PGFLIP_POOL_MODE=transaction (with PGFLIP_POOL_SIZE) measures the flip in transaction mode.
# `bench/flip.sh --sessions 18,108,308,608,1000` sweeps the session count instead (8 busy writers
# plus idle sessions) and prints pause, flip duration and outcome per count.
# Not part of `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pgbench >/dev/null; then
  echo 'bench/flip.sh: missing pgbench (Debian package postgresql-client)' >&2
  exit 1
fi

npm run build --silent
exec node bench/flip/run.js "$@"

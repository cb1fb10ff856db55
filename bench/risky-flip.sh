#!/usr/bin/env bash
# The whole risky flip (fence, final catch-up, final verify, reverse start) under 32 pgbench
# clients through `pgflip up`, beside plain switches in the same run: pause p50/p99/max of each,
# the risky pause's breakdown, their ratio, and pgbench's errors. Target: risky p99 <= 100 ms.
# Knobs: RISKY_RUNS SWITCHES BENCH_CLIENTS BENCH_THREADS BENCH_SCALE (see bench/risky-flip/run.js).
# Not part of `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v pgbench >/dev/null; then
  echo 'bench/risky-flip.sh: missing pgbench (Debian package postgresql-client)' >&2
  exit 1
fi
npm run build --silent
exec node bench/risky-flip/run.js "$@"

#!/usr/bin/env bash
# What the previous schema version costs: pgbench TPC-B-like statements of the old version
# through the compatibility schema's views vs the new version on the tables, rounds alternating.
# Env: BENCH_ROUNDS (default 3), BENCH_SECONDS (per round, default 10), BENCH_CLIENTS (default 8).
set -euo pipefail
cd "$(dirname "$0")/.."
export PGFLIP_LOG_LEVEL="${PGFLIP_LOG_LEVEL:-warn}"
exec node -r ./test/harness/ts-register.js bench/compat/bench.ts "$@"

#!/usr/bin/env bash
# The schema copy and rollback points by pg_dump and by the Node path, side by side in one run.
# Env: BENCH_ROUNDS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
export PGFLIP_LOG_LEVEL="${PGFLIP_LOG_LEVEL:-warn}"
exec node -r ./test/harness/ts-register.js bench/schema/bench.ts "$@"

#!/usr/bin/env bash
# Sync engine benchmark: initial copy vs pg_dump|psql, and apply lag under pgbench load.
# Env: BENCH_RUNS (copy runs, default 5), BENCH_LOAD_SECONDS (default 20), BENCH_PARTS (copy,apply; also confirm:
#      what synchronous confirmation of the stream costs the source's commits, BENCH_CONFIRM_ROUNDS/SECONDS/CLIENTS),
#      BENCH_COPY_WORKERS=1,4 (the copy with each worker count, side by side),
#      BENCH_COMPARE_SRC=<other checkout>/src [BENCH_COMPARE_LABEL=name]: measure that implementation
#      too, interleaved in the same run, and print both side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
export PGFLIP_LOG_LEVEL="${PGFLIP_LOG_LEVEL:-warn}"
exec node -r ./test/harness/ts-register.js bench/sync/bench.ts "$@"

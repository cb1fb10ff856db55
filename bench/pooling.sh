#!/usr/bin/env bash
# Transaction pooling: pgflip (proxy.poolMode = transaction) vs PgBouncer (pool_mode = transaction,
# max_prepared_statements = 200 where its version has it) vs PostgreSQL directly and the bare
# Node.js pipe, in one run: pgbench -S -M simple|extended|prepared with 8, 32 and 100 clients
# (TPS, p99, proxy CPU per transaction, ratios), then 10,000 idle clients: the PostgreSQL
# backends each proxy holds for them (target <= pool size) and its RSS per idle client
# (target <= 16 KiB). Session mode: bench/proxy.sh. Knobs as bench/proxy.sh, plus
# BENCH_POOL_SIZE (20). Not part of `npm test`.
set -euo pipefail
export BENCH_POOL_MODE=transaction
exec "$(dirname "$0")/proxy.sh"

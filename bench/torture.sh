#!/usr/bin/env bash
# The flip-torture harness for longer than npm test's budget: random client programs (node-postgres,
# postgres.js, raw protocol) through pgflip while it flips, aborts flips with injected faults and
# flips back; every result compared with the same program run directly against PostgreSQL.
# Knobs: TORTURE_SEED TORTURE_CLIENTS (30) TORTURE_STEPS (60) TORTURE_SECONDS (300).
# Not part of `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PGFLIP_LOG_LEVEL="${PGFLIP_LOG_LEVEL:-silent}" NODE_ENV="${NODE_ENV:-test}"
exec node -r ./test/harness/ts-register.js bench/torture/run.ts "$@"

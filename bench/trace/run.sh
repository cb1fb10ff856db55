#!/usr/bin/env bash
# `pgflip validate --trace` on a 20-statement file, as a user runs it: process start, parser
# load, classification, the throwaway cluster's start (from the cached initdb template), the
# trace and the cluster's removal — against the same call without --trace (see run.js).
# Env: BENCH_RUNS (default 7). Not part of `npm test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
npm run build --silent
exec node bench/trace/run.js

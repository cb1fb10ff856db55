#!/usr/bin/env bash
# Classifier throughput over the shared corpus and the time of one `pgflip validate --json`
# call over all of it (see bench/classifier/run.js). Not part of `npm test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
npm run build --silent
exec node bench/classifier/run.js

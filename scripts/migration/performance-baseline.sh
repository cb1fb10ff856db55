#!/usr/bin/env bash
# Shows the p95 latency / error-rate baseline the post-flip watch compares with;
# --update measures the active side through the proxies now and stores it.
# usage: performance-baseline.sh [--update] [--seconds N]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/pgflip-cli.sh"
for arg in "$@"; do
  case "$arg" in --update|--seconds|[0-9]*) ;; *) echo "usage: $(basename "$0") [--update] [--seconds N]" >&2; exit 2 ;; esac
done
pgflip baseline "$@"

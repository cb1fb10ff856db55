#!/usr/bin/env bash
# Shows the p95 latency / error-rate baseline the post-flip watch compares with;
# --update measures the active side through the proxies now and stores it.
# usage: performance-baseline.sh [--update] [--seconds N]
set -euo pipefail
# the pgflip CLI of this checkout when built (dist/), else the one on PATH
pgflip() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  if [[ -f "$root/dist/cli/main.js" ]]; then
    node "$root/dist/cli/main.js" "$@"
  elif command -v pgflip >/dev/null 2>&1; then
    command pgflip "$@"
  else
    echo "pgflip not found: run npm ci && npm run build in $root, or install pgflip" >&2
    return 2
  fi
}
for arg in "$@"; do
  case "$arg" in --update|--seconds|[0-9]*) ;; *) echo "usage: $(basename "$0") [--update] [--seconds N]" >&2; exit 2 ;; esac
done
pgflip baseline "$@"

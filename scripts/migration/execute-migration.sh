#!/usr/bin/env bash
# Runs migration files through the pgflip controller.
# usage: execute-migration.sh --type safe|risky|maintenance [--dry-run] [--yes] [--no-rollback]
#                             [--timeout SECONDS] [--switch-delay SECONDS] FILE...
# exit 0 only if every file ended completed; 1 otherwise; 2 usage error.
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
pgflip migrate "$@"

#!/usr/bin/env bash
# Runs migration files through the pgflip controller.
# usage: execute-migration.sh --type safe|risky|maintenance [--dry-run] [--yes] [--no-rollback]
#                             [--timeout SECONDS] [--switch-delay SECONDS] FILE...
# exit 0 only if every file ended completed; 1 otherwise; 2 usage error.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/pgflip-cli.sh"
pgflip migrate "$@"

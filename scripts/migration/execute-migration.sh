#!/usr/bin/env bash
# Runs migration files through the pgflip controller.
# usage: execute-migration.sh --type safe|risky|maintenance [--dry-run] [--yes] [--no-rollback]
#                             [--timeout SECONDS] [--switch-delay SECONDS] FILE...
# exit 0 only if every file ended completed; 1 otherwise; 2 usage error.
# --timeout SECONDS is the health-check timeout: how long health is watched after a risky
# migration's switch and must hold (the watch window), never a budget that aborts a healthy
# migration. --help lists every option.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/pgflip-cli.sh"
pgflip migrate "$@"

#!/usr/bin/env bash
# Flips every proxy to a side, or shows the current state.
# usage: proxy-switch.sh blue|green [--force] | status
# --force: switch although the target does not hold the migrations the active side holds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/pgflip-cli.sh"
case "${1:-}" in
  blue|green) pgflip switch "$@" ;;
  status) pgflip status ;;
  *) echo "usage: $(basename "$0") blue|green [--force] | status" >&2; exit 2 ;;
esac

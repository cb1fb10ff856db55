#!/usr/bin/env bash
# Flips every proxy to a side, or shows the current state.
# usage: proxy-switch.sh blue|green|status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/pgflip-cli.sh"
case "${1:-}" in
  blue|green) pgflip switch "$1" ;;
  status) pgflip status ;;
  *) echo "usage: $(basename "$0") blue|green|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# One line per component (controller, proxies, blue, green).
# exit 0 healthy, 1 degraded, 2 controller unreachable.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/pgflip-cli.sh"
if [[ $# -gt 0 ]]; then echo "usage: $(basename "$0")" >&2; exit 2; fi
pgflip health

# Sourced by the migration scripts: `pgflip` runs the CLI of this checkout when
# built (dist/), else the one on PATH.
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

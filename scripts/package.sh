#!/usr/bin/env bash
# Builds the desktop bundle with PyInstaller (see build.spec):
#
#   scripts/package.sh            dist/tdgui/        (the app; `make package`)
#   scripts/package.sh --bare     dist/tdgui/ and dist/bare_webengine/ (the size/start-up baseline)
#   scripts/package.sh --bare-only                   dist/bare_webengine/ only
#
# Uses the repo's .venv (PYINSTALLER overrides). Prints the time each build took and the
# size of each bundle (du -sb). Build logs go to build/<name>.log.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cd "$repo"

pyinstaller=${PYINSTALLER:-$repo/.venv/bin/pyinstaller}
[ -x "$pyinstaller" ] || {
  echo "package: $pyinstaller not found; run \`make setup\` (pip install -e '.[dev]') first" >&2
  exit 1
}
command -v objdump >/dev/null 2>&1 || {
  echo "package: PyInstaller needs objdump (Debian: apt-get install binutils)" >&2
  exit 1
}

specs=(build.spec)
case ${1:-} in
  "") ;;
  --bare) specs+=(bench/bare_webengine.spec) ;;
  --bare-only) specs=(bench/bare_webengine.spec) ;;
  -h | --help)
    sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *)
    echo "package: unknown option $1 (see --help)" >&2
    exit 2
    ;;
esac

mkdir -p build
summary=()
for spec in "${specs[@]}"; do
  name=$(basename "$spec" .spec)
  [ "$name" = build ] && name=tdgui
  log=build/$name.log
  echo "package: building dist/$name/ from $spec (log: $log)"
  start=$(date +%s.%N)
  if ! "$pyinstaller" --noconfirm --clean --log-level WARN --workpath build/pyinstaller "$spec" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "package: building $spec failed; full log in $log" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  grep '^build.spec: dropped' "$log" | sed 's/^/package:   /' || true
  bytes=$(du -sb "dist/$name" | cut -f1)
  summary+=("$(awk -v n="dist/$name/" -v b="$bytes" -v s="$start" -v e="$end" \
    'BEGIN { printf "%-22s %10d bytes (%.1f MB)  built in %.1f s", n, b, b / 1e6, e - s }')")
done

echo "package: done"
for line in "${summary[@]}"; do
  echo "  $line"
done

#!/usr/bin/env bash
# Installs the local AWS emulator (moto's server, pinned) into localstack/.venv; with --lane,
# also the AWS CLI that the real-instance lane's launch scripts run (requirements-lane.txt).
# Idempotent: does nothing when the venv already holds the pinned set.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
stamp="$venv/.bgcloud-requirements"
lane_stamp="$venv/.bgcloud-requirements-lane"

install_lane() {
  if [ "${1:-}" = "--lane" ] && ! cmp -s "$lane_stamp" "$here/requirements-lane.txt" 2>/dev/null; then
    echo "localstack/setup.sh: installing the lane's AWS CLI into $venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$here/requirements-lane.txt"
    "$venv/bin/aws" --version >/dev/null
    cp "$here/requirements-lane.txt" "$lane_stamp"
  fi
}

if [ -f "$stamp" ] && cmp -s "$stamp" "$here/requirements.txt"; then
  install_lane "$@"
  exit 0
fi

# moto 5.2 needs Python >= 3.9; prefer 3.11, the version the pins were made with.
py=""
for cand in "${BGCLOUD_PYTHON:-}" python3.11 python3.13 python3.12 python3; do
  [ -n "$cand" ] || continue
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
    py="$cand"; break
  fi
done
if [ -z "$py" ]; then
  echo "localstack/setup.sh: no Python >= 3.9 with the venv module found; install python3 and python3-venv" >&2
  exit 1
fi

echo "localstack/setup.sh: installing the emulator into $venv (with $py)" >&2
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$here/requirements.txt"
"$venv/bin/python" -c 'import moto.server, werkzeug' # fail here, not in the tests
cp "$here/requirements.txt" "$stamp"
install_lane "$@"

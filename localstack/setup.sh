#!/usr/bin/env bash
# Installs the local AWS emulator (moto's server, pinned) into localstack/.venv; with --lane,
# also the AWS CLI that the real-instance lane's launch scripts run (requirements-lane.txt).
# Idempotent: does nothing when the venv already holds the pinned set.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
lane_stamp="$venv/.bgcloud-requirements-lane"

install_lane() {
  if [ "${1:-}" = "--lane" ] && ! cmp -s "$lane_stamp" "$here/requirements-lane.txt" 2>/dev/null; then
    echo "localstack/setup.sh: installing the lane's AWS CLI into $venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$here/requirements-lane.txt"
    "$venv/bin/aws" --version >/dev/null
    cp "$here/requirements-lane.txt" "$lane_stamp"
  fi
}

# moto 5.2 needs Python >= 3.9; 3.11 is the version the pins were made with.
# shellcheck source=localstack/venv.sh
. "$here/venv.sh"
install_pinned "the emulator" "$venv" "$here/requirements.txt" 9 "moto.server, werkzeug"
install_lane "$@"

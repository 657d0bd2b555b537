#!/usr/bin/env bash
# Installs checkov (pinned) into localstack/.venv-checkov: its own virtualenv, since its boto3
# pins clash with the emulator's. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-checkov"
want="checkov==3.3.30"
if [ -x "$venv/bin/checkov" ] && [ "$(cat "$venv/.bgcloud-pin" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
py=""
for cand in python3.11 python3.13 python3; do
  if command -v "$cand" >/dev/null 2>&1; then py="$cand"; break; fi
done
echo "localstack/checkov.sh: installing $want into $venv" >&2
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$want"
echo "$want" >"$venv/.bgcloud-pin"

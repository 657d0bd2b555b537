#!/usr/bin/env bash
# Installs zizmor (pinned, the GitHub Actions security linter) into localstack/.venv-zizmor.
# Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-zizmor"
want="zizmor==1.32.0"
if [ -x "$venv/bin/zizmor" ] && [ "$(cat "$venv/.bgcloud-pin" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
py=""
for cand in python3.11 python3.13 python3; do
  if command -v "$cand" >/dev/null 2>&1; then py="$cand"; break; fi
done
echo "localstack/zizmor.sh: installing $want into $venv" >&2
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$want"
echo "$want" >"$venv/.bgcloud-pin"

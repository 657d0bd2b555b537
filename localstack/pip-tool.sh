#!/usr/bin/env bash
# Installs one pinned Python tool into its own virtualenv, localstack/.venv-NAME (its
# dependencies must not clash with the emulator's). Idempotent: a venv holding the same pin is
# kept. Usage: pip-tool.sh NAME PIN, e.g. pip-tool.sh zizmor zizmor==1.32.0
set -euo pipefail
name="$1"
want="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-$name"
if [ -x "$venv/bin/$name" ] && [ "$(cat "$venv/.bgcloud-pin" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
py=""
for cand in python3.11 python3.13 python3; do
  if command -v "$cand" >/dev/null 2>&1; then py="$cand"; break; fi
done
echo "localstack/pip-tool.sh: installing $want into $venv" >&2
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$want"
echo "$want" >"$venv/.bgcloud-pin"

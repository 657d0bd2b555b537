# Sourced by setup.sh and setup-localstack.sh: installs a pinned requirements file (every
# package pinned, `pip install --no-deps`) into a venv of its own, with the first Python found
# that is at least 3.MINOR. Idempotent: a venv whose stamp matches the file is kept.
#   install_pinned NAME VENV REQUIREMENTS MINOR IMPORT
install_pinned() {
  local name="$1" venv="$2" requirements="$3" minor="$4" import="$5"
  local stamp="$venv/.bgcloud-requirements"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$requirements"; then
    return 0
  fi
  local py="" cand
  for cand in "${BGCLOUD_PYTHON:-}" python3.11 python3.13 python3.12 python3; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, $minor))" 2>/dev/null; then
      py="$cand"; break
    fi
  done
  if [ -z "$py" ]; then
    echo "localstack: no Python >= 3.$minor with the venv module found for $name; install python3 and python3-venv" >&2
    return 1
  fi
  echo "localstack: installing $name into $venv (with $py)" >&2
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
  "$venv/bin/python" -c "import $import" # fail here, not in the tests
  cp "$requirements" "$stamp"
}

#!/usr/bin/env bash
# Installs LocalStack Community (localstack-core, pinned with its runtime in
# requirements-localstack.txt) into localstack/.venv-localstack, for the LocalStack lane
# (scripts/test-localstack). Its own venv: its pins clash with the emulator's (boto3, moto).
# Idempotent: does nothing when the venv already holds the pinned set.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=localstack/venv.sh
. "$here/venv.sh"
install_pinned "LocalStack Community" "$here/.venv-localstack" "$here/requirements-localstack.txt" 10 localstack.runtime.main

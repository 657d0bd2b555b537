#!/usr/bin/env bash
# Installs checkov (pinned) into localstack/.venv-checkov: its own virtualenv, since its boto3
# pins clash with the emulator's.
exec "$(dirname "${BASH_SOURCE[0]}")/pip-tool.sh" checkov checkov==3.3.30

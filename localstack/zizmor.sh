#!/usr/bin/env bash
# Installs zizmor (pinned, the GitHub Actions security linter) into localstack/.venv-zizmor.
exec "$(dirname "${BASH_SOURCE[0]}")/pip-tool.sh" zizmor zizmor==1.32.0

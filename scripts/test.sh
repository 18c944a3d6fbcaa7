#!/usr/bin/env bash
# Run the whole test suite in the project's own virtual environment (.venv, created or reused).
# Usage: scripts/test.sh [pytest arguments...]     e.g. scripts/test.sh -m "not slow" -x
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_venv
exec "$VENV/bin/python" -m pytest "$@"

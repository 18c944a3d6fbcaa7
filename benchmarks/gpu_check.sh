#!/usr/bin/env bash
# The GPU check in one command (see python -m benchmarks.gpu_check --help). On a CUDA machine, from anywhere:
#   benchmarks/gpu_check.sh                 # full check, results in benchmarks/results/gpu_check.{json,md}
#   benchmarks/gpu_check.sh --smoke --device cpu --out /tmp/gpu_check.json
# Uses the repository's .venv when it exists (e.g. carried to an offline machine), else creates it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if [ ! -x "$VENV/bin/python" ]; then
    ensure_venv
fi
exec "$VENV/bin/python" -m benchmarks.gpu_check "$@"

#!/usr/bin/env bash
# Lint, type-check and test in the project's own virtual environment (.venv, created or reused).
#
#   scripts/test.sh                 the whole suite (what CI runs): ruff, mypy of the library, every test
#   scripts/test.sh --fast          the fast tier for every change: ruff, mypy, the tests not marked `slow`
#   scripts/test.sh [--fast] ARGS   extra pytest arguments, e.g. -x, -k nu, tests/test_loss.py
#
# Tests run on one pytest-xdist worker per core (TLOSS_TEST_WORKERS overrides, 0 = in this process), each worker
# with one thread (OMP_NUM_THREADS=1 unless set): torch's default of one thread per core in every worker
# oversubscribes the cores; OpenMP threads sleep when idle (OMP_WAIT_POLICY=PASSIVE unless set). A module's tests
# stay on one worker (--dist loadgroup, tests/conftest.py), the longest modules first (--no-loadscope-reorder keeps
# conftest's order); the tiny nnU-Net model several modules share is trained once, by the first worker needing it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_venv

marker=()
if [ "${1:-}" = "--fast" ]; then
    shift
    marker=(-m "not slow")
fi

echo "==> ruff check"
"$VENV/bin/ruff" check --quiet .
echo "==> mypy (the library: tloss_nnunet without repro/)"
"$VENV/bin/mypy"
echo "==> pytest"
workers="${TLOSS_TEST_WORKERS:-auto}"
if [ "$workers" != "0" ]; then
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
    # nnU-Net's train and predict commands set torch's threads to the core count whatever OMP_NUM_THREADS says;
    # two of them on two cores slow each other badly while OpenMP's idle threads spin instead of sleeping.
    export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
fi
exec "$VENV/bin/python" -m pytest -n "$workers" --dist loadgroup --no-loadscope-reorder "${marker[@]}" "$@"

#!/usr/bin/env bash
# Lint, type-check and test in the project's own virtual environment (.venv, created or reused).
#
#   scripts/test.sh                 the whole suite (what CI runs): ruff, mypy of the library, every test
#   scripts/test.sh --fast          the fast tier for every change: ruff, mypy, the tests not marked `slow`
#   scripts/test.sh [--fast] ARGS   extra pytest arguments, e.g. -x, -k nu, tests/test_loss.py
#
# Tests run on one pytest-xdist worker per core (TLOSS_TEST_WORKERS overrides, 0 = in this process); tests that
# share a trained tiny model carry an xdist_group mark, so each model is trained once.
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
exec "$VENV/bin/python" -m pytest -n "${TLOSS_TEST_WORKERS:-auto}" --dist loadgroup "${marker[@]}" "$@"

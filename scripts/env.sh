# Shared by scripts/test.sh and scripts/demo.sh (sourced, not run): create or reuse .venv and install the
# project into it (editable, with the test and benchmarks extras: the studies' tests need cleanlab). The install
# is skipped when setup.cfg and pyproject.toml are unchanged since the last successful one.
VENV="${TLOSS_VENV:-$PWD/.venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local stamp="$VENV/.tloss-nnunet-installed"
    local want
    want="$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "==> installing tloss-nnunet into $VENV (first time: torch and nnU-Net, a few minutes)"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet -e ".[test,benchmarks]"
        echo "$want" > "$stamp"
    fi
}

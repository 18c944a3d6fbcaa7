#!/usr/bin/env bash
# The project's main job in one command: synthetic ISIC 2017 -> noisy training masks (alpha = beta = 0.7)
# -> nnU-Net trained with the T-Loss and with its stock loss (same schedule) -> Dice on the clean test set
# -> a report folder (its path is printed). Creates or reuses .venv; re-running reuses finished steps.
# Usage: scripts/demo.sh [options]      (scripts/demo.sh --help lists them: schedule, sizes, device, folders)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_venv
exec "$VENV/bin/python" -m tloss_nnunet.repro.demo "$@"

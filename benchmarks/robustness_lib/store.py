"""The results file ``{"runs": [...]}``: one record per finished run, rewritten atomically after each run."""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

import torch

from tloss_nnunet.atomic import write_text
from tloss_nnunet.errors import InputError

#: Keys every run record has (the issue's schema); records may carry more (nu_trace, memorisation, ...).
REQUIRED_KEYS: tuple[str, ...] = ("setting", "alpha", "beta", "loss", "seed", "dice_mean", "dice_pooled",
                                  "nu_final", "wall_s", "machine")


def machine_description(device: str = "cpu") -> str:
    """Short description of where a run happened, e.g. ``"Linux x86_64, 2 CPUs, torch 2.5.1, cpu"``."""
    name = device
    if device.startswith("cuda") and torch.cuda.is_available():
        name = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {name}"


def run_key(record: dict) -> tuple:
    """Identity of a run for resuming: engine, config, setting, loss, seed."""
    return record.get("engine"), record.get("config"), record["setting"], record["loss"], record["seed"]


def _json_safe(value):
    """NaN/inf are not JSON: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class ResultStore:
    """Runs of one results file. ``add`` appends a record and rewrites the file through a temporary name and
    ``os.replace``, so a killed study leaves either the old or the new file, never half of one."""

    def __init__(self, path: Path, runs: list[dict] | None = None) -> None:
        self.path = Path(path)
        self.runs: list[dict] = list(runs or [])

    @classmethod
    def open(cls, path: Path, resume: bool) -> "ResultStore":
        """Load ``path`` when resuming (missing file: empty); refuse to overwrite an existing file otherwise."""
        path = Path(path)
        if not path.exists():
            return cls(path)
        if not resume:
            raise InputError(f"{path} exists: pass --resume to continue it, or choose another --out.")
        return cls(path, load_runs(path))

    def done(self) -> set[tuple]:
        return {run_key(r) for r in self.runs}

    def add(self, record: dict) -> None:
        missing = [k for k in REQUIRED_KEYS if k not in record]
        if missing:
            raise ValueError(f"run record lacks {missing}")
        self.runs.append(_json_safe(record))
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, json.dumps({"runs": self.runs}, indent=1) + "\n")


def load_runs(path: Path) -> list[dict]:
    """The ``runs`` list of a results file, checked for the required keys."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read results file {path}: {err}") from None
    runs = payload.get("runs") if isinstance(payload, dict) else None
    if not isinstance(runs, list):
        raise InputError(f"{path} has no 'runs' list")
    for i, run in enumerate(runs):
        missing = [k for k in REQUIRED_KEYS if k not in run]
        if missing:
            raise InputError(f"{path}: run {i} lacks {missing}")
    return runs

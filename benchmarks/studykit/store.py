"""The results file of a study, ``{"runs": [...]}`` (and ``"failed": [...]`` while some run failed).

One record per finished run; the file is rewritten atomically after each run, so a killed study leaves the old
or the new file, never half of one. Each study declares the fields its records must have (:class:`ResultStore`
``fields``); the fields that identify a run for resuming are :data:`KEY_FIELDS`, or the ``key_fields`` a study
declares (the long-horizon study keys its runs by dataset too).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from tloss_nnunet.atomic import write_text
from tloss_nnunet.errors import InputError

__all__ = ["KEY_FIELDS", "ResultStore", "load_runs", "machine_description", "run_key"]

#: The fields that identify a run: engine, configuration, noise setting, arm (recorded as "loss"), seed.
KEY_FIELDS: tuple[str, ...] = ("engine", "config", "setting", "loss", "seed")


def machine_description(device: str = "cpu") -> str:
    """Where a run happened, e.g. ``"Linux x86_64, 2 CPUs, torch 2.5.1, cpu (AVX512, flags 3f2a9c01)"``: the
    instruction set torch uses and a digest of the CPU's feature flags, since kernels round differently on
    another kind of CPU (a seeded run reproduces on the same kind only)."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        name = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    else:
        name = f"{device} ({torch.backends.cpu.get_cpu_capability()}, flags {_cpu_flags_digest()})"
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {name}"


def _cpu_flags_digest() -> str:
    """8 hex digits of the sorted feature flags in ``/proc/cpuinfo`` ("unknown" where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:8] if flags else "unknown"


def run_key(record: dict, key_fields: Sequence[str] = KEY_FIELDS) -> tuple:
    """Identity of a run for resuming: its values of ``key_fields``."""
    return tuple(record.get(field) for field in key_fields)


def _json_safe(value):
    """NaN/inf are not JSON: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _missing(record: dict, fields: Sequence[str], key_fields: Sequence[str] = KEY_FIELDS) -> list[str]:
    return [k for k in dict.fromkeys((*key_fields, *fields)) if k not in record]


class ResultStore:
    """The runs of one results file, whose records must have ``fields`` besides ``key_fields`` (which identify a
    run; default :data:`KEY_FIELDS`).

    ``add`` appends a record, ``fail`` notes a run that raised (kept until the run succeeds), and both rewrite
    the file.
    """

    def __init__(self, path: Path, fields: Sequence[str], runs: list[dict] | None = None,
                 failed: list[dict] | None = None, key_fields: Sequence[str] = KEY_FIELDS) -> None:
        self.path = Path(path)
        self.fields = tuple(fields)
        self.key_fields = tuple(key_fields)
        self.runs: list[dict] = list(runs or [])
        self.failed: list[dict] = list(failed or [])

    @classmethod
    def open(cls, path: Path, fields: Sequence[str], resume: bool,
             key_fields: Sequence[str] = KEY_FIELDS) -> ResultStore:
        """Load ``path`` when resuming (missing file: empty); refuse to overwrite an existing file otherwise."""
        path = Path(path)
        if not path.exists():
            return cls(path, fields, key_fields=key_fields)
        if not resume:
            raise InputError(f"{path} exists: pass --resume to continue it, or choose another --out.")
        payload = _read(path)
        return cls(path, fields, load_runs(path, fields, key_fields), payload.get("failed"), key_fields)

    def done(self) -> set[tuple]:
        return {run_key(r, self.key_fields) for r in self.runs}

    def add(self, record: dict) -> None:
        missing = _missing(record, self.fields, self.key_fields)
        if missing:
            raise ValueError(f"run record lacks {missing}")
        self.runs.append(_json_safe(record))
        self.failed = [f for f in self.failed if tuple(f["run"]) != run_key(record, self.key_fields)]
        self.save()

    def replace(self, old: dict, new: dict) -> None:
        """Put ``new`` in the place of the stored record ``old`` (same key) and rewrite the file."""
        if run_key(old, self.key_fields) != run_key(new, self.key_fields):
            raise ValueError(f"a record of {run_key(new, self.key_fields)} cannot replace one of "
                             f"{run_key(old, self.key_fields)}")
        if missing := _missing(new, self.fields, self.key_fields):
            raise ValueError(f"run record lacks {missing}")
        self.runs[self.runs.index(old)] = _json_safe(new)
        self.save()

    def fail(self, key: tuple, error: str) -> None:
        self.failed = [f for f in self.failed if tuple(f["run"]) != key] + [{"run": list(key), "error": error}]
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict = {"runs": self.runs}
        if self.failed:
            payload["failed"] = self.failed
        write_text(self.path, json.dumps(payload, indent=1) + "\n")


def _read(path: Path) -> dict:
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read results file {path}: {err}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("runs"), list):
        raise InputError(f"{path} has no 'runs' list")
    return payload


def load_runs(path: Path, fields: Sequence[str] = (), key_fields: Sequence[str] = KEY_FIELDS) -> list[dict]:
    """The ``runs`` list of a results file, each checked for ``key_fields`` and ``fields``."""
    runs = _read(path)["runs"]
    for i, run in enumerate(runs):
        missing = _missing(run, fields, key_fields)
        if missing:
            raise InputError(f"{path}: run {i} lacks {missing}")
    return runs

"""What a noise run records: one :class:`CaseRecord` per case and setting, written as the two CSV logs."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tloss_nnunet.noise.settings import CaseNoise, NoiseSetting

__all__ = ["DETAILS_NAME", "LOG_NAME", "CaseRecord", "NoiseRunResult", "write_logs"]

LOG_NAME = "noise_log.csv"
DETAILS_NAME = "noise_details.csv"


@dataclass(frozen=True)
class CaseRecord:
    """What happened to one case in one setting (one row of noise_details.csv)."""

    case: str
    setting: str
    spec: CaseNoise
    noise_rate: float
    note: str


@dataclass(frozen=True)
class NoiseRunResult:
    """Paths written by :func:`generate_noisy_dataset` and the per-case records."""

    out_dir: Path
    folders: dict[str, Path]
    log_path: Path
    details_path: Path
    preview_paths: tuple[Path, ...]
    records: tuple[CaseRecord, ...]


def write_logs(staging: Path, settings: Sequence[NoiseSetting], records: Sequence[CaseRecord]) -> None:
    """Write noise_log.csv (wide: kinds per setting + notes) and noise_details.csv (long)."""
    by_case: dict[str, dict[str, CaseRecord]] = {}
    for record in records:
        by_case.setdefault(record.case, {})[record.setting] = record
    names = [setting.name for setting in settings]
    with open(staging / LOG_NAME, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", *names, "notes"])
        for case, row in by_case.items():
            notes = "; ".join(f"{name}: {row[name].note}" for name in names if row[name].note)
            writer.writerow([case, *(row[name].spec.kind for name in names), notes])
    with open(staging / DETAILS_NAME, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["case", "setting", "kind", "angle", "direction_row", "direction_col", "noise_rate", "note"]
        )
        for record in records:
            spec = record.spec
            direction = spec.direction or ("", "")
            angle = "" if spec.angle is None else repr(spec.angle)
            rate = "nan" if math.isnan(record.noise_rate) else f"{record.noise_rate:.6f}"
            writer.writerow([record.case, record.setting, spec.kind, angle, *direction, rate, record.note])

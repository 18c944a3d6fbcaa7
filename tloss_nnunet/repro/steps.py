"""Resumable steps with console progress lines and wall times (the demo's and the study's runners).

A step names a check ``finished()`` and an ``action``; when the check passes, the action still runs, cheaply,
to return the step's outputs (every pipeline step skips work that is already done). Wall times of steps that
ran are kept in a JSON file, so a report can show them after an interrupted run was completed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tloss_nnunet.atomic import write_json

__all__ = ["StepRunner"]

T = TypeVar("T")


class StepRunner:
    """``[i/total] name ...`` lines and wall times; times of steps done by an earlier run come from ``times_file``."""

    def __init__(self, total: int, times_file: Path) -> None:
        self.total, self.done, self.times_file = total, 0, times_file
        self.seconds: dict[str, float] = json.loads(times_file.read_text()) if times_file.is_file() else {}

    def run(self, name: str, action: Callable[[], T], finished: Callable[[], bool] = lambda: False,
            log: Path | None = None) -> T:
        """Run (or, when ``finished()``, re-enter) the step ``name`` and return what ``action`` returns."""
        self.done += 1
        prefix = f"[{self.done}/{self.total}] {name}"
        if finished():
            print(f"{prefix}: done in an earlier run", flush=True)
            return action()  # cheap: the step sees its outputs and returns them
        print(f"{prefix} ..." + (f" (log: {log})" if log else ""), flush=True)
        started = time.perf_counter()
        result = action()
        self.seconds[name] = time.perf_counter() - started
        self.times_file.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.times_file, self.seconds)
        print(f"{prefix}: {self.seconds[name]:.0f} s", flush=True)
        return result

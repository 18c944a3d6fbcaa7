"""Sizes and time budgets of the GPU check: the full run (one H200, 8 minutes) and the CPU smoke run (tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Settings", "settings_for"]

#: loss_speed.py's nnU-Net-typical pyramids (batch, classes, full-resolution edge, dimensions, scales)
FULL_LOSS_CASES = {
    "2d": dict(batch=12, classes=2, size=512, dims=2, levels=6),
    "3d": dict(batch=2, classes=3, size=128, dims=3, levels=5),
}
SMOKE_LOSS_CASES = {
    "2d": dict(batch=2, classes=2, size=32, dims=2, levels=3),
    "3d": dict(batch=1, classes=3, size=16, dims=3, levels=3),
}


@dataclass(frozen=True)
class Settings:
    """Everything that differs between the full run and the smoke run.

    Budgets are seconds per section; the full run's add up to 8 minutes with the first compile included
    (estimates: no GPU has run this yet). A section over budget is reported, not stopped.
    """

    smoke: bool
    loss_cases: dict = field(default_factory=dict)
    loss_dtypes: tuple[str, ...] = ("float32", "float16", "bfloat16")
    loss_repeats: int = 20
    loss_warmup: int = 3
    overhead_size: int = 256
    overhead_cases: int = 8
    overhead_iters: int = 40
    overhead_warmup: int = 10
    train_size: int = 256
    train_cases: int = 8
    test_cases: int = 2
    train_epochs: int = 3
    train_iterations: int = 25
    #: train the stock trainer's chain too (the full run compares both; the smoke run checks the code path
    #: with the T-Loss chain alone: the stock chain is the same function with another trainer name)
    train_stock: bool = True
    #: foreground voxels of nnU-Net's fingerprint (None: nnU-Net's 10^8, see plan_and_preprocess_in_process)
    fingerprint_samples: int | None = None
    budgets: dict = field(default_factory=lambda: {"loss": 60, "overhead": 150, "training": 240, "scaler": 15})


def settings_for(smoke: bool) -> Settings:
    """The full run's settings, or tiny sizes and few repeats for ``--smoke`` (the test suite's CPU run)."""
    if not smoke:
        return Settings(smoke=False, loss_cases=FULL_LOSS_CASES)
    return Settings(smoke=True, loss_cases=SMOKE_LOSS_CASES, loss_repeats=2, loss_warmup=1, overhead_size=32,
                    overhead_cases=5, overhead_iters=2, overhead_warmup=1, train_size=32, train_cases=5,
                    test_cases=1, train_epochs=1, train_iterations=2, train_stock=False, fingerprint_samples=10**6,
                    budgets={"loss": 10, "overhead": 20, "training": 60, "scaler": 5})

"""The memorisation study's grid in the robustness study's format: ``robustness.json`` / ``.md`` / ``.png``.

The robustness study's own short schedule (300 iterations of a MONAI UNet, ``robustness_short.*``) never
reached the regime where a network memorises corrupted masks. This view takes the loss arms of the
memorisation study instead (800 iterations of nnU-Net's trainers, the regime where Dice+CE memorises by
iteration ~200) and writes them as robustness-study records, so the grid table, the paired T-Loss - Dice+CE
differences and the Dice-against-noise plot are the robustness study's own (:mod:`benchmarks.robustness_report`).

Each record is one finished memorisation run of an arm in :data:`GRID_ARMS`: its final clean-test Dice
(pooled and per-case mean), final nu and nu trace, and the Dice of its corrupted training cases against their
noisy and their clean masks at the last log.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import robustness_report
from benchmarks.studykit.arms import ARMS, LOSS_ARMS
from benchmarks.studykit.config import StudyConfig

#: The arms that make the grid: the default T-Loss and the plain baselines (not the T-Loss recipe variants).
GRID_ARMS: tuple[str, ...] = LOSS_ARMS

#: Prefix of the grid's configuration names: "memorisation-cpu" is the study's "cpu" configuration.
CONFIG_PREFIX = "memorisation-"
TITLE = "Robustness study (memorisation regime)"
COMMAND = "python -m benchmarks.memorisation --summarize --grid-out benchmarks/results/robustness.json"
LEGEND: dict[str, str] = {
    "tloss": f"the default `{ARMS['tloss']}` (T-Loss, mean weight cap 100, nu by its own Adam)",
    "dice_ce": f"nnU-Net's stock `{ARMS['dice_ce']}` (Dice + CE)",
    "ce": f"`{ARMS['ce']}` (nnU-Net's cross-entropy only)",
    "dice": f"`{ARMS['dice']}` (nnU-Net's soft Dice only)",
    "gce": f"`{ARMS['gce']}` (generalised cross-entropy, q = 0.7)",
}


def grid_record(run: dict) -> dict:
    """One memorisation run record -> the robustness study's record of the same run (same seed and setting)."""
    last = run["log"][-1]
    corrupted = run.get("n_corrupted", 0) > 0
    return {
        "setting": run["setting"], "alpha": run["alpha"], "beta": run["beta"], "loss": run["loss"],
        "seed": run["seed"], "dice_mean": run["dice_mean"], "dice_pooled": run["dice_pooled"],
        "nu_final": run["nu_final"],
        "nu_trace": [[it, nu] for it, _, _, nu in run["curve"] if nu is not None] or None,
        "train_dice_noisy": last["dice_noisy"] if corrupted else None,
        "train_dice_clean": last["dice_clean"] if corrupted else None,
        "loss_final": last["loss"], "wall_s": run["wall_s"], "engine": run["engine"],
        "config": CONFIG_PREFIX + run["config"], "iterations": run["iterations"], "trainer": run["trainer"],
        "machine": run["machine"],
    }


def describe(config: StudyConfig, engine: str) -> str:
    """The configuration sentence of the grid's Markdown for the memorisation configuration ``config``."""
    return (f"Configuration: the memorisation study's `{config.name}` configuration ({engine}): "
            "synthetic ISIC-like data, "
            f"{config.n_train} training / {config.n_test} test cases at {config.image_size} x {config.image_size}; "
            f"nnU-Net's 2D trainers and plans, encoder widths {config.features}, {config.iterations} iterations "
            f"of batch {config.batch_size}, poly lr per {config.iterations_per_epoch} iterations, "
            f"augmentation '{config.augmentation}'. The memorisation study's report has M(t) and the onset of "
            f"memorisation of every run.")


def is_grid(records: list[dict]) -> bool:
    """Whether ``records`` are this view's (their configurations are the memorisation study's)."""
    return bool(records) and all(str(r.get("config")).startswith(CONFIG_PREFIX) for r in records)


def write_summary(records: list[dict], out: Path, configs: dict[str, StudyConfig]) -> list[Path]:
    """``<out>.md`` and ``<out>.png`` of grid records (the memorisation configurations ``configs``)."""
    return robustness_report.write_summary(
        records, out, TITLE, COMMAND, LEGEND,
        lambda engine, name: describe(configs[name.removeprefix(CONFIG_PREFIX)], engine))


def write_grid(runs: list[dict], out: Path, configs: dict[str, StudyConfig]) -> list[Path]:
    """Write ``out`` (the records of the runs of :data:`GRID_ARMS`), ``<out>.md`` and ``<out>.png``."""
    records = [grid_record(r) for r in runs if r["loss"] in GRID_ARMS]
    robustness_report.save_records(records, Path(out))
    return [Path(out), *write_summary(records, Path(out), configs)]

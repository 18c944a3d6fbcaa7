"""Stage 1 of the label-repair study: cross-fitted held-out probabilities, our audit scores and cleanlab's.

For one (dataset, setting): nnU-Net's own K-fold split of the training cases (each held out once); per fold the
default T-Loss trainer is trained in-process on the other cases, its length chosen by nnU-Net's
``checkpoint_best`` rule on the noisy validation cases (the kept weights and nu predict the held-out part). On
the SAME held-out softmax probabilities, every case gets our scores (:func:`tloss_nnunet.audit.score_cases`) and
cleanlab's (``softmin`` and ``num_pixel_issues``, :func:`cleanlab_scores`). The probabilities go to an npz under
the work folder for the repair stage (:func:`audit_file`); the record holds the per-case scores.
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from tloss_nnunet.atomic import atomic_target
from tloss_nnunet.audit import score_cases
from tloss_nnunet.converters.plan import crossval_splits

from .label_audit_crossfit import noise_kinds
from .studykit.config import StudyConfig
from .studykit.data import training_case_ids, validation_split
from .studykit.inprocess import SettingData, foreground_probabilities, train
from .studykit.metrics import dice_pooled
from .studykit.selection import ema
from .studykit.store import machine_description

__all__ = ["FOLDS", "AUDIT_ARM", "audit_file", "audit_run", "cleanlab_scores", "data_digest", "load_audit"]

#: Cross-fitting folds over the training cases.
FOLDS = 4
#: The trainer of the audit models (the library's default).
AUDIT_ARM = "tloss"
#: Our scores and cleanlab's, each oriented "larger is more suspect" in the report.
CLEANLAB_SCORES: tuple[str, ...] = ("cleanlab_softmin", "cleanlab_num_pixel_issues")


def audit_file(work_dir: Path, dataset: str, setting: str) -> Path:
    """Where the held-out probabilities of one (dataset, setting) are kept."""
    return Path(work_dir) / "repair_audit" / f"{dataset}_{setting}.npz"


def data_digest(*arrays: np.ndarray) -> str:
    """sha256 (first 16 hex digits) of the arrays' bytes: the same data in two work folders gives the same digest."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def cleanlab_scores(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """cleanlab's per-image label quality (lower = worse) on one image size.

    Args:
        labels: (N, H, W) integer labels; probabilities: (N, K, H, W) held-out softmax.
    Returns:
        ``cleanlab_softmin`` (``method="softmin"``, temperature 0.1) and ``cleanlab_num_pixel_issues``
        (``method="num_pixel_issues"``, ``downsample=1``: every pixel), each (N,) in [0, 1].
    """
    from cleanlab.segmentation.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    softmin, _ = get_label_quality_scores(labels, probabilities, method="softmin", verbose=False)
    issues, _ = get_label_quality_scores(labels, probabilities, method="num_pixel_issues", downsample=1, n_jobs=1,
                                         verbose=False)
    return {"cleanlab_softmin": np.asarray(softmin, float), "cleanlab_num_pixel_issues": np.asarray(issues, float)}


def _subset(data: SettingData, index: np.ndarray) -> SettingData:
    return replace(data, images=data.images[index], labels=data.labels[index],
                   clean_labels=data.clean_labels[index], corrupted=data.corrupted[index])


def _fold_model(data: SettingData, config: StudyConfig, clean_dataset: str, seed: int, device: str):
    """Train one fold; return (network with the kept weights, nu there, kept iteration, validation curve)."""
    kept: dict = {}
    curve: list[list[float]] = []

    def on_log(iteration: int, trainer, _losses) -> None:
        trainer.set_deep_supervision_enabled(False)
        trainer.network.eval()
        try:
            prob = foreground_probabilities(trainer.network, data.val_images)
        finally:
            trainer.set_deep_supervision_enabled(True)
            trainer.network.train()
        curve.append([iteration, dice_pooled((prob > 0.5)[:, None].astype(np.int16), data.val_labels)])
        smoothed = ema([d for _, d in curve])
        if "ema" not in kept or smoothed[-1] > kept["ema"]:  # nnU-Net saves on a strict improvement only
            tloss = getattr(trainer, "tloss", None)
            kept.update(ema=smoothed[-1], iteration=iteration, nu=None if tloss is None else tloss.nu,
                        state=copy.deepcopy(trainer.network.state_dict()))

    trainer = train(AUDIT_ARM, seed, data, config, clean_dataset, device, on_log=on_log)
    trainer.network.load_state_dict(kept["state"])
    trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    return trainer.network, kept["nu"], kept["iteration"], curve


def audit_run(dataset: str, setting: str, seed: int, dataset_dir: str, clean_dir: str, config: StudyConfig,
              work_dir: str, device: str = "cpu", extra: dict | None = None) -> dict:
    """Cross-fit ``FOLDS`` audit models of one (dataset, setting), score every training case, keep the
    probabilities (:func:`audit_file`) and return the run record (``cases``: one dict per training case)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    dataset_dir_p, clean_dir_p = Path(dataset_dir), Path(clean_dir)
    data = SettingData.load(dataset_dir_p, clean_dir_p, validation=True)
    case_ids, _ = validation_split(training_case_ids(dataset_dir_p))  # the order of data's training arrays
    kinds = noise_kinds(dataset_dir_p)
    folds = crossval_splits(case_ids, FOLDS)
    probabilities = np.zeros((len(case_ids), 2, *data.labels.shape[2:]), dtype=np.float32)
    fold_of = np.full(len(case_ids), -1)
    nus, fold_info, scored = [None] * len(case_ids), [], {}
    for k, fold in enumerate(folds):
        held = np.array([case_ids.index(c) for c in fold["val"]])
        trained = np.array([case_ids.index(c) for c in fold["train"]])
        network, nu, iteration, curve = _fold_model(_subset(data, trained), config, clean_dir_p.name, seed,
                                                 device)
        foreground = foreground_probabilities(network, data.images[held])
        probabilities[held] = np.stack([1 - foreground, foreground], axis=1).astype(np.float32)
        fold_of[held] = k
        for i in held:
            nus[i] = nu
        fold_info.append({"fold": k, "held_out": fold["val"], "kept_iteration": iteration, "nu": nu,
                          "val_curve": curve})
        for s in score_cases([(case_ids[i], probabilities[i].astype(np.float64), data.labels[i, 0]) for i in held],
                             nu=nu):
            scored[s.case] = s.as_dict()
    theirs = cleanlab_scores(data.labels[:, 0], probabilities)
    cases = []
    for i, case in enumerate(case_ids):
        kind, rate = kinds.get(case, ("clean", 0.0))
        cases.append({**scored[case], **{name: float(v[i]) for name, v in theirs.items()},
                      "corrupted": bool(data.corrupted[i]), "kind": kind if data.corrupted[i] else "clean",
                      "noise_rate": rate, "fold": int(fold_of[i])})
    target = audit_file(Path(work_dir), dataset, setting)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(target) as tmp, open(tmp, "wb") as f:
        np.savez(f, probabilities=probabilities, case_ids=np.array(case_ids), fold=fold_of)
    return {"stage": "audit", "dataset": dataset, "setting": setting, "arm": f"audit_{AUDIT_ARM}", "seed": seed,
            "folds": fold_info, "cases": cases, "n_train": len(case_ids), "n_corrupted": int(data.corrupted.sum()),
            "iterations": config.iterations, "data_digest": data_digest(data.images, data.labels),
            "wall_s": round(time.perf_counter() - start, 2),
            "cpu_s": round(time.process_time() - cpu_start, 2), "machine": machine_description(device), **(extra or {})}


def load_audit(work_dir: Path, dataset: str, setting: str, case_ids: list[str]) -> np.ndarray:
    """The held-out probabilities (N, 2, H, W) of ``case_ids`` (in that order) from :func:`audit_file`."""
    path = audit_file(work_dir, dataset, setting)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run (or re-run) the audit of {dataset} {setting} first")
    with np.load(path) as f:
        index = {c: i for i, c in enumerate(f["case_ids"].tolist())}
        if set(case_ids) - set(index):
            raise ValueError(f"{path} lacks cases {sorted(set(case_ids) - set(index))}")
        return f["probabilities"][[index[c] for c in case_ids]]

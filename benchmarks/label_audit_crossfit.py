"""One evaluation run of label auditing: cross-fitted nnU-Net trainers score the labels they never trained on.

For a (setting, arm, seed): the training cases are split at random (seeded) into ``FOLDS`` parts; for each part,
the arm's real nnU-Net trainer is trained in-process on the other parts (the in-process engine,
:func:`benchmarks.studykit.inprocess.train`), predicts the held-out part, and the library's audit API
(:func:`tloss_nnunet.audit.score_cases`, under the trainer's final nu for T-Loss arms) scores every held-out
case against its GIVEN (noisy) label. Which cases the noise corrupted, and how (dilate / erode / affine), comes
from the converter's ``noise_log.tsv``; a case counts as corrupted when its label differs from the clean one.
"""

from __future__ import annotations

import csv
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from tloss_nnunet.audit import score_cases

from .memorisation import CONFIGS as MEMORISATION_CONFIGS
from .studykit.config import StudyConfig
from .studykit.data import training_case_ids
from .studykit.grid import parse_setting
from .studykit.inprocess import SettingData, foreground_probabilities, train
from .studykit.store import machine_description

ENGINE = "audit-crossfit"

#: Cross-fitting parts: each model trains on (FOLDS - 1) / FOLDS of the cases and scores the rest.
FOLDS = 2

#: Evaluation configurations: the memorisation study's data, network and schedule with more training cases (each
#: model sees half of them) and one log point, at the end.
CONFIGS: dict[str, StudyConfig] = {
    "smoke": replace(MEMORISATION_CONFIGS["smoke"], name="audit-smoke", n_train=8, n_test=2, log_every=8),
    "cpu": replace(MEMORISATION_CONFIGS["cpu"], name="audit-cpu", n_train=40, n_test=8, iterations=400,
                   log_every=400, seeds=(0, 1, 2), notes="40 training cases, 2-fold cross-fitting, 400 iterations "
                                                         "per model"),
}


def noise_kinds(dataset_dir: Path) -> dict[str, tuple[str, float]]:
    """case -> (noise kind, noise rate) from the converter's ``noise_log.tsv`` (empty for the clean dataset)."""
    log = dataset_dir / "noise_log.tsv"
    if not log.exists():
        return {}
    with open(log) as f:
        return {row["case"]: (row["kind"], float(row["noise_rate"])) for row in csv.DictReader(f, delimiter="\t")}


def _subset(data: SettingData, index: np.ndarray) -> SettingData:
    return replace(data, images=data.images[index], labels=data.labels[index],
                   clean_labels=data.clean_labels[index], corrupted=data.corrupted[index])


def crossfit_run(arm: str, setting: str, seed: int, dataset_dir: str, clean_dir: str, config: StudyConfig,
                 device: str = "cpu") -> dict:
    """Train ``FOLDS`` models of ``arm`` and score every training case by the one that held it out.

    ``dataset_dir`` / ``clean_dir``: the setting's and the clean raw dataset folders. Returns the run record:
    ``cases`` = one dict per training case (case, corrupted, kind, noise_rate, fold and
    every audit score), plus the final nu of each fold's model.
    """
    start = time.perf_counter()
    dataset_dir, clean_dir = Path(dataset_dir), Path(clean_dir)
    clean_dataset = clean_dir.name
    case_ids = training_case_ids(dataset_dir)  # the order of SettingData's arrays
    data = SettingData.load(dataset_dir, clean_dir)
    corrupted = data.corrupted
    kinds = noise_kinds(dataset_dir)
    order = np.random.default_rng(1000 + seed).permutation(len(case_ids))
    parts = np.array_split(order, FOLDS)
    cases, nus = [], []
    for fold, held in enumerate(parts):
        trained = np.setdiff1d(order, held)
        trainer = train(arm, seed, _subset(data, trained), config, clean_dataset, device)
        tloss = getattr(trainer, "tloss", None)
        nu = None if tloss is None else tloss.nu
        nus.append(nu)
        trainer.set_deep_supervision_enabled(False)
        trainer.network.eval()
        foreground = foreground_probabilities(trainer.network, data.images[held])
        probabilities = np.stack([1 - foreground, foreground], axis=1)
        scored = score_cases([(case_ids[i], probabilities[j], data.labels[i, 0]) for j, i in enumerate(held)], nu=nu)
        for s in scored:
            i = case_ids.index(s.case)
            kind, rate = kinds.get(s.case, ("clean", 0.0))
            cases.append({**s.as_dict(), "corrupted": bool(corrupted[i]), "kind": kind if corrupted[i] else "clean",
                          "noise_rate": rate, "fold": fold})
    alpha, beta = parse_setting(setting)
    return {"setting": setting, "alpha": alpha, "beta": beta, "loss": arm, "seed": seed, "folds": FOLDS,
            "nu_final": nus, "cases": sorted(cases, key=lambda c: c["case"]), "n_train": len(case_ids),
            "n_corrupted": int(corrupted.sum()), "config": config.name, "engine": ENGINE,
            "iterations": config.iterations, "wall_s": round(time.perf_counter() - start, 2),
            "machine": machine_description(device)}

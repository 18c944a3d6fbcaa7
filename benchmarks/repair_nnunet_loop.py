"""The steps of the repair confirmation inside nnU-Net (``benchmarks/repair_nnunet.py``): the combination to
confirm, the user's training set as a raw dataset of its own, the audit split, and one dataset's loop (audit folds
-> ``tloss-nnunet suspects`` -> ``tloss-nnunet repair`` -> retraining, prediction and evaluation), each step a
stock ``nnUNetv2_*`` or ``tloss-nnunet`` command that skips what an interrupted run finished."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.repair import audit_config
from benchmarks.repair_report import LOSSES
from benchmarks.repair_retrain import RULES
from benchmarks.studykit import commands
from benchmarks.studykit.arms import trainer_name
from benchmarks.studykit.config import StudyConfig
from benchmarks.studykit.data import Family, corrupted_cases, training_case_ids, validation_split
from benchmarks.studykit.store import machine_description
from tloss_nnunet.atomic import link_or_copy, staging_folder
from tloss_nnunet.audit.repair_rules import REPAIR_MODES
from tloss_nnunet.errors import InputError
from tloss_nnunet.repro import pipeline
from tloss_nnunet.repro.study_trainers import STUDY_SIZES_VARIABLE, study_sizes

__all__ = ["Combination", "Confirmation", "audit_splits", "install_splits", "ranking_quality",
           "write_training_subset"]

SETTING = "a0.7b0.7"
AUDIT_FOLDS = 4
AUDIT_ARM = "tloss"  # the audit folds' loss, as in the in-process audit (stage 1)
AUDIT_CHECKPOINT = "checkpoint_best.pth"
#: nnU-Net ids in the confirmation's own raw folder: the training subset and the repaired dataset of a noisy
#: dataset with id N are N + SUBSET_OFFSET and N + REPAIRED_OFFSET + 1000 * (the combination's mode and rule).
SUBSET_OFFSET = 1000
REPAIRED_OFFSET = 2000


@dataclass(frozen=True)
class Combination:
    """What to confirm: a repair mode, a selection rule (a name of :data:`RULES`) and the retraining loss."""

    mode: str
    rule: str
    loss: str

    @classmethod
    def parse(cls, text: str) -> Combination:
        parts = text.split(":")
        if len(parts) != 3 or parts[0] not in REPAIR_MODES or parts[1] not in RULES or parts[2] not in LOSSES:
            raise InputError(f"--combination must be MODE:RULE:LOSS with MODE in {REPAIR_MODES}, RULE in "
                             f"{tuple(RULES)}, LOSS in {LOSSES}; got {text!r}")
        return cls(*parts)

    @property
    def arm(self) -> str:
        return f"repaired_{self.mode}_{self.loss}"

    @property
    def dataset_offset(self) -> int:
        """Distinct ids per (mode, rule): the repaired dataset does not depend on the loss."""
        return REPAIRED_OFFSET + 1000 * (len(RULES) * REPAIR_MODES.index(self.mode) + list(RULES).index(self.rule))


def audit_splits(cases: list[str], folds: int = AUDIT_FOLDS) -> list[dict]:
    """``splits_final.json`` of the audit: nnU-Net's own K-fold split of ``cases`` (seed 12345)."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    return [{"train": sorted(s["train"]), "val": sorted(s["val"])}
            for s in generate_crossval_split(sorted(cases), seed=12345, n_splits=folds)]


def write_training_subset(source: Path, target_root: Path, dataset_id: int, cases: list[str]) -> Path:
    """``Dataset<id>_<source name>_train<n>``: the ``cases`` of ``source``'s ``imagesTr``/``labelsTr`` and all
    its ``imagesTs``/``labelsTs``, hard-linked; ``dataset.json`` from nnU-Net's generator. Written through a
    staging folder (never half there); reused when it already holds exactly these cases."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    meta = json.loads((source / "dataset.json").read_text())
    name = f"Dataset{dataset_id:03d}_{source.name.partition('_')[2]}_train{len(cases)}"
    folder = target_root / name
    ending = meta["file_ending"]
    if folder.is_dir():
        present = sorted(p.name[: -len(ending)] for p in (folder / "labelsTr").glob(f"*{ending}"))
        if present != sorted(cases):
            raise RuntimeError(f"{folder} holds other training cases than this study's; remove it")
        return folder
    target_root.mkdir(parents=True, exist_ok=True)
    with staging_folder(target_root, "repair-nnunet-subset") as staging:
        staged = staging / name
        for part in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            (staged / part).mkdir(parents=True)
        for case in cases:
            for image in sorted((source / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9]{ending}")):
                link_or_copy(image, staged / "imagesTr" / image.name)
            link_or_copy(source / "labelsTr" / f"{case}{ending}", staged / "labelsTr" / f"{case}{ending}")
        for part in ("imagesTs", "labelsTs"):
            for path in sorted((source / part).glob(f"*{ending}")):
                link_or_copy(path, staged / part / path.name)
        generate_dataset_json(str(staged), meta["channel_names"], meta["labels"], len(cases), ending,
                              dataset_name=name, description=f"the {len(cases)} training cases of "
                              f"{source.name} (fold 0 of the long-horizon check), for the repair confirmation")
        staged.rename(folder)
    return folder


def install_splits(preprocessed: Path, splits: list[dict]) -> None:
    """Write ``splits_final.json`` into a dataset's preprocessed folder; refuse a different one already there."""
    path = preprocessed / "splits_final.json"
    if path.is_file():
        if json.loads(path.read_text()) != splits:
            raise RuntimeError(f"{path} holds another split than this study's; remove it or use another work folder")
        return
    path.write_text(json.dumps(splits, indent=1))


class Confirmation:
    """One dataset's audit -> repair -> retrain with the stock commands (see the module docstring)."""

    def __init__(self, family: Family, clean_dir: Path, config: StudyConfig, work_dir: Path,
                 device: str = "cpu") -> None:
        self.family = family
        self.clean_dir = clean_dir
        self.config = config
        self.work_dir = Path(work_dir).resolve()
        self.device = device
        self.logs = self.work_dir / "logs"

    def env(self, config: StudyConfig, results: str) -> dict[str, str]:
        env = pipeline.nnunet_env(self.work_dir, self.device, results=self.work_dir / results)
        env[STUDY_SIZES_VARIABLE] = study_sizes(config.iterations, config.iterations_per_epoch, config.batch_size,
                                                config.features)
        return env

    def tool(self, args: list[str], env: dict[str, str], log: Path) -> None:
        """A ``tloss-nnunet`` command of this environment's install, logged like nnU-Net's."""
        pipeline.run_nnunet(["tloss-nnunet", *args], env, log)

    def audit(self) -> dict:
        """Steps 1-3: the training subset, the 4 audit folds and ``tloss-nnunet suspects``; the audit's record
        (its ranking scored against the cases the noise corrupted). An interrupted or finished audit is reused
        (``audit_reused``; its ``audit_s`` then leaves the folds' training out)."""
        start = time.perf_counter()
        noisy_id, noisy_dir = self.family.dataset(SETTING)
        train, _ = validation_split(training_case_ids(noisy_dir))
        audit_cfg = audit_config(self.config)
        env = self.env(audit_cfg, "results_audit")
        subset_id = noisy_id + SUBSET_OFFSET
        subset = write_training_subset(noisy_dir, Path(env["nnUNet_raw"]), subset_id, train)
        logs = self.logs / subset.name
        pipeline.plan_and_preprocess(subset_id, env, log_file=logs / "plan_and_preprocess.log")
        install_splits(Path(env["nnUNet_preprocessed"]) / subset.name, audit_splits(train))
        trainer = trainer_name(AUDIT_ARM, audit_cfg.schedule)
        model = pipeline.model_folder(subset_id, trainer, env)
        reused = any((model / f"fold_{k}" / pipeline.FINAL_CHECKPOINT).is_file() for k in range(AUDIT_FOLDS))
        for fold in range(AUDIT_FOLDS):
            pipeline.train(subset_id, trainer, env, fold=fold, device=self.device,
                           log_file=logs / f"audit_fold{fold}.log")
        audit_dir = self.work_dir / "audits" / subset.name
        self.tool(["suspects", str(model), "-o", str(audit_dir), "--checkpoint", AUDIT_CHECKPOINT,
                   "-device", self.device, "-npp", "1", "-nps", "1", "--quiet"], env, logs / "suspects.log")
        corrupted = set(corrupted_cases(noisy_dir, self.clean_dir, train))
        return {"engine": commands.ENGINE, "config": self.config.name, "setting": SETTING, "arm": "audit",
                "seed": 0, "stage": "audit", "audit_trainer": trainer, "audit_dir": str(audit_dir),
                **ranking_quality(audit_dir, corrupted), "n_corrupted": len(corrupted),
                "audit_s": round(time.perf_counter() - start, 2), "audit_reused": reused,
                "audit_iterations": audit_cfg.iterations, "wall_s": round(time.perf_counter() - start, 2),
                "machine": machine_description(self.device)}

    def run(self, combination: Combination, seed: int = 0) -> dict:
        """The whole loop: :meth:`audit` (reused when done), then ``tloss-nnunet repair`` with ``combination`` and
        the retraining; the run's record (``model_reused`` when an interrupted run had finished the training)."""
        start = time.perf_counter()
        audit = self.audit()
        noisy_id, noisy_dir = self.family.dataset(SETTING)
        repaired_id = noisy_id + combination.dataset_offset
        env = self.env(self.config, f"results_seed{seed}")
        retrain_start = time.perf_counter()  # retrain_s: the repair command and the retraining
        self.tool(["repair", audit["audit_dir"], "--out-id", str(repaired_id), "--mode", combination.mode,
                   "--fraction", str(RULES[combination.rule]), "--out", env["nnUNet_raw"]],
                  env, self.logs / f"repair_{noisy_id}_{combination.mode}_{combination.rule}.log")
        repaired = Path(env["nnUNet_raw"]) / pipeline.dataset_folder_name(repaired_id, env)
        record = json.loads((repaired / "repair.json").read_text())
        trainer = trainer_name(combination.loss, self.config.schedule)
        logs = self.logs / repaired.name
        pipeline.plan_and_preprocess(repaired_id, env, log_file=logs / "plan_and_preprocess.log")
        model_reused = (pipeline.model_folder(repaired_id, trainer, env) / "fold_all" / pipeline.FINAL_CHECKPOINT
                        ).is_file()
        pipeline.train(repaired_id, trainer, env, fold="all", device=self.device, log_file=logs / f"{trainer}.log")
        predictions = self.work_dir / "predictions" / f"seed{seed}" / repaired.name / trainer
        pipeline.predict(repaired / "imagesTs", predictions, repaired_id, trainer, env, fold="all",
                         device=self.device, log_file=logs / f"predict_{trainer}.log")
        scores = pipeline.evaluate(repaired / "labelsTs", predictions, repaired_id, trainer, env,
                                   log_file=logs / f"evaluate_{trainer}.log")
        changed = {c["case"]: (None if c["dropped"] else c["changed_pixels"]) for c in record["cases"]}
        corrupted = set(audit["corrupted"])
        return {
            "engine": commands.ENGINE, "config": self.config.name, "setting": SETTING, "arm": combination.arm,
            "seed": seed, "stage": "repair", "mode": combination.mode, "rule": combination.rule,
            "fraction": RULES[combination.rule], "trained_loss": combination.loss, "trainer": trainer,
            "dice_mean": scores.dice_mean, "dice_pooled": scores.dice_pooled, "repaired_cases": sorted(changed),
            "changed_pixels": changed, "repaired_corrupted": sum(case in corrupted for case in changed),
            "n_corrupted": len(corrupted),
            "n_trained": record["cases_total"] - sum(v is None for v in changed.values()),
            "retrain_s": round(time.perf_counter() - retrain_start, 2),
            "wall_s": round(time.perf_counter() - start, 2), "audit_reused": audit["audit_reused"],
            # The audit this run repaired with: its record may come from another machine, where the folds trained
            # differently (nnU-Net does not seed its training).
            "audit_auroc": audit["auroc"], "audit_precision_at_k": audit["precision_at_k"],
            "model_reused": model_reused, "iterations": self.config.iterations,
            "audit_iterations": audit["audit_iterations"], "machine": machine_description(self.device),
        }


def ranking_quality(audit_dir: Path, corrupted: set[str]) -> dict:
    """How well the audit's ranking (``suspects.csv``, by its ``rank_by`` score) finds the ``corrupted`` cases:
    ``ranking`` (cases, most suspect first), ``corrupted`` (sorted), ``rank_by``, ``auroc`` and
    ``precision_at_k`` (k = the number of corrupted cases)."""
    from benchmarks.label_audit_report import auroc, precision_at_k

    audit = json.loads((audit_dir / "audit.json").read_text())
    with open(audit_dir / "suspects.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ranking = [row["case"] for row in rows]  # rank order
    sign = -1.0 if audit["rank_by"] == "tloss_weight" else 1.0  # the one score where small is suspect
    suspicion = sign * np.array([float(row[audit["rank_by"]]) for row in rows])  # ties count half in the AUROC
    positive = np.array([case in corrupted for case in ranking])
    return {"rank_by": audit["rank_by"], "ranking": ranking, "corrupted": sorted(corrupted),
            "auroc": auroc(suspicion, positive), "precision_at_k": precision_at_k(suspicion, positive)}

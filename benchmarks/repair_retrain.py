"""Stage 2 of the label-repair study: repair the training labels from the audit, retrain, evaluate.

One run = (dataset, setting, mode, rule, loss): the training cases ranked by the audit's default score (most
suspect first), the top ``cases_to_repair(fraction=f)`` repaired with the library's rules
(:mod:`tloss_nnunet.audit.repair_rules`: ``ignore`` / ``replace`` / ``drop``), then the loss's nnU-Net trainer
trained in-process on the repaired cases (``ignore``: with nnU-Net's ignore label) for the configuration's
length. Every log point evaluates the network against the ORIGINAL data (noisy validation labels, clean test
labels, the given training labels), so its numbers compare with the horizon study's noisy runs.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from tloss_nnunet.audit.repair_rules import DEFAULT_CONFIDENCE, cases_to_repair, changed_pixels, repaired_label

from .repair_audit import data_digest, load_audit
from .studykit.config import StudyConfig
from .studykit.data import training_case_ids, validation_split
from .studykit.inprocess import SettingData, evaluate, train
from .studykit.store import load_runs, machine_description

__all__ = ["IGNORE_VALUE", "RULES", "chosen_rule", "repair_labels", "repair_run"]

#: nnU-Net's ignore label for binary data: max label + 1.
IGNORE_VALUE = 2
#: The ranking step 4 repairs by (protocol addendum 1.1): the library's default since step 1 chose it.
STEP4_RANKING = "one_minus_softmin"
#: Candidate selection rules: name -> fraction of the ranked training cases (protocol version 1).
RULES: dict[str, float] = {"f0.25": 0.25, "f0.5": 0.5}
HEADLINE: tuple[str, ...] = ("a0.7b0.7", "a0.5b0.7")
#: What identifies a record of the study (audits and repairs share one results file).
KEY_FIELDS: tuple[str, ...] = ("engine", "config", "dataset", "setting", "arm", "seed")


def _with_softmin(case: dict) -> dict:
    """An audit record's case scores with ``one_minus_softmin``: records made before our score existed carry
    cleanlab's ``cleanlab_softmin`` of the same probabilities, and 1 minus it is the same number."""
    if case.get("one_minus_softmin") is None and case.get("cleanlab_softmin") is not None:
        return {**case, "one_minus_softmin": 1.0 - case["cleanlab_softmin"]}
    return case


def ranking(audit: dict, score: str = STEP4_RANKING) -> list[str]:
    """Case ids of an audit record, most suspect first by ``score`` (stable on ties)."""
    from tloss_nnunet.audit.scores import suspicion

    cases = sorted((_with_softmin(c) for c in audit["cases"]), key=lambda c: c["case"])
    return [c["case"] for c in sorted(cases, key=lambda c: -suspicion(c, score))]


def repair_labels(labels: np.ndarray, probabilities: np.ndarray, case_ids: list[str], ranked: list[str],
                  mode: str, fraction: float) -> tuple[np.ndarray, list[int], dict[str, int]]:
    """Repaired training labels.

    Args:
        labels: (N, 1, H, W) given labels; probabilities: (N, 2, H, W) held-out softmax (same order as case_ids).
        ranked: the case ids most suspect first; mode: ignore / replace / drop; fraction: of the ranked cases.
    Returns:
        (labels with the chosen cases repaired, indices of the cases kept for training, case -> changed pixels).
    """
    chosen = ranked[:cases_to_repair([0.0] * len(ranked), fraction=fraction)]
    out, keep, changed = labels.copy(), [], {}
    for i, case in enumerate(case_ids):
        if case not in chosen:
            keep.append(i)
            continue
        new = repaired_label(labels[i], probabilities[i], mode, IGNORE_VALUE if mode == "ignore" else None,
                             DEFAULT_CONFIDENCE)
        changed[case] = changed_pixels(labels[i], new)
        if new is not None:
            out[i] = new
            keep.append(i)
    return out, keep, changed


def chosen_rule(results: Path, mode: str, loss: str, config_name: str, cells: list[tuple[str, str]]) -> str:
    """The rule of (mode, loss) by the protocol: the higher noisy-validation Dice (last checkpoint), averaged over
    the headline ``cells`` (dataset, setting) (ties: the smaller fraction). Every candidate must have run on every
    cell; ValueError otherwise."""
    if not cells:
        raise ValueError("no headline setting is planned: the rule of a 'chosen' run cannot be chosen")
    runs = {(r["dataset"], r["setting"], r["arm"]): r for r in load_runs(results, key_fields=KEY_FIELDS)
            if r.get("stage") == "repair" and r["config"] == config_name}
    means = {}
    for rule in RULES:
        missing = [c for c in cells if (*c, f"{mode}_{rule}_{loss}") not in runs]
        if missing:
            raise ValueError(f"{mode}_{rule}_{loss} has not run on {missing} yet: the rule cannot be chosen")
        means[rule] = float(np.mean([runs[(*c, f"{mode}_{rule}_{loss}")]["val_dice_noisy"] for c in cells]))
    return max(RULES, key=lambda rule: (means[rule], -RULES[rule]))


def audit_record(results: Path, dataset: str, setting: str, config_name: str) -> dict:
    """The audit record of (dataset, setting) in ``results``; ValueError when it is not there yet."""
    for r in load_runs(results, key_fields=KEY_FIELDS):
        if r.get("stage") == "audit" and (r["dataset"], r["setting"], r["config"]) == (dataset, setting, config_name):
            return r
    raise ValueError(f"no audit of {dataset} {setting} in {results} yet: the audit stage runs first")


def repair_run(dataset: str, setting: str, mode: str, rule: str, loss: str, seed: int, dataset_dir: str,
               clean_dir: str, config: StudyConfig, work_dir: str, results: str,
               headline_cells: tuple[tuple[str, str], ...] = (), device: str = "cpu",
               extra: dict | None = None) -> dict:
    """Train ``loss`` on the labels repaired by (``mode``, ``rule``) and return the run's record. The audit record
    and, for ``rule`` ``"chosen"``, the rule (:func:`chosen_rule` over ``headline_cells``) are read from
    ``results`` when the run starts."""
    start, cpu_start = time.perf_counter(), time.process_time()
    audit = audit_record(Path(results), dataset, setting, config.name)
    resolved = chosen_rule(Path(results), mode, loss, config.name, list(headline_cells)) if rule == "chosen" else rule
    dataset_dir_p, clean_dir_p = Path(dataset_dir), Path(clean_dir)
    data = SettingData.load(dataset_dir_p, clean_dir_p, validation=True)
    case_ids, _ = validation_split(training_case_ids(dataset_dir_p))
    probabilities = load_audit(Path(work_dir), dataset, setting, case_ids)
    labels, keep, changed = repair_labels(data.labels, probabilities, case_ids, ranking(audit), mode,
                                          RULES[resolved])
    index = np.array(keep)
    training = replace(data, images=data.images[index], labels=labels[index], clean_labels=data.clean_labels[index],
                       corrupted=data.corrupted[index])
    log: list[dict] = []

    def record(iteration: int, trainer, losses: list[float]) -> None:
        tloss = getattr(trainer, "tloss", None)
        nu = None if tloss is None else tloss.nu
        entry = {"iteration": iteration, "nu": nu, "loss": float(np.mean(losses[-config.log_every:]))}
        entry.update(evaluate(trainer, data, nu))  # the original data: noisy validation, clean test
        log.append(entry)

    train(loss, seed, training, config, clean_dir_p.name, device, on_log=record,
          ignore_label=IGNORE_VALUE if mode == "ignore" else None)
    repaired = set(changed)
    return {"stage": "repair", "dataset": dataset, "setting": setting, "arm": f"{mode}_{rule}_{loss}",
            "seed": seed, "mode": mode, "rule": resolved, "fraction": RULES[resolved], "trained_loss": loss,
            "ranking": STEP4_RANKING,
            "repaired_cases": sorted(repaired), "changed_pixels": changed,
            "repaired_corrupted": int(sum(data.corrupted[case_ids.index(c)] for c in repaired)),
            "n_train": len(case_ids), "n_trained": len(keep), "n_corrupted": int(data.corrupted.sum()),
            "dice_pooled": log[-1]["test_dice"], "dice_mean": log[-1]["test_dice_mean"],
            "val_dice_noisy": log[-1]["val_dice_noisy"], "log": log, "iterations": config.iterations,
            "data_digest": data_digest(data.images, data.labels), "wall_s": round(time.perf_counter() - start, 2),
            "cpu_s": round(time.process_time() - cpu_start, 2),
            "machine": machine_description(device), **(extra or {})}

"""``repair_dataset``: an audit (``tloss-nnunet suspects``) -> a NEW nnU-Net raw dataset with the suspect labels fixed.

audit folder (``audit.json``, ``suspects.csv``, ``predictions/fold_<k>/<case>.npz``) + the raw dataset it audited
-> checks (every refusal before anything is written) -> the top of the ranking by one rule
(:func:`~tloss_nnunet.audit.repair_rules.cases_to_repair`) -> each chosen label repaired from its held-out
probabilities (:func:`~tloss_nnunet.audit.repair_rules.repaired_label`) or the case dropped -> a staging folder
in the target (images hard-linked or copied, untouched labels likewise, repaired ones written with the dataset's
own nnU-Net reader-writer, ``dataset.json`` from nnU-Net's generator, ``repair.json``) renamed into place as
``DatasetXXX_<name>``. The source is only read. A failed or killed repair leaves no dataset behind (the hidden
staging folder of a killed one is removed by the next repair into the same folder). With ``num_parts`` > 1 a call
only repairs its share of the chosen labels into a hidden parts folder (:mod:`tloss_nnunet.audit.repair_parts`).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tloss_nnunet.atomic import file_sha256, folders_created, output_folder_problem, staging_folder, write_json
from tloss_nnunet.audit.model import training_cases
from tloss_nnunet.audit.provenance import labels_digest, read_audit_record
from tloss_nnunet.audit.repair_parts import part_cases, parts_folder, remove_parts
from tloss_nnunet.audit.repair_rules import DEFAULT_CONFIDENCE, REPAIR_MODES, cases_to_repair
from tloss_nnunet.errors import InputError

__all__ = ["RepairResult", "changed_summary", "repair_dataset"]

#: The parts of ``repair.json`` that fix its output: equal parts (and unchanged files) make a re-run a no-op.
_REQUEST_KEYS = ("format", "dataset", "source", "audit", "mode", "rule", "confidence", "ignore_label", "cases_total",
                 "cases_chosen")


@dataclass(frozen=True)
class RepairResult:
    """The dataset written (or found up to date: ``up_to_date``) and its ``repair.json`` record."""

    folder: Path
    record: dict
    up_to_date: bool = False
    #: A part call (``num_parts`` > 1): the cases it repaired into ``folder``, the parts folder; None otherwise.
    part_cases: list[str] | None = None

    @property
    def repaired(self) -> list[str]:
        return [c["case"] for c in self.record["cases"] if not c["dropped"]]

    @property
    def dropped(self) -> list[str]:
        return [c["case"] for c in self.record["cases"] if c["dropped"]]


@dataclass(frozen=True)
class _Source:
    folder: Path
    dataset_json: dict
    cases: dict[str, dict]  # case -> {"images": [...], "label": path}, as nnU-Net lists them


def _load_source(raw: Path, audit: dict) -> _Source:
    """The raw dataset, checked against what the audit read (same dataset, same cases, same labels)."""
    if not (raw / "dataset.json").is_file() or not (raw / "labelsTr").is_dir():
        raise InputError(f"raw dataset {raw} not found or without dataset.json/labelsTr (give it with --raw)")
    if raw.name != audit["dataset"]:
        raise InputError(f"the audit is of {audit['dataset']}, not of {raw.name}")
    dataset_json = json.loads((raw / "dataset.json").read_text())
    labels = dataset_json.get("labels", {})
    if any(isinstance(v, (list, tuple)) for k, v in labels.items() if k != "ignore"):
        raise InputError(f"{raw} is a region-based dataset; repair supports label maps only")
    if "dataset" in dataset_json:
        raise InputError(f"{raw} lists its files in dataset.json ('dataset'); repair supports the imagesTr/labelsTr "
                         "layout only")
    cases = dict(sorted(training_cases(raw, dataset_json).items()))
    if unaudited := sorted(set(cases) - set(audit["cases"])):
        raise InputError(f"{len(unaudited)} case(s) of {raw} are not in the audit ({_names(unaudited)}): the "
                         "dataset changed since; audit it again")
    if gone := sorted(set(audit["cases"]) - set(cases)):
        raise InputError(f"{len(gone)} audited case(s) are no longer in {raw} ({_names(gone)}): the dataset changed "
                         "since the audit; audit it again")
    digests = {case: file_sha256(entry["label"]) if os.path.isfile(entry["label"]) else "" for case, entry
               in cases.items()}
    if labels_digest(digests) != labels_digest(audit["labels"]):
        changed = sorted(c for c in cases if digests[c] != audit["labels"].get(c))
        raise InputError(f"the labels of {len(changed)} case(s) of {raw} changed since the audit "
                         f"({_names(changed)}); audit it again")
    return _Source(raw, dataset_json, cases)


def _check_predictions(audit_dir: Path, audit: dict, chosen: list[str]) -> None:
    """The chosen cases' prediction folders still hold what the audit ranked (the stamp names the checkpoint
    digest the audit recorded): a later ``suspects`` with another checkpoint would mix two models."""
    from tloss_nnunet.audit.ownership import prediction_folder, read_stamp

    for fold in sorted({audit["cases"][case]["fold"] for case in chosen}):
        folder = prediction_folder(audit_dir, fold)
        stamp = read_stamp(folder)
        if stamp is None or stamp.get("sha256") != audit.get("checkpoints", {}).get(str(fold)):
            raise InputError(f"the predictions in {folder} are not the ones the audit ranked (another checkpoint "
                             "since, or none); run tloss-nnunet suspects again")


def _names(cases: list[str]) -> str:
    return ", ".join(cases[:5]) + (", ..." if len(cases) > 5 else "")


def _ranking(audit_dir: Path, rank_by: str) -> list[tuple[str, float]]:
    """``(case, score)`` of suspects.csv in rank order."""
    with open(audit_dir / "suspects.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or rank_by not in rows[0]:
        raise InputError(f"{audit_dir / 'suspects.csv'} has no column {rank_by}; run tloss-nnunet suspects again")
    return [(row["case"], float(row[rank_by]) if row[rank_by] else float("nan")) for row in rows]


def _selected(scores: list[float], rank_by: str, top_k: int | None, fraction: float | None,
              threshold: float | None) -> int:
    """How many cases to repair; the rule's problems in the command line's words."""
    if top_k is not None and not 1 <= top_k <= len(scores):
        raise InputError(f"--top-k must be in 1..{len(scores)} (the audited cases), got {top_k}")
    if fraction is not None and not 0 < fraction <= 1:
        raise InputError(f"--fraction must be in (0, 1], got {fraction}")
    try:
        return cases_to_repair(scores, top_k=top_k, fraction=fraction, threshold=threshold,
                               larger_is_suspect=rank_by != "tloss_weight")
    except ValueError as err:
        raise InputError(str(err)) from None


def _destination(out_id: int, name: str, out: str | os.PathLike | None) -> Path:
    """``<out or $nnUNet_raw>/DatasetXXX_<name>``, the target folder checked as a place to write into."""
    if out is None:
        if not os.environ.get("nnUNet_raw"):
            raise InputError("nnUNet_raw is not set: set it or give the target folder with --out")
        out = os.environ["nnUNet_raw"]
    target = Path(out)
    if problem := output_folder_problem(target):
        raise InputError(problem)
    return target / f"Dataset{out_id:03d}_{name}"


def _refuse_taken_id(out_id: int, target: Path) -> None:
    """Refuse an ID that a dataset already has, in ``target`` or where nnU-Net looks."""
    prefix = f"Dataset{out_id:03d}_"
    places = [target] + [Path(os.environ[k]) for k in ("nnUNet_preprocessed", "nnUNet_results") if os.environ.get(k)]
    for place in places:
        if place.is_dir() and (taken := sorted(p.name for p in place.iterdir() if p.name.startswith(prefix))):
            raise InputError(f"dataset ID {out_id} is taken: {place / taken[0]} exists; choose another --out-id")


def _unchanged_result(folder: Path, request: dict) -> dict | None:
    """The ``repair.json`` record of ``folder`` when it is this very repair's output, untouched since: the same
    request (source labels, audit, rule, mode) and every file with the digest it was written with, no file added.
    None otherwise (the caller then refuses the taken ID)."""
    try:
        existing = json.loads((folder / "repair.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(existing, dict) or not isinstance(existing.get("files"), dict):
        return None
    if any(existing.get(key) != request[key] for key in _REQUEST_KEYS):
        return None
    present = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()} - {"repair.json"}
    if present != set(existing["files"]):
        return None
    if any(file_sha256(folder / name) != digest for name, digest in existing["files"].items()):
        return None
    return existing


def _check_options(mode: str | None, out_id: int, name: str | None, confidence: float, rules: int) -> None:
    if mode not in REPAIR_MODES:
        raise InputError(("choose --mode " if mode is None else f"unknown mode {mode!r}: choose ")
                         + f"{' | '.join(REPAIR_MODES)}; the default will be set by the repair study")
    if rules != 1:
        raise InputError("choose the cases to repair with exactly one of --top-k N, --fraction F, --threshold T; "
                         "the default rule will be set by the repair study")
    if isinstance(out_id, bool) or not isinstance(out_id, int) or not 1 <= out_id <= 9999:
        raise InputError(f"--out-id must be an integer in 1..9999, got {out_id}")
    if name is not None and (not name or any(ch in name for ch in "/\\ \t\n") or name.startswith(".")):
        raise InputError(f"--name must be a plain folder-name part (no spaces or slashes), got {name!r}")
    if not 0 <= confidence <= 1:
        raise InputError(f"--confidence must be in [0, 1], got {confidence}")


def repair_dataset(audit_dir: str | os.PathLike, out_id: int, *, mode: str | None, top_k: int | None = None,
                   fraction: float | None = None, threshold: float | None = None,
                   confidence: float = DEFAULT_CONFIDENCE, name: str | None = None,
                   out: str | os.PathLike | None = None, raw_folder: str | os.PathLike | None = None,
                   num_parts: int = 1, part_id: int = 0) -> RepairResult:
    """Write ``Dataset<out_id>_<name>`` (default name: the source's, plus ``_repaired``) into ``out`` (default
    ``$nnUNet_raw``) from the audit in ``audit_dir`` (see the module docstring).

    ``mode``: one of :data:`~tloss_nnunet.audit.repair_rules.REPAIR_MODES`; exactly one of ``top_k``,
    ``fraction``, ``threshold`` picks the cases (see :func:`~tloss_nnunet.audit.repair_rules.cases_to_repair`);
    ``confidence``: see :func:`~tloss_nnunet.audit.repair_rules.disagreement`; ``raw_folder``: the source
    dataset (default: the folder the audit read). Every refusal is an :class:`InputError` and writes nothing.
    ``num_parts`` > 1: only part ``part_id``'s share of the repaired labels, into a parts folder that the final
    call (``num_parts`` 1) takes them from (:mod:`tloss_nnunet.audit.repair_parts`).
    """
    _check_options(mode, out_id, name, confidence, sum(v is not None for v in (top_k, fraction, threshold)))
    if isinstance(num_parts, bool) or not isinstance(num_parts, int) or num_parts < 1 \
            or not isinstance(part_id, int) or not 0 <= part_id < num_parts:
        raise InputError(f"-part_id must be in 0..num_parts-1 and -num_parts >= 1, got -num_parts {num_parts} "
                         f"-part_id {part_id}")
    assert mode is not None  # checked
    audit_dir = Path(audit_dir).resolve()
    audit = read_audit_record(audit_dir)
    ranking = _ranking(audit_dir, audit["rank_by"])
    if sorted(case for case, _ in ranking) != sorted(audit["cases"]):
        raise InputError(f"{audit_dir / 'suspects.csv'} and its audit.json list different cases; run suspects again")
    count = _selected([score for _, score in ranking], audit["rank_by"], top_k, fraction, threshold)
    source = _load_source(Path(raw_folder or audit["raw_folder"]).resolve(), audit)
    if mode != "drop":
        _check_predictions(audit_dir, audit, [case for case, _ in ranking[:count]])
    if mode == "drop" and count == len(ranking):
        raise InputError(f"dropping all {count} cases would leave no training case")
    name = name or f"{source.folder.name.partition('_')[2] or source.folder.name}_repaired"
    destination = _destination(out_id, name, out)
    labels = dict(source.dataset_json["labels"])
    ignore_value = labels.get("ignore")
    if mode == "ignore" and ignore_value is None:  # nnU-Net's rule: the ignore label is the highest value
        ignore_value = max(int(v) for v in labels.values()) + 1
        labels["ignore"] = ignore_value
    rule = {"top_k": top_k} if top_k is not None else {"fraction": fraction} if fraction is not None else \
        {"threshold": threshold}
    record: dict = {
        "format": 1, "dataset": destination.name,
        "source": {"path": str(source.folder), "dataset": source.folder.name,
                   "labels_digest": labels_digest(audit["labels"])},
        "audit": {"path": str(audit_dir), "model_folder": audit["model_folder"], "rank_by": audit["rank_by"],
                  "suspects_csv": audit["suspects_csv"]},
        "mode": mode, "rule": rule, "confidence": confidence, "ignore_label": ignore_value,
        "cases_total": len(ranking), "cases_chosen": count, "cases": [],
    }
    if destination.exists() and (existing := _unchanged_result(destination, record)) is not None:
        return RepairResult(destination, existing, up_to_date=True)  # a re-run of a finished repair
    _refuse_taken_id(out_id, destination.parent)
    parts = parts_folder(destination.parent, destination.name,  # the audit's checkpoints: its probabilities
                         {**{key: record[key] for key in _REQUEST_KEYS}, "checkpoints": audit.get("checkpoints")})
    from tloss_nnunet.audit.repair_write import write_dataset, write_part

    if num_parts > 1:
        cases = [] if mode == "drop" else part_cases([case for case, _ in ranking[:count]], num_parts, part_id)
        with folders_created(destination.parent):
            write_part(parts, source, audit_dir, audit, cases, mode, ignore_value, confidence)
        return RepairResult(parts, record, part_cases=cases)
    with folders_created(destination.parent), staging_folder(destination.parent, "tloss-repair") as staging:
        staged = staging / destination.name
        write_dataset(staged, source, audit_dir, audit, ranking[:count], mode, ignore_value, confidence, labels,
                      record, parts if parts.is_dir() else None)
        record["files"] = {path.relative_to(staged).as_posix(): file_sha256(path)
                           for path in sorted(staged.rglob("*")) if path.is_file()}
        write_json(staged / "repair.json", record)
        os.rename(staged, destination)  # refused (not replaced) should the name have appeared meanwhile
    remove_parts(destination.parent, destination.name)
    return RepairResult(destination, record)


def changed_summary(record: dict) -> str:
    """One line: how many cases were repaired or dropped and how many pixels changed."""
    pixels = sum(c["changed_pixels"] for c in record["cases"] if not c["dropped"])
    dropped = sum(c["dropped"] for c in record["cases"])
    seen = sum(not c["held_out"] for c in record["cases"])
    note = (f"; {seen} of them by a fold that trained on their label (a weaker judge: train every fold and audit "
            "again)") if seen else ""
    if record["mode"] == "drop":
        return f"dropped {dropped} of {record['cases_total']} case(s){note}"
    return (f"repaired {record['cases_chosen']} of {record['cases_total']} case(s) ({pixels} pixel(s) changed)"
            + note)


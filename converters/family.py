"""Orchestration of one conversion: check, stage (decode once, in parallel), publish, verify.

Order of events and what each guarantees:

1. Option and destination checks (no input is read, nothing is written). If the discovery of the
   inputs (pairing, folders) found problems, every paired case is also decoded and checked, without
   writing, so that ONE :class:`InputError` lists every problem.
2. Staging pass: each case is decoded exactly once, validated, resized, corrupted per setting and
   written to a hidden staging folder under the output. Any input problem: the staging folder is
   deleted and one :class:`InputError` lists every problem; no dataset folder was touched.
   (Why not a separate validation pass: decoding 2750 large JPEGs twice would double the run time.)
3. Publishing: dataset folders are filled with hard links to the staged files (atomic per file),
   ``splits_final.json``, ``noise_log.tsv`` and ``dataset.json`` are written, nnU-Net's integrity
   check runs, and the folder's marker is set to complete. The staging folder is removed last.

A killed run leaves staged cases with their ``done`` records and unfinished dataset folders with
their markers; re-running with the same inputs and options resumes both.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tloss_nnunet.converters.plan import DatasetSpec, FamilySpec
from tloss_nnunet.converters.publish import (
    PublishedDataset,
    destination_problems,
    folder_state,
    install_splits,
    publish_dataset,
    refuse_not_ours,
)
from tloss_nnunet.converters.staging import CaseOutcome, NoiseJob, StagingJob, prepare_staging, run_jobs
from tloss_nnunet.errors import InputError
from tloss_nnunet.interrupts import deferred_interrupts
from tloss_nnunet.noise import plan_noise
from tloss_nnunet.owners import OwnerLock

#: Hidden folder under the output root that holds staging areas (one per family and fingerprint).
STAGING_ROOT = ".tloss_staging"


@dataclass
class ConversionReport:
    """What a conversion produced, for printing and for tests.

    Attributes:
        datasets: one entry per dataset of the family, in id order.
        skipped: inputs left out on purpose (Shenzhen images without a mask).
        color_converted: cases whose image file stored colour channels and became grey.
        resumed_cases: cases found already staged by an interrupted run.
        seconds: wall time per stage (``staging``, ``publishing``, ``verifying`` = nnU-Net's check,
            ``total``).
        installed_splits: where ``--install-splits`` copied ``splits_final.json``.
        repaired: completed datasets whose files went missing or were damaged since, written again.
    """

    family: str
    datasets: list[PublishedDataset]
    skipped: list[str] = field(default_factory=list)
    color_converted: int = 0
    resumed_cases: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    installed_splits: list[Path] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    def format(self) -> str:
        """Multi-line human-readable summary, ending with the nnU-Net commands to run next."""
        lines = [f"{self.family}: {len(self.datasets)} nnU-Net raw dataset(s)"]
        for ds in self.datasets:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(ds.noise_kinds.items()))
            lines.append(f"  {ds.name} [{ds.state}] {ds.num_training} training / {ds.num_test} test cases"
                         + (f"; training labels: {kinds}" if kinds else "") + f"\n    {ds.path}")
            if ds.copied:
                lines.append(f"    note: {ds.copied} files copied (the filesystem refused hard links)")
        if self.skipped:
            shown = ", ".join(self.skipped[:10]) + (", ..." if len(self.skipped) > 10 else "")
            lines.append(f"skipped {len(self.skipped)} image(s) without a mask: {shown}")
        if self.color_converted:
            lines.append(f"{self.color_converted} image(s) stored as colour were converted to one grey channel")
        if self.repaired:
            lines.append("written again (files went missing or were damaged since): " + ", ".join(self.repaired))
        if self.resumed_cases:
            lines.append(f"resumed: {self.resumed_cases} case(s) were already done by an interrupted run")
        if self.seconds:
            lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()))
        ids = " ".join(str(ds.dataset_id) for ds in self.datasets)
        if self.installed_splits:
            lines.append("splits_final.json installed: " + ", ".join(map(str, self.installed_splits)))
        else:
            lines.append("splits_final.json is in each dataset folder; nnUNetv2_plan_and_preprocess copies it "
                         "to $nnUNet_preprocessed/<dataset>/ (or re-run with --install-splits)")
        lines.append("next:")
        lines.append(f"  nnUNetv2_plan_and_preprocess -d {ids} -c 2d --verify_dataset_integrity")
        lines.append(f"  nnUNetv2_train {self.datasets[0].dataset_id} 2d 0 -tr nnUNetTrainerTLoss")
        return "\n".join(lines)


def format_problems(problems: list[str], heading: str) -> str:
    """One message listing every problem, one per line (one problem: one line)."""
    if len(problems) == 1:
        return f"{heading}: {problems[0]}"
    return f"{heading}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems)


def _up_to_date(ds: DatasetSpec, raw: Path) -> PublishedDataset:
    """Summary of a dataset a previous run already completed, read back from its files."""
    log = raw / ds.name / "noise_log.tsv"
    kinds: dict[str, int] = {}
    if ds.setting is not None and log.is_file():
        for line in log.read_text().splitlines()[1:]:
            kind = line.split("\t")[1]
            kinds[kind] = kinds.get(kind, 0) + 1
    meta = json.loads((raw / ds.name / "dataset.json").read_text())  # readable: folder_state checked it
    return PublishedDataset(ds.dataset_id, ds.name, raw / ds.name, meta["numTraining"],
                            meta.get("numTest", 0), kinds, "up to date")


def convert_family(
    spec: FamilySpec,
    raw: Path,
    *,
    workers: int,
    overwrite: bool = False,
    verify: bool = True,
    preprocessed: Path | None = None,
    input_problems: list[str] | None = None,
    progress: bool = True,
) -> ConversionReport:
    """Write every dataset of ``spec`` under ``raw`` (see the module docstring for the stages).

    Args:
        spec: the planned family (cases, settings, names).
        raw: the nnU-Net raw folder (``$nnUNet_raw``).
        workers: processes for decoding/resizing/noise and for nnU-Net's check; 1 = in-process.
        overwrite: replace dataset folders with other content (never other dataset names).
        verify: run nnU-Net's ``verify_dataset_integrity`` on each dataset written.
        preprocessed: if given, copy ``splits_final.json`` to ``preprocessed/<dataset>/``.
        input_problems: problems the dataset reader found (pairing, folders); reported together
            with the per-file problems in one :class:`InputError`.

    Raises:
        InputError: listing every problem with inputs, options and destination.
        IntegrityCheckFailed: nnU-Net rejected a written dataset (a bug; the folder stays unfinished).
    """
    started = time.perf_counter()
    raw = Path(raw)
    datasets = spec.datasets()
    _refuse_problems(spec, raw, datasets, list(input_problems or []), overwrite, workers, progress)
    report = ConversionReport(spec.family, [], skipped=list(spec.skipped))
    states = {ds.name: folder_state(raw / ds.name, ds.fingerprint) for ds in datasets}
    report.repaired = [name for name, state in states.items() if state == "damaged"]
    todo = [ds for ds in datasets if states[ds.name] != "complete"]
    published: dict[str, PublishedDataset] = {}
    if todo:
        raw_existed = raw.exists()
        staging, lock = _staging_folder(spec, raw)
        try:
            outcomes = _stage(spec, raw, staging, raw_existed, todo, workers, progress)
            report.seconds["staging"] = time.perf_counter() - started
            report.resumed_cases = sum(o.resumed for o in outcomes)
            report.color_converted = sum(o.stored_color for o in outcomes) if not spec.color else 0
            by_case = {o.case_id: o for o in outcomes}
            refuse_not_ours(spec, todo, raw, staging, by_case, overwrite)  # files put into unfinished folders
            for ds in todo:
                published[ds.name] = publish_dataset(spec, ds, raw, staging, by_case, verify, workers, progress,
                                                     overwrite)
        finally:
            lock.release()
        verifying = sum(ds.verify_seconds for ds in published.values())
        report.seconds["publishing"] = time.perf_counter() - started - report.seconds["staging"] - verifying
        if verify:
            report.seconds["verifying"] = verifying
    _remove_finished_staging(spec, raw)  # also what a run interrupted while removing it left

    report.datasets = [published.get(ds.name) or _up_to_date(ds, raw) for ds in datasets]
    if preprocessed is not None:
        report.installed_splits = [install_splits(raw / ds.name, Path(preprocessed)) for ds in datasets]
    report.seconds["total"] = time.perf_counter() - started
    return report


def _refuse_problems(spec: FamilySpec, raw: Path, datasets: list[DatasetSpec], input_problems: list[str],
                     overwrite: bool, workers: int, progress: bool) -> None:
    """Stage 1: raise one InputError for the destination's problems and, when the reader found some, every
    per-file problem too (each paired case decoded without writing). Nothing is written."""
    output_problems = destination_problems(raw, datasets, overwrite)
    if input_problems:
        check_jobs = [StagingJob(case, "", spec.size, spec.color, write=False) for case in spec.cases]
        outcomes = run_jobs(check_jobs, workers, f"{spec.family}: checking inputs", progress)
        problems = input_problems + [p for o in outcomes for p in o.problems] + output_problems
        raise InputError(format_problems(problems, f"{spec.family}: nothing was written"))
    if output_problems:
        raise InputError(format_problems(output_problems, f"{spec.family}: nothing was written "
                                                          "(inputs not read yet)"))


def _stage(spec: FamilySpec, raw: Path, staging: Path, raw_existed: bool, todo: list[DatasetSpec], workers: int,
           progress: bool) -> list[CaseOutcome]:
    """Stage 2: decode, resize and corrupt every case once into the staging folder; the outcomes.

    An input problem removes the staging folder (and folders this run created) and raises one InputError.
    """
    noisy = [ds.setting for ds in todo if ds.setting is not None]
    prepare_staging(staging, [s.short for s in noisy])
    plans = {s.short: plan_noise(spec.training_ids, s, seed=spec.seed) for s in noisy}
    jobs = [
        StagingJob(case, str(staging), spec.size, spec.color,
                   noise=tuple(NoiseJob(s.short, plans[s.short][case.case_id], s.beta) for s in noisy)
                   if case.role == "train" else ())
        for case in spec.cases
    ]
    outcomes = run_jobs(jobs, workers, f"{spec.family}: decode, resize, noise", progress)
    problems = [p for o in outcomes for p in o.problems]
    if problems:
        shutil.rmtree(staging)
        _remove_empty(raw / STAGING_ROOT)
        if not raw_existed:
            _remove_empty(raw)
        raise InputError(format_problems(problems, f"{spec.family}: nothing was written"))
    return outcomes


def _staging_folder(spec: FamilySpec, raw: Path) -> tuple[Path, OwnerLock]:
    """The staging folder for these inputs and options (noise settings aside: each setting has its
    own subfolder and each case record says which settings it holds), created and locked by this run.

    Staging folders of the same family with another fingerprint are leftovers of runs with other inputs and
    are removed, unless a live run holds them (:mod:`tloss_nnunet.owners`). A live run holding this very
    folder is refused: two runs must not write the same cases.
    """
    digest = spec.fingerprint(())[:16]
    root = raw / STAGING_ROOT
    for old in root.glob(f"{spec.family}-*") if root.is_dir() else []:
        if old.name != f"{spec.family}-{digest}" and (other := OwnerLock.try_acquire(old)) is not None:
            shutil.rmtree(old)
            other.release()
    staging = root / f"{spec.family}-{digest}"
    staging.mkdir(parents=True, exist_ok=True)
    lock = OwnerLock.try_acquire(staging)
    if lock is None:
        raise InputError(f"another tloss-nnunet convert of the same inputs is writing into {raw}; "
                         "let it finish (or stop it) first")
    return staging, lock


def _remove_finished_staging(spec: FamilySpec, raw: Path) -> None:
    """Every dataset is complete: this family's staging folders are no longer needed (a live run's excepted)."""
    root = raw / STAGING_ROOT
    with deferred_interrupts():  # a Ctrl-C now would only leave a half-removed folder for the next run
        for staging in sorted(root.glob(f"{spec.family}-*")) if root.is_dir() else []:
            if (lock := OwnerLock.try_acquire(staging)) is not None:
                shutil.rmtree(staging, ignore_errors=True)
                lock.release()
        _remove_empty(root)


def _remove_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()

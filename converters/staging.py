"""The one pass over the pixels: decode, validate, resize, corrupt, encode, in parallel over cases.

Each case is decoded exactly once. Its outputs go to a hidden *staging* folder next to the
datasets (same filesystem, so publishing is renames and hard links), never into a dataset, so a
bad input found in case 1999 leaves no dataset touched; the caller deletes the staging folder and
reports every problem at once. A per-case ``done/<case>.json`` record is written last: a re-run
(same fingerprint) skips every case that has one, which is what makes an interrupted run resumable.

Staging layout::

    images/<case>_0000.png        resized image (RGB or grey), shared by the whole family
    labels/<case>.png             resized clean label, 0/1
    noisy/<short>/<case>.png      corrupted label, only where the setting's plan is not "clean"
    done/<case>.json              outcome record (noise kind, rate, note per setting staged)

The staging folder is keyed by the inputs and options except the noise grid; a record that lacks
a setting asked for later makes the case be processed again.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
from tqdm import tqdm

from tloss_nnunet import atomic
from tloss_nnunet.converters.imaging import (
    DecodeError,
    binarize_and_resize_mask,
    decode_color,
    decode_gray,
    decode_mask,
    encode_png,
    mask_value_problem,
    resize_image,
)
from tloss_nnunet.converters.plan import CaseTask
from tloss_nnunet.noise import CaseNoise, apply_noise
from tloss_nnunet.workers import process_pool


@dataclass(frozen=True)
class NoiseJob:
    """Corrupt the case's label for one setting: ``apply_noise(mask, case_noise, beta)``."""

    short: str
    case_noise: CaseNoise
    beta: float


@dataclass(frozen=True)
class StagingJob:
    """Everything a worker needs for one case (small and picklable)."""

    task: CaseTask
    staging: str
    size: int
    color: bool
    noise: tuple[NoiseJob, ...] = ()
    write: bool = True


@dataclass
class CaseOutcome:
    """What happened to one case.

    Attributes:
        problems: input problems found (empty when the case is valid).
        noise: ``{short: {"kind", "noise_rate", "note"}}`` for every setting of the job.
        stored_color: the image file held colour channels (reported for grey datasets).
        resumed: the case was already staged by an earlier, interrupted run.
    """

    case_id: str
    problems: list[str] = field(default_factory=list)
    noise: dict[str, dict] = field(default_factory=dict)
    stored_color: bool = False
    resumed: bool = False


def image_path(staging: Path, case_id: str) -> Path:
    return staging / "images" / f"{case_id}_0000.png"


def label_path(staging: Path, case_id: str) -> Path:
    return staging / "labels" / f"{case_id}.png"


def noisy_label_path(staging: Path, short: str, case_id: str) -> Path:
    return staging / "noisy" / short / f"{case_id}.png"


def record_path(staging: Path, case_id: str) -> Path:
    return staging / "done" / f"{case_id}.json"


def prepare_staging(staging: Path, shorts: Iterable[str]) -> None:
    """Create the staging folders (idempotent) and drop temporaries of a killed run."""
    for sub in ("images", "labels", "done", *(f"noisy/{s}" for s in shorts)):
        (staging / sub).mkdir(parents=True, exist_ok=True)
    atomic.remove_temporaries(staging)


def _read(source, what: str, case_id: str, problems: list[str]) -> bytes | None:
    try:
        return source.read_bytes()
    except (OSError, zipfile.BadZipFile, RuntimeError) as err:  # zip CRC errors are BadZipFile
        problems.append(f"{case_id}: cannot read {what} {source.describe()} ({err})")
        return None


def process_case(job: StagingJob) -> CaseOutcome:
    """Validate one case and, if ``job.write``, stage its image, clean label and noisy labels.

    Problems reported: unreadable file, corrupt image or mask, image/mask size mismatch,
    non-binary mask. Nothing is written for a case with a problem.
    """
    task, staging = job.task, Path(job.staging)
    record = record_path(staging, task.case_id)
    if job.write and record.is_file():
        saved = json.loads(record.read_text())
        wanted = [n.short for n in job.noise]
        if set(wanted) <= set(saved["noise"]):  # staged before, with every setting asked for now
            saved["noise"] = {short: saved["noise"][short] for short in wanted}
            return CaseOutcome(**saved, resumed=True)

    outcome = CaseOutcome(task.case_id)
    problems = outcome.problems
    image_bytes = _read(task.image, "image", task.case_id, problems)
    mask_bytes = _read(task.mask, "mask", task.case_id, problems)
    image = mask = None
    if image_bytes is not None:
        try:
            if job.color:
                image = decode_color(image_bytes)
            else:
                image, outcome.stored_color = decode_gray(image_bytes)
        except DecodeError as err:
            problems.append(f"{task.case_id}: image {task.image.describe()}: {err}")
    if mask_bytes is not None:
        try:
            mask = decode_mask(mask_bytes)
        except DecodeError as err:
            problems.append(f"{task.case_id}: mask {task.mask.describe()}: {err}")
    if mask is not None:
        value_problem = mask_value_problem(mask)
        if value_problem:
            problems.append(f"{task.case_id}: {task.mask.describe()}: {value_problem}")
    if image is not None and mask is not None and image.shape[:2] != mask.shape[:2]:
        problems.append(
            f"{task.case_id}: size mismatch: image {image.shape[1]}x{image.shape[0]} "
            f"({task.image.name}) vs mask {mask.shape[1]}x{mask.shape[0]} ({task.mask.name})"
        )
    if problems or not job.write:
        return outcome

    atomic.write_bytes(image_path(staging, task.case_id), encode_png(resize_image(image, job.size)))
    clean = binarize_and_resize_mask(mask, job.size)
    atomic.write_bytes(label_path(staging, task.case_id), encode_png(clean))
    for noise_job in job.noise:
        if noise_job.case_noise.kind == "clean":  # not selected by alpha: the clean label is linked
            outcome.noise[noise_job.short] = {"kind": "clean", "noise_rate": 0.0, "note": ""}
            continue
        result = apply_noise(clean.astype(bool), noise_job.case_noise, noise_job.beta)
        atomic.write_bytes(
            noisy_label_path(staging, noise_job.short, task.case_id),
            encode_png(result.mask.astype("uint8")),
        )
        outcome.noise[noise_job.short] = {
            "kind": result.kind,
            "noise_rate": float(result.noise_rate),
            "note": result.note,
        }
    saved = asdict(outcome)
    del saved["resumed"]
    atomic.write_json(record, saved)  # last: its presence means "this case is complete"
    return outcome


def _init_worker() -> None:
    # One OpenCV thread per process: the pool already uses every core.
    cv2.setNumThreads(1)


def run_jobs(jobs: list[StagingJob], workers: int, description: str, progress: bool = True) -> list[CaseOutcome]:
    """Run :func:`process_case` over ``jobs`` (in-process when ``workers <= 1``), with a progress bar.

    Returns the outcomes in job order. Pending work is cancelled and the workers stopped if one job raises (a
    bug, not an input problem: those are returned as ``CaseOutcome.problems``) or the run is interrupted.
    """
    outcomes: list[CaseOutcome | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=description, unit="case", disable=not progress or not jobs)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for index, job in enumerate(jobs):
                outcomes[index] = process_case(job)
                bar.update()
        else:
            # The project's pool policy (tloss_nnunet.workers): fork server, this module preloaded.
            # Leaving the block with an exception (Ctrl-C included) cancels the rest and stops the workers.
            with process_pool(workers, initializer=_init_worker, preload=[__name__]) as pool:
                futures = {pool.submit(process_case, job): index for index, job in enumerate(jobs)}
                for future in as_completed(futures):
                    outcomes[futures[future]] = future.result()
                    bar.update()
    finally:
        bar.close()
    return [o for o in outcomes if o is not None]

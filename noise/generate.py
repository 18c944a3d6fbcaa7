"""Generating noisy copies of a folder of masks for several (alpha, beta) settings.

Output layout (``OUT_DIR``)::

    alpha0.3_beta0.5/<case>.png   every case, noisy or copied clean, in the input's value convention
    ...                           one folder per setting
    noise_log.csv                 case, <one column per setting: clean/dilate/erode/affine>, notes
    noise_details.csv             case, setting, kind, angle, direction_row, direction_col,
                                  noise_rate, note  (one row per case and setting)
    preview_<setting>.png         only with ``preview > 0``

``notes`` in noise_log.csv is empty unless some setting deviated from a plain run of the
protocol for that case, e.g. ``alpha0.7_beta0.5: tiny mask (1 px): ... left unchanged``.

Safety: options, folders and preview images are checked before any work starts. Each mask is
read once, by the worker that corrupts it, and validated there; all outputs go to a hidden
staging folder inside ``OUT_DIR``. If any mask is invalid, the staging folder is deleted and one
:class:`~tloss_nnunet.errors.InputError` lists every offending file, so ``OUT_DIR`` is left as it
was (reading each mask once instead of twice is a large part of the per-mask cost). Outputs are
moved into place only when everything succeeded; existing non-empty setting folders or logs are
replaced only with ``overwrite=True``. Ctrl-C or ``kill -9`` leave ``OUT_DIR`` as it was too: the pool stops at
once, the staging folder goes (a killed run's is removed by the next run, :mod:`tloss_nnunet.atomic`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from tloss_nnunet.atomic import folders_created, output_folder_problem, staging_folder, swap_into
from tloss_nnunet.errors import InputError
from tloss_nnunet.interrupts import deferred_interrupts
from tloss_nnunet.noise.apply import apply_noise
from tloss_nnunet.noise.mask_io import read_binary_mask, write_binary_mask
from tloss_nnunet.noise.parallel import ordered_map
from tloss_nnunet.noise.plan import plan_noise
from tloss_nnunet.noise.preview import find_image, image_is_readable, preview_cases, write_preview
from tloss_nnunet.noise.records import DETAILS_NAME, LOG_NAME, CaseRecord, NoiseRunResult, write_logs
from tloss_nnunet.noise.settings import CaseNoise, NoiseSetting
from tloss_nnunet.workers import default_workers, process_pool

STAGING_LABEL = "noise-staging"


@dataclass(frozen=True)
class _CaseTask:
    """Everything one worker needs for one case, across all settings (picklable)."""

    mask_path: Path
    specs: tuple[CaseNoise, ...]
    betas: tuple[float, ...]
    out_paths: tuple[Path, ...]
    unbiased: bool


def _process_case(task: _CaseTask) -> tuple[str, tuple[tuple[float, str], ...]]:
    """Validate and read one mask, write its noisy copy for every setting (worker function).

    Returns:
        ('', (noise_rate, note) per setting), or (problem, ()) if the mask is invalid.
    """
    try:
        clean, max_value = read_binary_mask(task.mask_path)
    except InputError as err:
        return str(err), ()
    outcomes = []
    for spec, beta, out_path in zip(task.specs, task.betas, task.out_paths):
        noisy = apply_noise(clean, spec, beta, unbiased=task.unbiased)
        write_binary_mask(out_path, noisy.mask, max_value)
        outcomes.append((noisy.noise_rate, noisy.note))
    return "", tuple(outcomes)


def _list_masks(mask_dir: Path) -> dict[str, Path]:
    """Case id -> path for every visible ``*.png`` in ``mask_dir``, sorted by id."""
    if not mask_dir.is_dir():
        raise InputError(f"mask folder {mask_dir} does not exist or is not a folder")
    masks = {
        path.stem: path
        for path in sorted(mask_dir.iterdir())
        if path.suffix.lower() == ".png" and not path.name.startswith(".")
    }
    if not masks:
        raise InputError(f"no *.png masks in {mask_dir}")
    return masks


def _existing_outputs(out_dir: Path, names: Sequence[str]) -> list[str]:
    """Names under ``out_dir`` that a run would replace: non-empty folders or existing files."""
    clashes = []
    for name in names:
        path = out_dir / name
        if path.is_dir() and any(path.iterdir()) or path.is_file():
            clashes.append(name)
    return clashes


def _report(problems: Sequence[str]) -> None:
    """Raise one InputError listing every problem, if there are any."""
    if problems:
        listing = "\n  ".join(problems)
        raise InputError(f"{len(problems)} problem(s) with the input, nothing was written:\n  {listing}")


def _preview_image_problems(image_paths: dict[str, Path | None]) -> list[str]:
    """Missing or undecodable preview images."""
    problems = []
    for case, path in image_paths.items():
        if path is None:
            problems.append(f"no image found for preview case {case}")
        elif not image_is_readable(path):
            problems.append(f"{path.name}: unreadable preview image")
    return problems


def _commit(staging: Path, out_dir: Path, names: Sequence[str]) -> None:
    """Move the staged outputs into ``out_dir``, replacing existing ones (moved aside first); Ctrl-C waits until
    all of them are in place, so an interrupt never publishes half of a run."""
    with deferred_interrupts():
        for name in names:
            swap_into(staging / name, out_dir / name)


def generate_noisy_dataset(
    mask_dir: str | Path,
    out_dir: str | Path,
    settings: Sequence[NoiseSetting],
    seed: int = 0,
    workers: int | None = None,
    unbiased: bool = False,
    preview: int = 0,
    image_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> NoiseRunResult:
    """Write noisy copies of every ``mask_dir/<case>.png`` for each setting into ``out_dir``.

    Args:
        mask_dir: folder of binary masks (0/1 or 0/255 single-channel PNGs).
        out_dir: output folder (created if missing); layout in the module docstring.
        settings: the (alpha, beta) pairs; one output folder each.
        seed: seed of the protocol's random stream (0 = the published masks).
        workers: processes for the per-mask work (default: all usable cores). The result does
            not depend on it: all random decisions are drawn before the work is distributed.
        unbiased: unbiased translation directions (see :func:`~tloss_nnunet.noise.plan_noise`).
        preview: number of cases per setting drawn into ``preview_<setting>.png`` (0 = none).
        image_dir: optional folder with ``<case>.<ext>`` images shown in the preview.
        overwrite: replace existing non-empty setting folders and logs.
        progress: show tqdm progress bars.

    Raises:
        InputError: bad settings, unreadable/invalid masks (all listed), missing preview images,
            or outputs that exist without ``overwrite``. Nothing is written in that case.
    """
    out_dir = Path(out_dir)
    run = _plan_run(Path(mask_dir), out_dir, list(settings), seed, unbiased, preview, image_dir, overwrite)
    workers = default_workers() if workers is None else max(1, int(workers))
    # Inner blocks end first: on any exception the pool is stopped before its staging folder is removed.
    with folders_created(out_dir), staging_folder(out_dir, STAGING_LABEL) as staging, \
            process_pool(workers, preload=[__name__]) as pool:
        records = _write_outputs(run, staging, out_dir, unbiased, pool, workers, progress)
    return NoiseRunResult(
        out_dir=out_dir,
        folders={s.name: out_dir / s.name for s in run.settings},
        log_path=out_dir / LOG_NAME,
        details_path=out_dir / DETAILS_NAME,
        preview_paths=tuple(out_dir / f"preview_{name}.png" for name in run.previews),
        records=tuple(records),
    )


@dataclass(frozen=True)
class _RunPlan:
    """Everything decided and checked before any output is written."""

    masks: dict[str, Path]
    settings: list[NoiseSetting]
    plans: dict[str, dict[str, CaseNoise]]  # setting name -> case -> random decisions
    previews: dict[str, list[str]]  # setting name -> cases drawn in its preview
    image_paths: dict[str, Path | None]  # preview case -> its image (None: not found)
    image_problems: list[str]
    output_names: list[str]  # entries of OUT_DIR this run replaces


def _plan_run(mask_dir: Path, out_dir: Path, settings: list[NoiseSetting], seed: int, unbiased: bool,
              preview: int, image_dir: str | Path | None, overwrite: bool) -> _RunPlan:
    """Check the options and folders and draw every random decision; raise InputError, write nothing."""
    names = [setting.name for setting in settings]
    if not settings:
        raise InputError("give at least one (alpha, beta) setting")
    if len(set(names)) != len(names):
        raise InputError(f"duplicate settings: {', '.join(names)}")
    unusable = output_folder_problem(out_dir)
    if unusable:
        raise InputError(unusable)
    if out_dir.resolve() == mask_dir.resolve() or mask_dir.resolve() in out_dir.resolve().parents:
        raise InputError(f"output folder {out_dir} is (inside) the mask folder {mask_dir}; choose another one")
    masks = _list_masks(mask_dir)
    plans = {setting.name: plan_noise(list(masks), setting, seed, unbiased) for setting in settings}
    previews = {name: preview_cases(plan, preview) for name, plan in plans.items()} if preview > 0 else {}
    output_names = [*names, LOG_NAME, DETAILS_NAME, *(f"preview_{name}.png" for name in previews)]
    clashes = _existing_outputs(out_dir, output_names) if out_dir.is_dir() else []
    if clashes and not overwrite:
        raise InputError(
            f"{out_dir} already holds {', '.join(clashes)}; use --overwrite to replace them"
        )
    if image_dir is not None and not Path(image_dir).is_dir():
        raise InputError(f"image folder {image_dir} does not exist or is not a folder")
    wanted_images = sorted({case for cases in previews.values() for case in cases})
    image_paths = {case: find_image(Path(image_dir), case) for case in wanted_images} if image_dir else {}
    # Missing preview images are reported together with bad masks, after the masks were read.
    return _RunPlan(masks, settings, plans, previews, image_paths, _preview_image_problems(image_paths),
                    output_names)


def _write_outputs(run: _RunPlan, staging: Path, out_dir: Path, unbiased: bool, pool: Executor, workers: int,
                   progress: bool) -> list[CaseRecord]:
    """Corrupt every mask, write the logs and previews into ``staging``, then swap them into ``out_dir``."""
    records = _generate(run.masks, run.settings, run.plans, staging, unbiased, pool, workers, progress,
                        run.image_problems)
    write_logs(staging, run.settings, records)
    for name, cases in run.previews.items():
        setting = next(s for s in run.settings if s.name == name)
        write_preview(
            staging / f"preview_{name}.png", setting, cases, run.masks, run.plans[name],
            {case: run.image_paths.get(case) for case in cases}, unbiased,
        )
    _commit(staging, out_dir, run.output_names)
    return records


def _generate(
    masks: dict[str, Path],
    settings: Sequence[NoiseSetting],
    plans: dict[str, dict[str, CaseNoise]],
    staging: Path,
    unbiased: bool,
    pool: Executor,
    workers: int,
    progress: bool,
    known_problems: Sequence[str] = (),
) -> list[CaseRecord]:
    """Run the per-case work (all settings of a case in one task) and collect the records.

    Raises:
        InputError: listing ``known_problems`` and every invalid mask, after all cases were tried.
    """
    for setting in settings:
        (staging / setting.name).mkdir()
    tasks = [
        _CaseTask(
            mask_path=path,
            specs=tuple(plans[s.name][case] for s in settings),
            betas=tuple(s.beta for s in settings),
            out_paths=tuple(staging / s.name / f"{case}.png" for s in settings),
            unbiased=unbiased,
        )
        for case, path in masks.items()
    ]
    records, problems = [], list(known_problems)
    outcomes = ordered_map(_process_case, tasks, pool, workers, "adding label noise", progress)
    for case, (problem, per_setting) in zip(masks, outcomes):
        if problem:
            problems.append(problem)
        for setting, (rate, note) in zip(settings, per_setting):
            records.append(CaseRecord(case, setting.name, plans[setting.name][case], rate, note))
    _report(problems)  # the caller discards the staging folder
    return records

"""What every study's command line shares: the arguments, their checks, the work folder, the run loop.

A study script declares its configurations, settings, arms and record fields, builds its :class:`~.driver.Job`
list from :func:`todo`, and leaves the rest to :func:`execute` (resume, pool, failures, summary) and
:func:`guarded` (an :class:`~tloss_nnunet.errors.InputError` becomes exit code 2 with one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tloss_nnunet.errors import InputError

from .config import StudyConfig, get_config
from .driver import Job, run_jobs
from .store import ResultStore, load_runs

__all__ = ["check_choices", "check_workers", "execute", "guarded", "parser", "records", "scope", "unique",
           "work_folder", "wrote"]


def parser(doc: str, configs: dict[str, StudyConfig], default_out: Path, default_config: str = "cpu",
           runs: bool = True) -> argparse.ArgumentParser:
    """The shared arguments: ``--config --seeds --out --resume --summarize --work-dir --workers`` (the
    run-related ones only when ``runs``); the study adds ``--settings`` / ``--arms`` and its own."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=doc.split("\n\n", 1)[-1])
    p.add_argument("--out", type=Path, default=default_out,
                   help="results JSON; the table (.md) and plots (.png) are written beside it")
    p.add_argument("--summarize", action="store_true", help="only re-make the table and plots from --out")
    if runs:
        p.add_argument("--config", choices=sorted(configs), default=default_config)
        p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the configuration's seeds")
        p.add_argument("--resume", action="store_true", help="continue an existing results file, skip done runs")
        p.add_argument("--work-dir", type=Path, default=None,
                       help="data and nnU-Net folders (default: a folder per configuration under the temp dir)")
        p.add_argument("--workers", type=int, default=1, help="runs in parallel, one CPU thread each")
    return p


def unique(values: Iterable) -> list:
    """``values`` without repeats, in order (a repeated argument must not train the same run twice)."""
    return list(dict.fromkeys(values))


def check_choices(kind: str, values: Sequence[str], known: Iterable[str], context: str = "") -> None:
    """InputError naming the ``values`` not in ``known``."""
    known = list(known)
    bad = [v for v in values if v not in known]
    if bad:
        raise InputError(f"unknown {kind}(s) {bad}{context}; choose from {', '.join(known)}")


def check_workers(args: argparse.Namespace) -> None:
    """InputError unless ``--workers`` is at least 1."""
    if args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")


def records(out: Path, fields: Sequence[str], key_fields: Sequence[str] | None = None) -> list[dict]:
    """The runs of results file ``out`` (each with ``fields`` and ``key_fields``, default the store's); InputError
    when it holds none."""
    runs = load_runs(out, fields) if key_fields is None else load_runs(out, fields, key_fields)
    if not runs:
        raise InputError(f"{out} holds no runs yet")
    return runs


def wrote(paths: Iterable[Path]) -> int:
    """Say which files a summary wrote; exit code 0."""
    for path in paths:
        print(f"wrote {path}")
    return 0


def scope(args: argparse.Namespace, configs: dict[str, StudyConfig], config_datasets: dict[str, Sequence[str]],
          known_datasets: Iterable[str], settings: Iterable[str]) -> tuple[StudyConfig, list[str], tuple[int, ...]]:
    """Check ``--datasets``, ``--settings`` and ``--workers`` of a study over named datasets; return its configuration,
    the datasets to run (``--datasets``, else the configuration's) and the seeds (``--seeds``, else the
    configuration's)."""
    check_choices("dataset", args.datasets or [], known_datasets)
    check_choices("setting", args.settings or [], settings)
    check_workers(args)
    config = get_config(configs, args.config)
    datasets = args.datasets or list(config_datasets[config.name])
    seeds = tuple(args.seeds) if args.seeds is not None else config.seeds
    return config, datasets, seeds


def work_folder(args: argparse.Namespace, study: str, config: StudyConfig) -> Path:
    """``--work-dir``, or ``<temp>/tloss-nnunet-<study>/<config>`` (reused across calls: data are made once)."""
    return args.work_dir or Path(tempfile.gettempdir()) / f"tloss-nnunet-{study}" / config.name


def execute(store: ResultStore, todo: list[tuple], make_jobs: Callable[[list[tuple]], list[Job]], workers: int,
            desc: str, summarize: Callable[[], list[Path]]) -> int:
    """Run the keys of ``todo`` not yet in ``store`` (:func:`~.driver.run_jobs`), then re-make the summary.

    Returns the exit code: 0, or 1 when a run failed (the others ran and are stored; ``--resume`` retries it).
    """
    done = store.done()
    todo = [key for key in todo if key not in done]
    print(f"{len(todo)} run(s) to do ({len(done)} already in {store.path})")
    failed = run_jobs(make_jobs(todo), store, workers, desc=desc) if todo else []
    if store.runs:
        wrote(summarize())
    if failed:
        print(f"{len(failed)} run(s) failed (listed under 'failed' in {store.path}; --resume retries them)",
              file=sys.stderr)
        return 1
    return 0


def guarded(prog: str, main: Callable[[], int]) -> int:
    """``main()``, with an InputError reported as ``<prog>: error: ...`` and exit code 2."""
    try:
        return main()
    except InputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2

"""The one driver of the studies: a study's runs on the project's process pool, resumable, past failures.

Each :class:`Job` is one run (its :func:`~.store.run_key` and a module-level function returning the record).
:func:`run_jobs` runs them through :func:`tloss_nnunet.workers.process_pool` (one worker: in this process),
every worker on ``threads`` torch threads; each record is stored as soon as its run finishes. A run that raises
is noted in the store's ``failed`` list and on stderr, and the others still run; the caller turns the returned
failures into a non-zero exit code. Finished runs are skipped by the caller's ``store.done()`` (``--resume``).
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, as_completed
from contextlib import contextmanager
from dataclasses import dataclass

from tqdm import tqdm

from tloss_nnunet.workers import process_pool

from .store import ResultStore

__all__ = ["Job", "run_jobs", "run_tasks"]


@dataclass(frozen=True)
class Job:
    """One run: ``function(*args)`` returns its record; ``key`` is the record's run key."""

    key: tuple
    function: Callable[..., dict]
    args: tuple


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@contextmanager
def _pool(total: int, workers: int, threads: int, desc: str, unit: str) -> Iterator[tuple[Executor, tqdm]]:
    """The project's pool of ``workers`` processes on ``threads`` torch threads each, with a progress bar."""
    import torch

    saved = torch.get_num_threads()
    if workers == 1:  # the in-process executor runs each job at submission, in this thread
        _set_threads(threads)
    try:
        with tqdm(total=total, desc=desc, unit=unit) as bar, \
                process_pool(workers, initializer=functools.partial(_set_threads, threads)) as pool:
            yield pool, bar
    finally:
        torch.set_num_threads(saved)


def run_jobs(jobs: Sequence[Job], store: ResultStore, workers: int = 1, threads: int = 1,
             desc: str = "study") -> list[tuple]:
    """Run ``jobs``, store every record as it comes, and return the keys of the runs that failed."""
    failed: list[tuple] = []

    def collect(future: Future, job: Job, bar: tqdm) -> None:
        try:
            store.add(future.result())
        except Exception as error:  # noqa: BLE001 - one failed run must not lose or stop the others
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            print(f"run {job.key} failed: {detail}", file=sys.stderr)
            store.fail(job.key, detail)
            failed.append(job.key)
        bar.update()

    with _pool(len(jobs), workers, threads, desc, "run") as (pool, bar):
        pending: dict[Future, Job] = {}
        for job in jobs:
            future = pool.submit(job.function, *job.args)
            if future.done():
                collect(future, job, bar)
            else:
                pending[future] = job
        for future in as_completed(pending):
            collect(future, pending[future], bar)
    return failed


def run_tasks(tasks: Sequence[tuple[Callable, tuple]], workers: int = 1, threads: int = 1,
              desc: str = "tasks") -> Iterator:
    """``function(*args)`` of each task on the same pool as :func:`run_jobs`, nothing stored; yields the results
    in the tasks' order, each as soon as it and those before it are done, so a caller can keep each before the
    next finishes (the first exception is raised, the running tasks stopped)."""
    with _pool(len(tasks), workers, threads, desc, "task") as (pool, bar):
        futures = [pool.submit(function, *args) for function, args in tasks]
        for future in futures:
            result = future.result()
            bar.update()
            yield result

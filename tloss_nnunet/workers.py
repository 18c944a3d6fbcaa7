"""Worker counts and the one process-pool policy of the project (noise, converters, synthetic releases).

Policy: more than one worker -> a :class:`~concurrent.futures.ProcessPoolExecutor` whose processes come from
a fork server (``spawn`` where there is none); one worker -> :class:`InProcessExecutor`, the same interface
run in the calling process, so callers have a single code path.

Why not plain ``fork``: a forked child inherits the parent's thread pools in whatever state they were, and
OpenCV's deadlocks once it has run in the parent (a script that drew a synthetic release, then converted it;
noise applied after a preview). A fork server forks from a clean process that imported only the modules named
in ``preload``, so workers still start fast. Like ``spawn``, it needs scripts guarded by
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Callable, Sequence

__all__ = ["InProcessExecutor", "default_workers", "process_pool", "worker_context"]


def default_workers() -> int:
    """Number of CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not available on macOS / Windows
        return os.cpu_count() or 1


def worker_context(preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """Start method of every pool: ``forkserver`` (importing ``preload`` once) where available, else ``spawn``."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        if preload:
            context.set_forkserver_preload(list(preload))
        return context
    return multiprocessing.get_context("spawn")


class InProcessExecutor(Executor):
    """An executor that runs each call at submission, in this process (the one-worker case of the policy).

    ``map`` (inherited) and ``submit`` behave as on a process pool; exceptions are delivered through the future.
    """

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the caller through the future, as a pool does
            future.set_exception(error)
        return future

    def map(self, fn: Callable, *iterables, timeout: float | None = None, chunksize: int = 1):  # noqa: ARG002
        """Lazy, like a pool's results: each call runs when its result is taken (so progress bars move)."""
        return map(fn, *iterables)


def process_pool(workers: int, initializer: Callable[[], None] | None = None,
                 preload: Sequence[str] = ()) -> Executor:
    """The executor for ``workers`` processes under the project's policy (see the module docstring).

    Use it as a context manager. ``initializer`` runs once in each worker process (not in-process).
    """
    if workers <= 1:
        return InProcessExecutor()
    return ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(preload), initializer=initializer)

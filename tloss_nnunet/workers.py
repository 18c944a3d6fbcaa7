"""Worker counts and the one process-pool policy of the project (noise, converters, synthetic releases).

Policy: more than one worker -> a :class:`~concurrent.futures.ProcessPoolExecutor` whose processes come from
a fork server (``spawn`` where there is none); one worker -> :class:`InProcessExecutor`, the same interface
run in the calling process, so callers have a single code path.

Why not plain ``fork``: a forked child inherits the parent's thread pools in whatever state they were, and
OpenCV's deadlocks once it has run in the parent (a script that drew a synthetic release, then converted it;
noise applied after a preview). A fork server forks from a clean process that imported only the modules named
in ``preload``, so workers still start fast. Like ``spawn``, it needs scripts guarded by
``if __name__ == "__main__":``.

Faults: every pool process ignores Ctrl-C (the parent handles it and stops the pool) and ends itself when the
process that started it is gone (a watchdog thread waits on :func:`multiprocessing.parent_process`'s
sentinel), so ``kill -9`` of a command leaves no worker behind; the fork server and the resource tracker then
see their last client go and exit too. Leaving a pool's ``with`` block with an exception (Ctrl-C included)
cancels the pending work and terminates the workers instead of waiting for them.
"""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from tloss_nnunet.interrupts import deferred_interrupts

__all__ = ["InProcessExecutor", "default_workers", "pools_follow_policy", "process_pool", "stop_pool",
           "worker_context"]

#: Exit status of a worker whose parent died (nobody reads it; it tells the case apart in a core dump).
PARENT_GONE_EXIT = 70


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


def _exit_with_parent() -> None:
    """In a pool process: a daemon thread ends this process as soon as the process that started it is gone."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])  # readable (EOF) once the parent's end is closed: it died
        os._exit(PARENT_GONE_EXIT)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _start_worker(initializer: Callable[..., None] | None, *initargs: Any) -> None:
    """First thing every pool process runs: Ctrl-C is the parent's to handle, die with the parent, then the
    caller's own initializer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    if initializer is not None:
        initializer(*initargs)


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel the pending work and terminate the workers now, without waiting for running tasks.

    Ctrl-C is held back meanwhile (:func:`~tloss_nnunet.interrupts.deferred_interrupts`), so a second one
    cannot leave the pool half shut down.
    """
    with deferred_interrupts():
        processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
        manager = getattr(pool, "_executor_manager_thread", None)
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():  # pragma: no cover - a worker stuck in uninterruptible I/O
                process.kill()
                process.join()
        if manager is not None:
            manager.join(timeout=10)  # it notices the dead workers and closes the queues itself


class _PolicyPool(ProcessPoolExecutor):
    """A process pool whose ``with`` block waits for the workers on success and stops them on any exception."""

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        # The first submit starts the workers: Ctrl-C must not land between starting one and registering it
        # (an unregistered worker would outlive stop_pool and fail loudly on the queues it closed).
        with deferred_interrupts():
            return super().submit(fn, *args, **kwargs)

    def __exit__(self, exc_type, exc, tb) -> None:  # never swallows the block's exception
        if exc_type is not None:
            stop_pool(self)
            return
        try:
            self.shutdown(wait=True)
        except BaseException:  # Ctrl-C while waiting for the last tasks
            stop_pool(self)
            raise


def process_pool(workers: int, initializer: Callable[[], None] | None = None,
                 preload: Sequence[str] = ()) -> Executor:
    """The executor for ``workers`` processes under the project's policy (see the module docstring).

    Use it as a context manager. ``initializer`` runs once in each worker process (not in-process).
    """
    if workers <= 1:
        return InProcessExecutor()
    return _PolicyPool(max_workers=workers, mp_context=worker_context(preload),
                       initializer=functools.partial(_start_worker, initializer))


class _PolicyContext:
    """A multiprocessing context whose ``Pool`` processes start with :func:`_start_worker`."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self._context = context

    def Pool(self, processes=None, initializer=None, initargs=(), *args, **kwargs):  # noqa: N802 - as multiprocessing
        return self._context.Pool(processes, functools.partial(_start_worker, initializer), initargs, *args,
                                  **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _PolicyMultiprocessing:
    """Stands in for the ``multiprocessing`` module inside a third-party module (see :func:`pools_follow_policy`)."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def get_context(self, method: str | None = None) -> _PolicyContext:
        return _PolicyContext(self._module.get_context(method))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


@contextmanager
def pools_follow_policy(module: ModuleType) -> Iterator[None]:
    """While the block runs, pools that ``module`` makes with ``multiprocessing.get_context(...).Pool`` start
    their processes like ours (ignore Ctrl-C, end with the parent): nnU-Net's integrity check makes its own
    spawn pool, whose workers would otherwise outlive a killed command."""
    patched: Any = module  # its `multiprocessing` attribute is the module's own import, unknown to a type checker
    original = patched.multiprocessing
    patched.multiprocessing = _PolicyMultiprocessing(original)
    try:
        yield
    finally:
        patched.multiprocessing = original

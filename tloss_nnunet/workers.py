"""Worker counts and the one process-pool policy of the project (noise, converters, synthetic releases).

Policy: more than one worker -> a :class:`~concurrent.futures.ProcessPoolExecutor` whose processes come from
a fork server (``spawn`` where there is none); one worker -> :class:`InProcessExecutor`, the same interface
run in the calling process, so callers have a single code path.

Why not plain ``fork``: a forked child inherits the parent's thread pools in whatever state they were, and
OpenCV's deadlocks once it has run in the parent (a script that drew a synthetic release, then converted it;
noise applied after a preview). A fork server forks from a clean process that imported only the modules named
in ``preload``, so workers still start fast. Like ``spawn``, it needs scripts guarded by
``if __name__ == "__main__":``.

Faults: every pool process starts with Ctrl-C blocked, then ignores it (the parent handles it and stops the
pool), and ends itself when the process that started it is gone (:mod:`tloss_nnunet.worker_start`), so
neither a terminal's Ctrl-C (sent to the whole process group) nor ``kill -9`` of a command leaves a traceback
or a worker behind; the fork server and the resource tracker, also started with Ctrl-C blocked, then see their
last client go and exit too. :func:`pools_follow_policy` extends this to the processes nnU-Net starts.
Leaving a pool's ``with`` block with an exception (Ctrl-C included) cancels the pending work and terminates
the workers instead of waiting for them.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from tloss_nnunet.interrupts import deferred_interrupts, sigint_blocked
from tloss_nnunet.worker_start import Initializer, arrived_process, start_worker

__all__ = ["InProcessExecutor", "default_workers", "pools_follow_policy", "process_pool", "stop_pool",
           "worker_context"]



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
        # (an unregistered worker would outlive stop_pool and fail loudly on the queues it closed); and the fork
        # server, the resource tracker and the workers start with it blocked, so the terminal's Ctrl-C (sent to the
        # whole group) cannot kill them while they import (a fork server dying so ends the command in EOFError).
        with deferred_interrupts(), sigint_blocked():
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
                       initializer=Initializer(initializer))


class _PolicyProcess(multiprocessing.process.BaseProcess):
    """A ``Process`` of a third-party module under the policy: starts with SIGINT blocked, then runs
    :func:`start_worker` before its target. Concrete per start method below (pickled by reference for spawn)."""

    def start(self) -> None:
        with sigint_blocked():
            super().start()

    def run(self) -> None:
        start_worker(None)
        super().run()

    def __reduce__(self) -> tuple:  # spawn and forkserver pickle the process: the arrival hook comes first
        return arrived_process, (type(self), os.getpid()), self.__dict__


_PROCESS_CLASSES: dict[str, type] = {
    method: type(f"_Policy{base.__name__}", (_PolicyProcess, base), {"__module__": __name__})
    for method, base in (("spawn", getattr(multiprocessing.context, "SpawnProcess", None)),
                         ("fork", getattr(multiprocessing.context, "ForkProcess", None)),
                         ("forkserver", getattr(multiprocessing.context, "ForkServerProcess", None)))
    if base is not None}
for _cls in _PROCESS_CLASSES.values():  # module attributes, so that spawn can pickle them by name
    globals()[_cls.__name__] = _cls


class _PolicyContext:
    """A multiprocessing context whose ``Pool`` and ``Process`` processes start like ours (SIGINT blocked, then
    :func:`start_worker`); what it starts is appended to ``started`` (stopped on an exception)."""

    def __init__(self, context: multiprocessing.context.BaseContext, started: list) -> None:
        self._context = context
        self._started = started

    def Pool(self, processes=None, initializer=None, initargs=(), *args, **kwargs):  # noqa: N802 - as multiprocessing
        with sigint_blocked():  # its worker-handler threads inherit the mask too: replacement workers start blocked
            pool = self._context.Pool(processes, Initializer(initializer), initargs, *args, **kwargs)
        self._started.append(pool)
        return pool

    def Process(self, *args, **kwargs):  # noqa: N802 - as multiprocessing
        process = _PROCESS_CLASSES[self._context.get_start_method()](*args, **kwargs)
        self._started.append(process)
        return process

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _PolicyMultiprocessing:
    """Stands in for the ``multiprocessing`` module inside a third-party module (see :func:`pools_follow_policy`)."""

    def __init__(self, module: ModuleType, started: list) -> None:
        self._module = module
        self._started = started

    def get_context(self, method: str | None = None) -> _PolicyContext:
        return _PolicyContext(self._module.get_context(method), self._started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _policy_manager(started: list) -> Any:
    """``multiprocessing.Manager()`` whose server process starts like our workers (nnU-Net's predictor makes one
    per call; a forked server would otherwise outlive a killed command)."""
    from multiprocessing.managers import SyncManager

    manager = SyncManager(ctx=multiprocessing.get_context())
    with sigint_blocked():
        manager.start(functools.partial(start_worker, None))
    started.append(manager)
    return manager


def _stop_started(started: list) -> None:
    """Stop what a patched module started, newest first, without waiting for its work (Ctrl-C held meanwhile)."""
    with deferred_interrupts():
        for thing in reversed(started):
            if isinstance(thing, multiprocessing.process.BaseProcess):
                if thing.is_alive():
                    thing.terminate()
                    thing.join(timeout=5)
                    if thing.is_alive():  # pragma: no cover - stuck in uninterruptible I/O
                        thing.kill()
                        thing.join()
            elif hasattr(thing, "terminate"):  # a multiprocessing.pool.Pool
                thing.terminate()
            else:  # a manager: its server process
                thing.shutdown()


@contextmanager
def pools_follow_policy(*modules: ModuleType) -> Iterator[None]:
    """While the block runs, the processes that ``modules`` start start like ours: SIGINT blocked from birth,
    then ignored, and each ends itself when its parent is gone.

    Patched, in each module: its ``multiprocessing`` attribute (``get_context(...).Pool`` and ``.Process``) and,
    where it has them, ``Pool`` (as ``from multiprocessing import Pool`` makes it) and ``Manager`` (as ``from
    torch.multiprocessing import Manager`` makes it). nnU-Net's case listing forks a pool of 12
    (``get_filenames_of_train_images_and_targets``); its integrity check makes its own spawn pool; its predictor
    makes a manager, spawned preprocessing processes and a spawn export pool. Without this, a terminal's Ctrl-C
    prints their tracebacks (and the command can wait on them) and ``kill -9`` of the command leaves them
    running. When the block raises (Ctrl-C included), what they started is stopped before the exception goes on;
    managers are shut down at the end in any case.
    """
    started: list = []
    saved: list[tuple[Any, str, Any]] = []
    for module in modules:
        patched: Any = module  # its attributes are the module's own imports, unknown to a type checker
        if hasattr(patched, "multiprocessing"):
            saved.append((patched, "multiprocessing", patched.multiprocessing))
            patched.multiprocessing = _PolicyMultiprocessing(patched.multiprocessing, started)
        if hasattr(patched, "Pool"):  # `from multiprocessing import Pool`: the default context's pool
            saved.append((patched, "Pool", patched.Pool))
            patched.Pool = _PolicyContext(multiprocessing.get_context(), started).Pool
        if hasattr(patched, "Manager"):
            saved.append((patched, "Manager", patched.Manager))
            patched.Manager = functools.partial(_policy_manager, started)
    try:
        yield
    except BaseException:
        _stop_started(started)
        raise
    finally:
        for patched, name, original in reversed(saved):
            setattr(patched, name, original)
    _stop_started([thing for thing in started if hasattr(thing, "shutdown") and not hasattr(thing, "terminate")])

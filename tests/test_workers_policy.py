"""Processes a third-party module starts under :func:`tloss_nnunet.workers.pools_follow_policy` (nnU-Net's
predictor and integrity check): they start with SIGINT blocked and then ignore it, a spawned one is killed by the
kernel with its parent (Linux), managers are shut down, and what they started is stopped when the block raises."""

from __future__ import annotations

import multiprocessing
import signal
import sys
import time
import types

import pytest

from tloss_nnunet.workers import pools_follow_policy

_PR_GET_PDEATHSIG = 2


def _state(_: object = None) -> tuple[bool, bool, int]:
    """(SIGINT ignored, SIGINT blocked, parent-death signal) of the calling process."""
    pdeathsig = -1
    if sys.platform == "linux":
        import ctypes

        value = ctypes.c_int(0)
        ctypes.CDLL(None).prctl(_PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0)
        pdeathsig = value.value
    return (signal.getsignal(signal.SIGINT) is signal.SIG_IGN,
            signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []), pdeathsig)


def _report(queue) -> None:
    queue.put(_state())


def _foreign_module() -> types.ModuleType:
    module = types.ModuleType("foreign")
    module.multiprocessing = multiprocessing  # type: ignore[attr-defined]
    module.Manager = multiprocessing.Manager  # type: ignore[attr-defined]
    return module


def test_pool_and_process_workers_ignore_ctrl_c_and_die_with_the_parent():
    module = _foreign_module()
    with pools_follow_policy(module):
        context = module.multiprocessing.get_context("spawn")
        with context.Pool(2) as pool:
            states = pool.map(_state, range(2))
        queue = module.Manager().Queue()
        process = context.Process(target=_report, args=(queue,))
        process.start()
        states.append(queue.get(timeout=60))
        process.join()
    assert module.multiprocessing is multiprocessing and module.Manager is multiprocessing.Manager  # restored
    want_pdeathsig = signal.SIGKILL if sys.platform == "linux" else -1
    assert states == [(True, False, want_pdeathsig)] * 3


def test_managers_end_with_the_block_and_workers_stop_when_it_raises():
    module = _foreign_module()
    with pytest.raises(KeyboardInterrupt), pools_follow_policy(module):
        manager = module.Manager()
        process = module.multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
        process.start()
        raise KeyboardInterrupt
    assert not process.is_alive()
    assert not manager._process.is_alive()


def test_a_module_level_pool_starts_like_ours():
    """``from multiprocessing import Pool`` (nnU-Net's case listing forks 12 of them): patched too."""
    module = types.ModuleType("lister")
    module.Pool = multiprocessing.Pool  # type: ignore[attr-defined]
    with pools_follow_policy(module), module.Pool(2) as pool:  # type: ignore[attr-defined]
        states = pool.map(_state, range(2))
    assert all(ignored and not blocked for ignored, blocked, _ in states), states
    assert module.Pool is multiprocessing.Pool  # type: ignore[attr-defined]  # restored

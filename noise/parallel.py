"""Ordered parallel map over a process pool, with a tqdm progress bar."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

from tqdm.auto import tqdm

Item = TypeVar("Item")
Result = TypeVar("Result")


def default_workers() -> int:
    """Number of CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not available on macOS / Windows
        return os.cpu_count() or 1


def ordered_map(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    executor: ProcessPoolExecutor | None,
    workers: int,
    description: str,
    progress: bool = True,
) -> Iterator[Result]:
    """Yield ``function(item)`` for every item, in input order.

    With an ``executor`` (of ``workers`` processes) the items are sent in chunks (a few per worker and round, so that the
    bar moves and stragglers are short); without one they run in this process. ``function`` must
    be a module-level function with picklable arguments.
    """
    if executor is None:
        results: Iterator[Result] = map(function, items)
    else:
        chunksize = max(1, min(32, len(items) // (max(1, workers) * 8)))
        results = executor.map(function, items, chunksize=chunksize)
    yield from tqdm(results, total=len(items), desc=description, unit="case", disable=not progress)

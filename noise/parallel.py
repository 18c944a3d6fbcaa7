"""Ordered map over an executor of the project's pool policy (:mod:`tloss_nnunet.workers`), with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from typing import TypeVar

from tqdm.auto import tqdm

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    executor: Executor,
    workers: int,
    description: str,
    progress: bool = True,
) -> Iterator[Result]:
    """Yield ``function(item)`` for every item, in input order.

    The items are sent to ``executor`` (of ``workers`` processes) in chunks: a few per worker and round, so that
    the bar moves and stragglers are short. ``function`` must be a module-level function with picklable
    arguments.
    """
    chunksize = max(1, min(32, len(items) // (max(1, workers) * 8)))
    results = executor.map(function, items, chunksize=chunksize)
    yield from tqdm(results, total=len(items), desc=description, unit="case", disable=not progress)

"""The studies' one plotting helper: a matplotlib figure on the Agg backend, written atomically as PNG."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tloss_nnunet.atomic import atomic_target

__all__ = ["figure"]


@contextmanager
def figure(path: Path, *subplots: int, dpi: int = 100, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
    """``with figure(path, rows, cols, figsize=...) as (fig, axes): ...`` draws, then writes ``path``.

    The figure is saved (through a temporary name, so a reader never sees half a file) only when the block
    finishes without an exception, and closed in every case. ``subplots`` and ``kwargs`` go to
    ``plt.subplots``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*subplots, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_target(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)

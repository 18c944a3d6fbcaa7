"""nu in nnU-Net's per-epoch logging and in progress.png.

nnU-Net's ``LocalLogger`` accepts only keys that already exist in its ``my_fantastic_logging`` dict and
replaces that dict wholesale when a checkpoint is loaded, so the ``nu`` key is (re-)registered by
:func:`ensure_logging_key`. :class:`NuLocalLogger` leaves nnU-Net's three panels as they are and appends
a fourth one, nu per epoch, below them in the same progress.png.
"""

from __future__ import annotations

import io
import math
import os

import numpy as np
from nnunetv2.training.logging.nnunet_logger import LocalLogger
from PIL import Image

from tloss_nnunet.atomic import atomic_target
from tloss_nnunet.nnunet.checkpoint_keys import NU_KEY

__all__ = ["NU_KEY", "NuLocalLogger", "ensure_logging_key", "append_panel_below"]


def ensure_logging_key(logging: dict, key: str) -> int:
    """Make sure ``logging[key]`` is a list as long as the longest other entry; return how many were padded.

    Epochs logged before the key existed (a checkpoint from an older version) are padded with NaN: the value
    is unknown, and NaN leaves a visible gap in the plot instead of inventing a value.
    """
    values = logging.setdefault(key, [])
    epochs = max((len(v) for k, v in logging.items() if k != key and isinstance(v, list)), default=0)
    missing = epochs - len(values)
    if missing > 0:
        values.extend([math.nan] * missing)
    return max(missing, 0)


def append_panel_below(png_path: str, x: list[int], y: list[float], ylabel: str, title: str) -> None:
    """Render a line plot of ``y`` over ``x`` as wide as the image at ``png_path`` and append it below.

    The result replaces ``png_path`` atomically (written to a temporary file in the same folder first).
    """
    # matplotlib is imported here, not with the module: nnU-Net imports the trainer for every -tr lookup.
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    with Image.open(png_path) as image:
        base = image.convert("RGB")
    dpi = 100
    width_in = base.width / dpi
    fig, ax = plt.subplots(1, 1, figsize=(width_in, width_in * 0.6), dpi=dpi)
    ax.plot(x, y, color="m", ls="-", marker="o", label=title, linewidth=4, markersize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    finite = np.asarray(y, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size and finite.max() / max(finite.min(), 1e-12) > 100:
        ax.set_yscale("log")  # nu can grow by orders of magnitude on clean data
    ax.legend(loc=(0, 1))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as panel_image:
        panel = panel_image.convert("RGB")
    if panel.width != base.width:
        panel = panel.resize((base.width, round(panel.height * base.width / panel.width)))
    combined = Image.new("RGB", (base.width, base.height + panel.height), "white")
    combined.paste(base, (0, 0))
    combined.paste(panel, (0, base.height))
    with atomic_target(png_path) as tmp:
        combined.save(tmp, format="PNG")


class NuLocalLogger(LocalLogger):
    """nnU-Net's LocalLogger with a ``nu`` entry per epoch and a fourth progress.png panel for it."""

    def __init__(self, verbose: bool = False) -> None:
        super().__init__(verbose)
        self.my_fantastic_logging[NU_KEY] = []
        self.padded_on_load = 0  # epochs without a nu value in the last loaded checkpoint

    @classmethod
    def replacing(cls, logger: LocalLogger) -> NuLocalLogger:
        """A NuLocalLogger holding ``logger``'s values (with ``nu`` added)."""
        new = cls(getattr(logger, "verbose", False))
        new.my_fantastic_logging = logger.my_fantastic_logging
        ensure_logging_key(new.my_fantastic_logging, NU_KEY)
        return new

    def load_checkpoint(self, checkpoint: dict) -> None:
        super().load_checkpoint(checkpoint)
        self.padded_on_load = ensure_logging_key(self.my_fantastic_logging, NU_KEY)

    def plot_progress_png(self, output_folder: str) -> None:
        super().plot_progress_png(output_folder)
        # nnU-Net plots the epochs for which every key has a value; use the same range.
        n_epochs = min(len(v) for v in self.my_fantastic_logging.values())
        nu = self.my_fantastic_logging[NU_KEY][:n_epochs]
        append_panel_below(os.path.join(output_folder, "progress.png"), list(range(n_epochs)), nu,
                           ylabel="nu (degrees of freedom)", title="T-Loss nu (end of training epoch)")

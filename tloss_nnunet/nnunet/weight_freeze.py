"""Per-case weight caps frozen at the end of early learning: the state of ``nnUNetTrainerTLoss_freeze``.

During an epoch, :meth:`WeightFreeze.record` (called by :class:`~.weight_cap.CappedWeightTLoss` on each
training batch) adds up, per case identifier, the full-resolution T-Loss weights w_i, and over the batch the
foreground TP / FP / FN of the prediction against the given labels. :meth:`WeightFreeze.close_epoch` turns them
into the epoch's training agreement 2 TP / (2 TP + FP + FN) and each seen case's mean weight of that epoch (a
case keeps the mean of the last epoch it was seen in), then feeds the agreement to the label-free
:class:`~.early_learning.EarlyLearningDetector`. When it fires, cap_i = that case's weight then; a case never
seen gets the median of the caps. From then on :meth:`caps_for` gives those caps (infinite before).

Under DDP every rank sees other batches: :func:`ddp_merge` sums the counts and the per-case sums over ranks
(an all-reduce and an all-gather of objects) before the epoch is closed, so every rank computes the same
agreement, the same detection and the same caps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import distributed as dist

from tloss_nnunet.nnunet.early_learning import EarlyLearningDetector

__all__ = ["EpochSummary", "WeightFreeze", "ddp_merge"]

#: (counts [TP, FP, FN], per-case {key: [sum of w, n]}) -> the same, summed over DDP ranks.
Merge = Callable[[np.ndarray, dict[str, list[float]]], "tuple[np.ndarray, dict[str, list[float]]]"]


class EpochSummary(dict):
    """What one closed epoch gives: ``epoch`` (1-based), ``agreement``, ``fired`` (the caps froze now),
    ``capped_fraction`` (share of this epoch's training samples whose weight was capped)."""


class WeightFreeze:
    """Per-case weights, training agreement, detection and caps (module docstring); ``state_dict`` is all of it."""

    def __init__(self) -> None:
        self.detector = EarlyLearningDetector()
        self.last_weight: dict[str, float] = {}
        self.caps: dict[str, float] | None = None
        self.default_cap: float | None = None
        self.steps_in_epoch = 0
        self._reset_epoch()

    def _reset_epoch(self) -> None:
        self._counts = np.zeros(3)
        self._sums: dict[str, list[float]] = {}
        self._capped = [0, 0]

    @property
    def frozen(self) -> bool:
        return self.caps is not None

    def caps_for(self, keys: Sequence[str]) -> list[float]:
        """cap_i per key: infinite before the freeze, the median cap for a case never seen before it."""
        if self.caps is None:
            return [math.inf] * len(keys)
        return [self.caps.get(key, self.default_cap) for key in keys]  # type: ignore[misc]

    def record(self, keys: Sequence[str], weights: torch.Tensor, factors: torch.Tensor, counts: torch.Tensor) -> None:
        """One training batch: ``weights`` / ``factors`` (B,) per case, ``counts`` (3,) TP, FP, FN (one host copy)."""
        if len(keys) != weights.shape[0]:
            raise ValueError(f"{len(keys)} case keys for a batch of {weights.shape[0]}")
        host = torch.cat([weights.detach().double(), factors.detach().double(), counts.double()]).cpu().numpy()
        batch = len(keys)
        for key, w in zip(keys, host[:batch]):
            entry = self._sums.setdefault(str(key), [0.0, 0.0])
            entry[0] += float(w)
            entry[1] += 1.0
        self._capped[0] += int((host[batch:2 * batch] < 1.0).sum())
        self._capped[1] += batch
        self._counts += host[2 * batch:]

    def close_epoch(self, merge: Merge | None = None) -> EpochSummary:
        """End the epoch (after every rank's last step of it): agreement, weights, detection, maybe the freeze."""
        counts, sums = (self._counts, self._sums) if merge is None else merge(self._counts, self._sums)
        tp, fp, fn = (float(v) for v in counts)
        agreement = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else math.nan
        for key, (total, n) in sums.items():
            if n > 0:
                self.last_weight[key] = total / n
        fired = False
        if not self.frozen:
            fired = self.detector.update(agreement)
            if fired:
                self._freeze()
        else:
            self.detector.update(agreement)  # the history goes on (logged, checkpointed); it fires only once
        capped_fraction = self._capped[0] / self._capped[1] if self._capped[1] else 0.0
        summary = EpochSummary(epoch=len(self.detector.history), agreement=agreement, fired=fired,
                               capped_fraction=capped_fraction)
        self._reset_epoch()
        self.steps_in_epoch = 0
        return summary

    def _freeze(self) -> None:
        self.caps = dict(self.last_weight)
        self.default_cap = float(np.median(list(self.caps.values()))) if self.caps else math.inf

    def caps_summary(self) -> str:
        """One line: how many caps, their min / median / max."""
        if self.caps is None:
            return "not frozen"
        values = np.array(list(self.caps.values()) or [math.nan])
        return (f"{len(self.caps)} case caps, min {values.min():.4g}, median {np.median(values):.4g}, "
                f"max {values.max():.4g}")

    def state_dict(self) -> dict[str, Any]:
        """Plain Python values (a checkpoint reads them without this package)."""
        return {"detector": self.detector.state_dict(), "last_weight": dict(self.last_weight),
                "caps": None if self.caps is None else dict(self.caps), "default_cap": self.default_cap,
                "steps_in_epoch": self.steps_in_epoch, "epoch_counts": self._counts.tolist(),
                "epoch_sums": {k: list(v) for k, v in self._sums.items()}, "epoch_capped": list(self._capped)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.detector.load_state_dict(state["detector"])
        self.last_weight = {str(k): float(v) for k, v in state["last_weight"].items()}
        self.caps = None if state["caps"] is None else {str(k): float(v) for k, v in state["caps"].items()}
        self.default_cap = None if state["default_cap"] is None else float(state["default_cap"])
        self.steps_in_epoch = int(state.get("steps_in_epoch", 0))
        self._counts = np.array(state.get("epoch_counts", [0.0, 0.0, 0.0]), dtype=float)
        self._sums = {str(k): [float(x) for x in v] for k, v in state.get("epoch_sums", {}).items()}
        self._capped = [int(x) for x in state.get("epoch_capped", [0, 0])]


def ddp_merge(device: torch.device) -> Merge:
    """A :data:`Merge` over the initialised process group (identity when there is none): the counts are
    all-reduced (a tensor on ``device``, as NCCL needs), the per-case sums all-gathered as objects and added."""

    def merge(counts: np.ndarray, sums: dict[str, list[float]]) -> tuple[np.ndarray, dict[str, list[float]]]:
        if not (dist.is_available() and dist.is_initialized()):
            return counts, sums
        total = torch.tensor(counts, dtype=torch.float64, device=device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, sums)
        merged: dict[str, list[float]] = {}
        for part in gathered:
            for key, (w, n) in part.items():
                entry = merged.setdefault(key, [0.0, 0.0])
                entry[0] += w
                entry[1] += n
        return total.cpu().numpy(), merged

    return merge

"""The paper's noise grid as the studies name it: ``"clean"`` and ``"a<alpha>b<beta>"`` (e.g. ``"a0.7b0.5"``).

The grid itself is :data:`tloss_nnunet.noise.settings.PAPER_ALPHAS` x :data:`~tloss_nnunet.noise.settings.PAPER_BETAS`;
a label is made by :func:`label` only, and the converter's dataset suffix (``NoiseSetting.short``, ``"a07b05"``)
is mapped to it by table, so the two spellings never meet in a search. Records on disk keep these labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tloss_nnunet.errors import InputError
from tloss_nnunet.noise.settings import PAPER_ALPHAS, PAPER_BETAS, NoiseSetting

__all__ = ["CLEAN", "GRID", "SETTINGS", "label", "noise_setting", "ordered", "parse_setting", "setting_of_dataset"]

#: The label of the dataset whose training labels are not corrupted.
CLEAN = "clean"


def label(setting: NoiseSetting) -> str:
    """``NoiseSetting(0.7, 0.5)`` -> ``"a0.7b0.5"`` (alpha and beta in Python's ``g`` format)."""
    return f"a{setting.alpha:g}b{setting.beta:g}"


#: label -> setting, in the order tables and plots show them.
GRID: dict[str, NoiseSetting] = {label(s): s for s in (NoiseSetting(a, b) for a in PAPER_ALPHAS for b in PAPER_BETAS)}

#: Every setting of a study: clean first, then the grid.
SETTINGS: tuple[str, ...] = (CLEAN, *GRID)

_BY_SHORT: dict[str, str] = {CLEAN: CLEAN, **{s.short: name for name, s in GRID.items()}}


def noise_setting(name: str) -> NoiseSetting | None:
    """The setting of label ``name`` (None for ``"clean"``); InputError for a label outside the grid."""
    if name == CLEAN:
        return None
    try:
        return GRID[name]
    except KeyError:
        raise InputError(f"unknown noise setting {name!r}; the study's grid is {', '.join(SETTINGS)}.") from None


def parse_setting(name: str) -> tuple[float, float]:
    """``"a0.7b0.5"`` -> (0.7, 0.5); ``"clean"`` -> (0.0, 0.0) (the records' alpha and beta)."""
    setting = noise_setting(name)
    return (0.0, 0.0) if setting is None else (setting.alpha, setting.beta)


def setting_of_dataset(dataset_name: str) -> str:
    """``Dataset881_ISIC2017_a03b05`` -> ``"a0.3b0.5"``; ``..._clean`` -> ``"clean"``."""
    suffix = dataset_name.rsplit("_", 1)[-1]
    try:
        return _BY_SHORT[suffix]
    except KeyError:
        raise ValueError(f"dataset {dataset_name} is not part of the study's family") from None


def ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    """``values`` in the order of ``order``, the ones it does not list after them, sorted."""
    values = set(values)
    return [v for v in order if v in values] + sorted(values - set(order))

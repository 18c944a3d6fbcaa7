"""Package attributes imported on first use (PEP 562), so importing a package does not import its heavy parts.

Why: ``tloss-nnunet --help`` and nnU-Net's trainer lookup import the packages of this project; eager imports
there would load torch, OpenCV or scikit-image for nothing. A package lists ``name -> module`` in ``_LAZY``
and imports the same names under ``if TYPE_CHECKING:``, which type checkers and IDEs read and nothing runs
(``tests/test_layout.py`` checks that the two agree)::

    if TYPE_CHECKING:
        from tloss_nnunet.loss import TLoss

    _LAZY = {"TLoss": "tloss_nnunet.loss"}
    __getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, where: Mapping[str, str],
                    public: Sequence[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``name`` comes from module ``where[name]`` when first used."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__

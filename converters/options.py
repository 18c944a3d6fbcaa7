"""The options every dataset converter takes, defined once for the Python API and the command line.

``convert_isic2017(root, raw, **options)`` and ``convert_shenzhen(images, masks, raw, **options)`` accept the
fields of :class:`ConversionOptions` as keywords; the checks (noise grid, size, id range, output folders)
and the hand-over to :func:`~tloss_nnunet.converters.family.convert_family` live here. This module stays
light (no OpenCV), so the command line can build its parser from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tloss_nnunet.converters.plan import noise_settings, option_problems, output_roots
from tloss_nnunet.errors import InputError
from tloss_nnunet.noise.options import workers_problem
from tloss_nnunet.noise.settings import PAPER_ALPHAS, PAPER_BETAS, NoiseSetting
from tloss_nnunet.workers import default_workers

if TYPE_CHECKING:
    from tloss_nnunet.converters.family import ConversionReport
    from tloss_nnunet.converters.plan import FamilySpec

__all__ = ["ISIC2017_FIRST_ID", "SHENZHEN_FIRST_ID", "CheckedOptions", "ConversionOptions"]

#: Default nnU-Net id of each family's clean dataset (the noisy ones follow consecutively).
ISIC2017_FIRST_ID = 500
SHENZHEN_FIRST_ID = 510


@dataclass(frozen=True)
class ConversionOptions:
    """What a conversion writes and how.

    Attributes:
        first_id: id of the clean dataset; the noisy ones follow.
        alphas, betas: the noise grid (alpha outer loop, beta inner, as the reference).
        size: output side length (square, aspect not kept, as the paper); 0 keeps native size.
        seed: the noise protocol's seed (Shenzhen: also its 70/30 split).
        workers: processes (default: all CPUs); 1 runs in this process.
        overwrite: replace dataset folders with other content, and files in them that convert did not write
            or that were edited since (inside those dataset folders only).
        verify: run nnU-Net's integrity check on every dataset written.
        install_splits: also copy ``splits_final.json`` into ``$nnUNet_preprocessed/<dataset>/``.
        progress: show progress bars.
        folds: K >= 2 writes K folds over the training cases into ``splits_final.json`` (nnU-Net's own
            ``generate_crossval_split``: each training case held out exactly once); ``None``: the family's
            default (ISIC 2017: the one official train/validation split; Shenzhen: 5 folds).
    """

    first_id: int
    alphas: Sequence[float] = PAPER_ALPHAS
    betas: Sequence[float] = PAPER_BETAS
    size: int = 256
    seed: int = 0
    workers: int | None = None
    overwrite: bool = False
    verify: bool = True
    install_splits: bool = False
    progress: bool = True
    folds: int | None = None

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any], default_first_id: int) -> ConversionOptions:
        """The options of a ``convert_*(..., **keywords)`` call; an unknown keyword is a ``TypeError``."""
        return cls(**{"first_id": default_first_id, **keywords})

    def check(self, raw: str | os.PathLike | None) -> CheckedOptions:
        """Validate everything that needs no input file; raise one :class:`InputError` listing every problem."""
        settings, problems = noise_settings(list(self.alphas), list(self.betas))
        problems += option_problems(self.size, self.first_id, len(settings) + 1)
        problems += [p for p in (workers_problem(self.workers),) if p]  # the check `noise` makes too
        if self.folds is not None and self.folds < 2:
            problems.append(f"--folds must be at least 2, got {self.folds}")
        raw_path, preprocessed = output_roots(raw, self.install_splits, problems)
        if problems:
            raise InputError("\n".join(problems))
        return CheckedOptions(self, settings, raw_path, preprocessed)


@dataclass(frozen=True)
class CheckedOptions:
    """Options that passed :meth:`ConversionOptions.check`, with the noise grid and output folders resolved."""

    options: ConversionOptions
    settings: tuple[NoiseSetting, ...]
    raw: Path
    preprocessed: Path | None

    def convert(self, spec: FamilySpec, input_problems: list[str]) -> ConversionReport:
        """Stage, publish and verify the family described by ``spec`` (see :func:`convert_family`)."""
        from tloss_nnunet.converters.family import convert_family  # OpenCV: only when converting

        options = self.options
        return convert_family(spec, self.raw, workers=options.workers or default_workers(),
                              overwrite=options.overwrite, verify=options.verify, preprocessed=self.preprocessed,
                              input_problems=input_problems, progress=options.progress)

"""The reproduction kit: everything that reproduces the paper's experiments with the library, nothing the
library needs.

* :mod:`~tloss_nnunet.repro.demo` (``scripts/demo.sh``), :mod:`~tloss_nnunet.repro.pipeline` (the stock
  ``nnUNetv2_*`` commands as resumable steps) and :mod:`~tloss_nnunet.repro.report` (the demo's report);
* the study's losses and trainers: :mod:`~tloss_nnunet.repro.baselines` (generalised cross-entropy),
  :mod:`~tloss_nnunet.repro.study_trainers` (GCE / CE / Dice / stock Dice+CE schedule twins),
  :mod:`~tloss_nnunet.repro.demo_trainers`;
* nnU-Net fixtures for tests and benchmarks: :mod:`~tloss_nnunet.repro.synthetic_datasets`,
  :mod:`~tloss_nnunet.repro.inprocess`.

Dependencies flow one way: the kit imports the library (:mod:`tloss_nnunet`), the library never imports the
kit. The kit's trainers have their own shim folder, :func:`kit_trainer_path`; :func:`trainer_search_path` is
the ``nnUNet_extTrainer`` value that finds the library's trainers and the kit's.
"""

from __future__ import annotations

import os

__all__ = ["kit_trainer_path", "trainer_search_path"]


def kit_trainer_path() -> str:
    """Absolute path of the kit's shim folder (one module: the demo and study trainers)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext_trainer")


def trainer_search_path(existing: str = "") -> str:
    """``nnUNet_extTrainer`` value: the library's shim, the kit's, then the folders of ``existing`` (deduplicated).

    ``existing`` is an ``os.pathsep``-separated list, as nnU-Net reads it.
    """
    from tloss_nnunet.nnunet import ext_trainer_path

    ours = [ext_trainer_path(), kit_trainer_path()]
    others = [p for p in existing.split(os.pathsep) if p and p not in ours]
    return os.pathsep.join([*ours, *others])

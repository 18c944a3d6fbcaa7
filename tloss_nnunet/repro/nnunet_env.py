"""The environment of the stock nnU-Net commands for one work folder (folders, trainer search path, workers).

The one builder of it: the demo, the studies, the GPU check and the tests all start from :func:`nnunet_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tloss_nnunet.repro import trainer_search_path
from tloss_nnunet.workers import default_workers

__all__ = ["nnunet_env"]


def nnunet_env(work_dir: Path, device: str = "cpu", base: Mapping[str, str] | None = None, *,
               raw: Path | None = None, preprocessed: Path | None = None, results: Path | None = None,
               find_trainers: bool = True) -> dict[str, str]:
    """Environment for the nnU-Net commands of one work folder.

    A copy of ``base`` (default ``os.environ``) with:

    * ``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results`` = ``work_dir/nnUNet_raw`` etc., or the folder
      given as ``raw`` / ``preprocessed`` / ``results`` (e.g. one results folder per schedule or seed); created;
    * ``nnUNet_extTrainer``: the library's trainer shim folder, then the kit's (demo and study trainers), then
      any folders already listed (:func:`~tloss_nnunet.repro.trainer_search_path`); with ``find_trainers=False``
      none at all, as stock nnU-Net runs without this package;
    * on ``device == "cpu"``: ``nnUNet_compile=0`` (torch.compile only pays off on long GPU runs);
    * ``nnUNet_n_proc_DA`` / ``nnUNet_def_n_proc`` sized for this machine unless ``base`` sets them:
      on a CPU with at most 2 cores augmentation runs in the training process (0: a background worker
      would only compete with the network for the same cores), otherwise up to 4 workers (CPU) or 8 (GPU);
      nnU-Net's other pools (preprocessing, export, evaluation) get 1 worker on <= 2 cores, else up to 8.
    """
    work_dir = Path(work_dir).resolve()
    env = dict(os.environ if base is None else base)
    given = {"nnUNet_raw": raw, "nnUNet_preprocessed": preprocessed, "nnUNet_results": results}
    for variable, folder in given.items():
        folder = work_dir / variable if folder is None else Path(folder).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        env[variable] = str(folder)
    if find_trainers:
        env["nnUNet_extTrainer"] = trainer_search_path(env.get("nnUNet_extTrainer", ""))
    else:
        env.pop("nnUNet_extTrainer", None)
    cores = default_workers()
    if device == "cpu":
        env["nnUNet_compile"] = "0"
        env.setdefault("nnUNet_n_proc_DA", "0" if cores <= 2 else str(min(4, cores // 2)))
    else:
        env.setdefault("nnUNet_n_proc_DA", str(max(1, min(8, cores - 1))))
    # Every nnU-Net pool starts its workers with "spawn" (a fresh Python importing torch each): on 2 cores
    # one worker does the demo-sized jobs sooner than two.
    env.setdefault("nnUNet_def_n_proc", "1" if cores <= 2 else str(min(8, cores)))
    return env

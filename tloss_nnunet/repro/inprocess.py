"""Run nnU-Net's planning and build trainers in the current process (tests, benchmarks, notebooks).

The stock commands (``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train``) start a new Python each time; these
helpers call the same nnU-Net functions directly. They read ``nnUNet_raw``, ``nnUNet_preprocessed`` and
``nnUNet_results`` from the environment, like nnU-Net.
"""

from __future__ import annotations

import os

import torch
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
from nnunetv2.experiment_planning.plan_and_preprocess_api import (
    extract_fingerprint_dataset,
    plan_experiments,
    preprocess,
)
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

__all__ = ["fingerprint_extractor", "plan_and_preprocess_in_process", "make_trainer"]


def fingerprint_extractor(foreground_samples: int | None) -> type[DatasetFingerprintExtractor]:
    """nnU-Net's fingerprint extractor, drawing ``foreground_samples`` foreground voxels in all (None: nnU-Net's
    10^8) for its intensity statistics.

    nnU-Net draws its 10^8 voxels with replacement however small the dataset: on a 20-case 64 x 64 dataset that is
    ~30 CPU-seconds, most of the planning. The statistics (mean, std, percentiles 0.5 and 99.5 of the foreground)
    only feed CT normalisation; a smoke run or a test with 10^6 samples gets them to about 4 digits.
    """
    if foreground_samples is None:
        return DatasetFingerprintExtractor
    if foreground_samples < 1:
        raise ValueError(f"foreground_samples must be at least 1, got {foreground_samples}")

    class SampledFingerprintExtractor(DatasetFingerprintExtractor):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.num_foreground_voxels_for_intensitystats = float(foreground_samples)

    return SampledFingerprintExtractor


def plan_and_preprocess_in_process(dataset_id: int, configurations: tuple[str, ...] = ("2d",),
                                   num_processes: int = 1, foreground_samples: int | None = None) -> None:
    """Fingerprint (with dataset integrity check), plan and preprocess ``dataset_id`` like the stock command, in
    this process through nnU-Net's API (no command start-up: studies and tests). The demo runs the stock command
    itself (:func:`tloss_nnunet.repro.pipeline.plan_and_preprocess`). ``foreground_samples``: see
    :func:`fingerprint_extractor` (None: nnU-Net's own extractor).

    nnU-Net's planner calls ``torch.set_num_threads(nnUNet_n_proc_DA)``, which fails for the value 0 that
    single-threaded training wants; planning therefore runs with at least 1 and the variable is put back.
    """
    extract_fingerprint_dataset(dataset_id, fingerprint_extractor(foreground_samples), num_processes=num_processes,
                                check_dataset_integrity=True, clean=True, verbose=False, show_progress_bar=False)
    previous = os.environ.get("nnUNet_n_proc_DA")
    if previous is not None and previous.strip() == "0":
        os.environ["nnUNet_n_proc_DA"] = "1"
    try:
        plan_experiments([dataset_id])
    finally:
        if previous is not None:
            os.environ["nnUNet_n_proc_DA"] = previous
    preprocess([dataset_id], configurations=configurations, num_processes=[num_processes] * len(configurations),
               show_progress_bar=False)


def make_trainer(trainer_class: type[nnUNetTrainer], dataset: int | str, configuration: str, fold: int | str = 0,
                 device: torch.device = torch.device("cpu"), plans_identifier: str = "nnUNetPlans",
                 continue_training: bool = False) -> nnUNetTrainer:
    """Instantiate ``trainer_class`` as ``nnUNetv2_train`` would (not yet initialised)."""
    folder = os.path.join(str(nnUNet_preprocessed), maybe_convert_to_dataset_name(dataset))
    plans = load_json(os.path.join(folder, plans_identifier + ".json"))
    plans["continue_training"] = continue_training  # nnUNetTrainer.__init__ pops it
    dataset_json = load_json(os.path.join(folder, "dataset.json"))
    return trainer_class(plans=plans, configuration=configuration, fold=fold, dataset_json=dataset_json,
                         device=device)

"""Export a T-Loss model folder so that stock nnU-Net (without this plugin) can predict with it.

The T-Loss changes the training objective only; the network, plans and inference are nnU-Net's. A model
folder ``<results>/DatasetXXX/nnUNetTrainerTLoss__<plans>__<config>`` is copied to
``OUT/nnUNetTrainer__<plans>__<config>`` with every checkpoint's ``trainer_name`` set to ``nnUNetTrainer``
and the T-Loss entries removed (``tloss_state``, the ``nu`` log). Inference reads only the network
weights, ``trainer_name``, the configuration and the mirroring axes, so predictions are identical.

Trade-off: the copy no longer records that the model was trained with the T-Loss (that provenance is kept in
``tloss_export.json`` beside it), and ``nnUNetv2_train --c`` on the copy would continue with nnU-Net's Dice+CE
loss, not the T-Loss. Keep the original folder for further training.

Safety: the export only ever writes into a new (or empty) folder or replaces its own earlier export, unchanged
since (``tloss_export.json`` lists every file with its SHA-256; see :mod:`.export_target`); a trained model of
the same name, e.g. the stock baseline trained in ``$nnUNet_results``, is never replaced, ``--overwrite`` or
not; neither is an older version's export, which lists no digests. A refused or failed export leaves no folder
behind.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from tloss_nnunet.atomic import folders_created, staging_folder, swap_into, write_json
from tloss_nnunet.errors import InputError
from tloss_nnunet.nnunet.checkpoint_keys import NU_KEY, TLOSS_STATE_KEY, TLossState
from tloss_nnunet.nnunet.export_target import PROVENANCE_FILE, TOOL, file_digests, target_problem
from tloss_nnunet.nnunet.trainer_names import TRAINER_NAMES

__all__ = ["ExportResult", "export_stock_model", "STOCK_TRAINER", "KNOWN_TLOSS_TRAINERS"]

STOCK_TRAINER = "nnUNetTrainer"
# The library's trainers: all keep nnU-Net's default network, which is what makes the export valid. Other
# T-Loss trainers (the reproduction kit's demo trainer, a user's variant) are accepted when nnU-Net's own
# lookup finds them as such (see _keeps_default_network).
KNOWN_TLOSS_TRAINERS = frozenset(TRAINER_NAMES)
FOLDER_FILES = ("plans.json", "dataset.json", "dataset_fingerprint.json")
REQUIRED_FILES = ("plans.json", "dataset.json")


@dataclass(frozen=True)
class ExportResult:
    """Where the export went and what it holds."""

    output_folder: str
    checkpoints: tuple[str, ...]  # paths relative to output_folder
    source_trainer: str


def _split_model_folder_name(name: str) -> tuple[str, str, str]:
    parts = name.split("__")
    if len(parts) != 3 or not all(parts):
        raise InputError(f"'{name}' is not an nnU-Net model folder name of the form TRAINER__PLANS__CONFIGURATION.")
    return parts[0], parts[1], parts[2]


def _find_checkpoints(model_folder: str) -> list[str]:
    return sorted(glob.glob(os.path.join(model_folder, "fold_*", "checkpoint_*.pth")))


@functools.cache
def _keeps_default_network(trainer_name: str) -> bool:
    """True when nnU-Net finds ``trainer_name`` (in nnunetv2 and ``nnUNet_extTrainer``) as a subclass of
    ``nnUNetTrainerTLoss`` that builds nnU-Net's default network."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from tloss_nnunet.nnunet.trainer import nnUNetTrainerTLoss

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the lookup narrates its search
            trainer_class = recursive_find_trainer_class_by_name(trainer_name)
    except RuntimeError:  # not found anywhere
        return False
    return (issubclass(trainer_class, nnUNetTrainerTLoss)
            and trainer_class.build_network_architecture is nnUNetTrainer.build_network_architecture)


def _stock_checkpoint(checkpoint: dict, path: str, force: bool) -> tuple[dict, dict]:
    """Return (rewritten checkpoint, provenance entry) for one loaded checkpoint."""
    missing = [k for k in ("network_weights", "trainer_name", "init_args") if k not in checkpoint]
    if missing:
        raise InputError(f"{path}: not an nnU-Net v2 checkpoint (missing {missing}).")
    trainer = checkpoint["trainer_name"]
    if trainer not in KNOWN_TLOSS_TRAINERS and not force and not _keeps_default_network(trainer):
        raise InputError(f"{path}: trained with '{trainer}', not one of this package's trainers; the export is only "
                         f"valid if that trainer uses nnU-Net's default network. Pass --force if it does.")
    stock = dict(checkpoint)
    stock["trainer_name"] = STOCK_TRAINER
    tloss_state = stock.pop(TLOSS_STATE_KEY, None)
    if isinstance(stock.get("logging"), dict):
        stock["logging"] = {k: v for k, v in stock["logging"].items() if k != NU_KEY}
    provenance = {"trainer_name": trainer, "nu": None if tloss_state is None else _nu(tloss_state),
                  "current_epoch": checkpoint.get("current_epoch")}
    return stock, provenance



def _nu(tloss_state: object) -> float | None:
    """nu of a ``tloss_state`` entry for the provenance file; None when the entry is not a readable one."""
    try:
        return TLossState.from_dict(tloss_state).nu
    except ValueError:
        return None


def export_stock_model(model_folder: str, output_parent: str, overwrite: bool = False, force: bool = False,
                       progress: bool = True) -> ExportResult:
    """Copy ``model_folder`` into ``output_parent/nnUNetTrainer__<plans>__<config>`` for stock nnU-Net.

    Args:
        model_folder: a trained model folder (``.../DatasetXXX/<trainer>__<plans>__<config>``) with
            plans.json, dataset.json and ``fold_*/checkpoint_*.pth``.
        output_parent: folder that receives the export (created if missing), e.g. a colleague's
            ``$nnUNet_results/DatasetXXX_Name``.
        overwrite: replace an existing export of the same name (otherwise refused).
        force: accept checkpoints from trainers not defined in this package.
        progress: show a progress bar over the checkpoints.

    The export is assembled in a staging folder next to the target and swapped into place at the end
    (:mod:`tloss_nnunet.atomic`), so a failure never leaves a half-written model folder.

    Raises:
        InputError: missing or malformed input, or an existing output without ``overwrite``.
    """
    model_folder = os.path.abspath(model_folder)
    if not os.path.isdir(model_folder):
        raise InputError(f"model folder '{model_folder}' does not exist.")
    trainer, plans, configuration = _split_model_folder_name(os.path.basename(model_folder))
    problems = [f"missing {name}" for name in REQUIRED_FILES if not os.path.isfile(os.path.join(model_folder, name))]
    checkpoints = _find_checkpoints(model_folder)
    if not checkpoints:
        problems.append("no fold_*/checkpoint_*.pth")
    if problems:
        raise InputError(f"'{model_folder}' is not a trained nnU-Net model folder: {'; '.join(problems)}.")

    output_parent = os.path.abspath(output_parent)
    target = os.path.join(output_parent, f"{STOCK_TRAINER}__{plans}__{configuration}")
    if target == model_folder:
        raise InputError(f"'{model_folder}' already names the stock trainer: nothing to export.")
    _refuse_target(target, overwrite)

    with folders_created(output_parent), \
            staging_folder(output_parent, f"{os.path.basename(target)}.tmp") as staging:
        written, provenance = _write_export(model_folder, checkpoints, str(staging), force, progress)
        write_json(staging / PROVENANCE_FILE,
                   {"tool": TOOL, "source_folder": model_folder, "source_trainer": trainer,
                    "exported_as": STOCK_TRAINER, "checkpoints": provenance, "files": file_digests(staging)})
        _refuse_target(target, overwrite)  # again: somebody may have started training there meanwhile
        swap_into(staging, target)
    return ExportResult(output_folder=target, checkpoints=tuple(written), source_trainer=trainer)


def _refuse_target(target: str, overwrite: bool) -> None:
    problem = target_problem(Path(target), overwrite)
    if problem:
        raise InputError(problem)


def _write_export(model_folder: str, checkpoints: list[str], staging: str, force: bool,
                  progress: bool) -> tuple[list[str], dict[str, dict]]:
    """Copy the folder files and write the rewritten checkpoints into ``staging``; (relative paths, provenance)."""
    for name in FOLDER_FILES:
        source = os.path.join(model_folder, name)
        if os.path.isfile(source):
            shutil.copy2(source, os.path.join(staging, name))
    provenance: dict[str, dict] = {}
    written = []
    for source in tqdm(checkpoints, desc="export checkpoints", unit="ckpt", disable=not progress):
        relative = os.path.relpath(source, model_folder)
        stock, provenance[relative] = _stock_checkpoint(_load_checkpoint(source), source, force)
        destination = os.path.join(staging, relative)
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        torch.save(stock, destination)
        written.append(relative)
    return written, provenance


def _load_checkpoint(path: str) -> dict:
    """``torch.load`` on CPU; a file it cannot read (truncated, damaged, not a checkpoint) is an InputError."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch reports damage as RuntimeError, EOFError, UnpicklingError...
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(f"{path}: cannot be read as a checkpoint (truncated or damaged?): {reason}") from err
    if not isinstance(checkpoint, dict):
        raise InputError(f"{path}: not an nnU-Net v2 checkpoint (holds a {type(checkpoint).__name__}).")
    return checkpoint

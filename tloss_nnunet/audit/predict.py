"""Predict the training cases of an audited model with nnU-Net's own predictor, keeping the probabilities.

Each fold's cases go to ``OUT/predictions/fold_<k>/`` as nnU-Net writes them with ``save_probabilities``
(``<case><file_ending>`` + ``<case>.npz`` + ``<case>.pkl``). A re-run predicts only the cases whose files are
missing or unreadable; a fold whose checkpoint changed since (its SHA-256, kept in ``model.json`` there) is
predicted again from scratch. Only files suspects wrote are ever replaced (:mod:`.ownership`).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tloss_nnunet.atomic import write_json
from tloss_nnunet.audit.checks import reader_for
from tloss_nnunet.audit.model import AuditedModel
from tloss_nnunet.audit.ownership import (
    STAMP,
    foreign_files,
    new_stamp,
    prediction_folder,
    predictions_lock,
    read_stamp,
    stamp_is_current,
)
from tloss_nnunet.errors import InputError
from tloss_nnunet.nnunet.checkpoint_file import read_checkpoint
from tloss_nnunet.nnunet.checkpoint_keys import TLOSS_STATE_KEY, TLossState

__all__ = ["FoldLoss", "fold_loss", "predict_cases", "prediction_folder", "read_probabilities"]


@dataclass(frozen=True)
class FoldLoss:
    """The T-Loss parameters of one fold's checkpoint (log_nu None: not a T-Loss model)."""

    log_nu: float | None
    log_precision: float = 0.0

    @property
    def nu(self) -> float | None:
        return None if self.log_nu is None else math.exp(self.log_nu)


def fold_loss(model: AuditedModel, fold: int) -> FoldLoss:
    """log nu and lambda of ``fold``'s checkpoint (the T-Loss trainers store them under ``tloss_state``).

    The one place that loads and checks a fold's checkpoint before prediction (:func:`read_checkpoint`: a
    damaged file or one nnU-Net's predictor cannot use is an :class:`InputError`); its digest is kept for the
    prediction folder's stamp."""
    path = model.checkpoint(fold)
    checkpoint, _ = read_checkpoint(path)
    state = checkpoint.get(TLOSS_STATE_KEY)
    if not state:
        return FoldLoss(log_nu=None, log_precision=0.0)
    try:
        saved = TLossState.from_dict(state)
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None
    return FoldLoss(log_nu=saved.log_nu, log_precision=float(saved.log_precision))


def read_probabilities(folder: Path, case: str) -> np.ndarray | None:
    """The (C, *spatial) probabilities nnU-Net saved for ``case``, or None if missing or unreadable."""
    try:
        with np.load(folder / f"{case}.npz") as data:
            return np.asarray(data["probabilities"])
    except Exception:  # noqa: BLE001 - damage surfaces as zipfile, zlib, struct or numpy's header parser errors
        return None


def _is_complete(folder: Path, case: str, file_ending: str, reader=None) -> bool:
    """The probabilities file is a whole npz archive with an array header, and the segmentation is there (and,
    with ``reader``, nnU-Net's reader for the file ending, decodes).

    The archive check is cheap on purpose (its directory and the array's header, nothing decompressed): an
    interrupted write is truncated, which loses the directory at the archive's end; damage inside it shows when
    scoring reads the array (:func:`read_probabilities`). Damage that reaches the header (a broken compressed
    stream, a garbled header) counts as unfinished too, so the case is predicted again. nnU-Net writes the
    segmentation LAST, so a run killed then leaves a complete archive beside a half-written segmentation: only
    decoding it tells."""
    segmentation = folder / f"{case}{file_ending}"
    if not segmentation.is_file():
        return False
    try:
        with zipfile.ZipFile(folder / f"{case}.npz") as archive, archive.open("probabilities.npy") as member:
            version = np.lib.format.read_magic(member)
            (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(member)
        if reader is not None:
            reader.read_seg(str(segmentation))
    except Exception:  # noqa: BLE001 - as in read_probabilities (a garbled header fails numpy's tokenizer); each
        return False   # image reader reports a damaged file its own way
    return True


def drop_case(folder: Path, case: str, file_ending: str) -> None:
    """Remove what nnU-Net wrote for ``case`` (segmentation, probabilities, properties)."""
    for name in (f"{case}{file_ending}", f"{case}.npz", f"{case}.pkl"):
        (folder / name).unlink(missing_ok=True)


def _prepare_folder(model: AuditedModel, fold: int, out_dir: Path) -> Path:
    """The fold's prediction folder, stamped with its checkpoint's digest (:mod:`.ownership`): kept when the
    stamp is current, emptied when it names another checkpoint (ours: predictions are never mixed), refused
    when it holds files suspects did not write (``audit_model`` refuses or, with ``--overwrite``, deletes them
    before it writes anything; this guards direct callers)."""
    folder = prediction_folder(out_dir, fold)
    # Parts of one audit (-num_parts) may start together: one at a time decides whether a stale folder is emptied,
    # so a part never empties the folder another part has just stamped and started filling.
    with predictions_lock(out_dir):
        if foreign := foreign_files(folder, model):
            raise InputError(f"{folder} holds files suspects did not write: "
                             f"{', '.join(p.name for p in foreign[:5])}; move them or choose another output folder")
        stamp = read_stamp(folder)
        if folder.exists() and not stamp_is_current(stamp, model, fold):
            shutil.rmtree(folder)  # only our files are left in it (checked above)
            stamp = None
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / STAMP, new_stamp(model, fold, stamp))
    return folder


def _find_our_trainers() -> None:
    """Make this package's trainers findable by nnU-Net's predictor (it rebuilds the network through the trainer
    class named in the checkpoint), as ``nnUNet_extTrainer="$(tloss-nnunet ext-path)"`` would."""
    from tloss_nnunet.nnunet import ext_trainer_path

    folders = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if ext_trainer_path() not in folders:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([*folders, ext_trainer_path()])


def predict_cases(model: AuditedModel, fold: int, cases: list[str], out_dir: Path, device: str = "cpu",
                  processes: tuple[int, int] = (3, 3), on_done: Callable[[int], None] | None = None,
                  log_file: Path | None = None) -> Path:
    """Predict ``cases`` with ``fold``'s checkpoint into :func:`prediction_folder`, skipping finished ones.

    ``processes``: nnU-Net's preprocessing and export worker counts (``-npp``, ``-nps``); ``on_done(n)`` is
    called as cases finish (a progress bar); nnU-Net's own console output goes to ``log_file``. A case counts as
    finished when its ``.npz`` loads: anything less (an interrupted write) is predicted again.
    """
    import torch
    from nnunetv2.inference import data_iterators, predict_from_raw_data
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from tloss_nnunet.workers import pools_follow_policy

    _find_our_trainers()
    folder = _prepare_folder(model, fold, out_dir)
    file_ending = model.dataset_json["file_ending"]
    todo = []
    reader = reader_for(model)
    for case in cases:
        if _is_complete(folder, case, file_ending, reader):
            if on_done:
                on_done(1)
        else:
            drop_case(folder, case, file_ending)  # a half-written case from an interrupted run
            todo.append(case)
    if not todo:
        return folder
    log = open(log_file or folder / "predict.log", "a")
    try:
        with contextlib.redirect_stdout(log), _count_finished(folder, todo, on_done):
            predictor = nnUNetPredictor(device=torch.device(device), verbose=False, verbose_preprocessing=False,
                                        allow_tqdm=False)
            try:
                predictor.initialize_from_trained_model_folder(str(model.folder), (fold,), model.checkpoint_name)
            except RuntimeError as err:
                if "Could not find requested nnunet trainer" not in str(err):
                    raise
                raise InputError(f"nnU-Net cannot find the trainer class {model.trainer} that built this model; "
                                 "put the folder of its module in nnUNet_extTrainer") from None
            # One call, as nnUNetv2_predict makes: its worker processes start once. Under our pool policy: they
            # start with Ctrl-C blocked, ignore it, die with this process, and are stopped when the call raises.
            with pools_follow_policy(predict_from_raw_data, data_iterators):
                predictor.predict_from_files([model.cases[c]["images"] for c in todo],
                                             [str(folder / c) for c in todo], save_probabilities=True,
                                             overwrite=True, num_processes_preprocessing=processes[0],
                                             num_processes_segmentation_export=processes[1])
    finally:
        log.close()
    return folder


@contextlib.contextmanager
def _count_finished(folder: Path, cases: list[str], on_done: Callable[[int], None] | None) -> Iterator[None]:
    """While the body runs, report cases whose probabilities file appeared (nnU-Net writes the ``.pkl`` after
    the ``.npz``), every half second from a thread; the rest when the body ends."""
    if on_done is None:
        yield
        return
    stop, reported = threading.Event(), 0

    def report() -> None:
        nonlocal reported
        finished = sum((folder / f"{case}.pkl").is_file() for case in cases)
        if finished > reported:
            on_done(finished - reported)
            reported = finished

    def watch() -> None:
        while not stop.wait(0.5):
            report()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        report()

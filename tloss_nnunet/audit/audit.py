"""``audit_model``: predict a trained nnU-Net model's training cases and rank their labels by suspicion.

model folder -> (checked) folds, raw cases, splits -> each case to the fold that held it out -> nnU-Net's
predictor per fold (probabilities kept, reused on a re-run) -> per-case scores against the given label
(:mod:`tloss_nnunet.audit.scores`, under the fold's nu for T-Loss models) -> ``suspects.csv``, ``suspects.md``,
``suspects.png`` in the output folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from tloss_nnunet.audit.checks import check_cases, reader_for
from tloss_nnunet.audit.gallery import image_view, middle_slice
from tloss_nnunet.audit.model import AuditedModel, assign_folds, load_model, not_held_out_note, skipped_folds_note
from tloss_nnunet.audit.ownership import claim_output
from tloss_nnunet.audit.predict import (
    FoldLoss,
    drop_case,
    fold_loss,
    predict_cases,
    prediction_folder,
    read_probabilities,
)
from tloss_nnunet.audit.provenance import audit_record, write_audit_record
from tloss_nnunet.audit.report import GalleryCase, write_csv, write_gallery, write_markdown
from tloss_nnunet.audit.scores import DEFAULT_RANKING, CaseScores, case_scores, rank
from tloss_nnunet.errors import InputError

__all__ = ["AuditResult", "audit_model"]


@dataclass(frozen=True)
class AuditResult:
    """The ranked cases (most suspect first), the files written, and ``not_held_out``: one line on the cases no
    trained fold held out and what to do (``""`` when every case was held out; see
    :func:`~tloss_nnunet.audit.model.not_held_out_note`)."""

    ranked: list[CaseScores]
    rank_by: str
    csv: Path
    markdown: Path
    gallery: Path
    not_held_out: str = ""
    #: one line naming the fold folders left out for lack of the checkpoint (:func:`skipped_folds_note`), or "".
    skipped_folds: str = ""
    #: a call with ``num_parts`` > 1: the cases this part predicted (nothing ranked, no report written); else None.
    part_cases: list[str] | None = None


def _has_nu(losses: dict[int, FoldLoss]) -> bool:
    return all(loss.log_nu is not None for loss in losses.values())


def audit_model(model_folder: str | os.PathLike, out_dir: str | os.PathLike, folds: list[int] | None = None, *,
                checkpoint_name: str = "checkpoint_final.pth", raw_folder: str | os.PathLike | None = None,
                splits_file: str | os.PathLike | None = None, device: str = "cpu",
                processes: tuple[int, int] = (3, 3), rank_by: str | None = None, top_k: int = 12,
                progress: bool = True, overwrite: bool = False, num_parts: int = 1, part_id: int = 0) -> AuditResult:
    """Score every training case of ``model_folder`` and write the audit into ``out_dir`` (see the module).

    ``rank_by``: a score name of :data:`~tloss_nnunet.audit.scores.SCORE_NAMES` (the ``tloss_*`` ones need a
    T-Loss model); default :data:`~tloss_nnunet.audit.scores.DEFAULT_RANKING`. ``top_k`` cases go into the
    gallery and the summary. Every check comes before anything is written: the checkpoints, the labels against
    the model's dataset.json, and ``out_dir``'s files (the audit replaces only what it wrote; ``overwrite``:
    also delete other files in the prediction folders it uses, see :mod:`~tloss_nnunet.audit.ownership`).
    ``num_parts`` > 1: nnUNetv2_predict's split, for several GPUs or machines sharing ``out_dir``: predict only
    the cases ``sorted(cases)[part_id::num_parts]``, score nothing, and return them in ``part_cases``; a final call
    without parts reuses every finished prediction, predicts what is missing, and ranks.
    """
    _check_part(num_parts, part_id)
    model = load_model(model_folder, folds, checkpoint_name, raw_folder, splits_file)
    out = Path(out_dir)
    rank_by = rank_by or DEFAULT_RANKING
    _check_request(model, out, device, top_k)
    losses = {fold: fold_loss(model, fold) for fold in model.folds}  # loads every checkpoint: after the cheap checks
    if rank_by.startswith("tloss") and not _has_nu(losses):
        raise InputError(f"--rank-by {rank_by} needs nu, and {model.trainer} checkpoints have none; use mse, "
                         "one_minus_dice or one_minus_softmin")
    reader = reader_for(model)
    check_cases(model, reader, progress)  # reads every label once: after the checkpoints, before any prediction
    claim_output(model, out, overwrite)
    assignments = assign_folds(model)
    out.mkdir(parents=True, exist_ok=True)  # only now: a refused audit leaves nothing behind

    part = assignments[part_id::num_parts]  # assignments follow the sorted cases, as nnU-Net sorts its files
    _predict(model, part, out, device, processes, progress)
    if num_parts > 1:
        return AuditResult([], rank_by, out / "suspects.csv", out / "suspects.md", out / "suspects.png",
                           part_cases=[a.case for a in part])
    ranked = rank(_score(model, assignments, losses, reader, out, progress), rank_by)
    fold_info = {fold: {"nu": losses[fold].nu, "cases": sum(a.fold == fold for a in assignments),
                        "held_out": sum(a.fold == fold and a.held_out for a in assignments)} for fold in model.folds}
    result = AuditResult(ranked, rank_by, out / "suspects.csv", out / "suspects.md", out / "suspects.png",
                         not_held_out=not_held_out_note(assignments, model.splits, model.folds),
                         skipped_folds=skipped_folds_note(model))
    write_csv(result.csv, ranked)
    write_markdown(result.markdown, ranked, model=str(model.folder), rank_by=rank_by, folds=fold_info, top_k=top_k,
                   not_held_out=result.not_held_out, skipped_folds=result.skipped_folds)
    write_gallery(result.gallery, _gallery(model, ranked[:top_k], rank_by, reader, out))
    # Last: its digest of suspects.csv ties the two together for `repair` (see provenance).
    write_audit_record(out, audit_record(model, assignments, rank_by, result.csv))
    return result


def _check_part(num_parts: int, part_id: int) -> None:
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise InputError(f"-part_id must be in 0..num_parts-1 and -num_parts >= 1, got -num_parts {num_parts} "
                         f"-part_id {part_id}")


def _check_request(model: AuditedModel, out: Path, device: str, top_k: int) -> None:
    """Refuse, before anything is written, what the audit cannot do."""
    if model.has_regions:
        raise InputError(f"{model.folder} is a region-based model; auditing supports label maps only")
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder")
    if out.resolve() == model.folder or model.folder in out.resolve().parents:
        raise InputError(f"output {out} is inside the model folder; choose a folder of its own")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("CUDA is not available on this machine; pass -device cpu")
    if top_k < 0:
        raise InputError(f"top-k must be >= 0, got {top_k}")


def _predict(model: AuditedModel, assignments: list, out: Path, device: str, processes: tuple[int, int],
             progress: bool) -> None:
    """Each case's probabilities from the fold that scores it (what an earlier run left complete is reused)."""
    with tqdm(total=len(assignments), desc="predicting", unit="case", disable=not progress) as bar:
        for fold in model.folds:
            cases = [a.case for a in assignments if a.fold == fold]
            if cases:
                predict_cases(model, fold, cases, out, device=device, processes=processes, on_done=bar.update)


def _score(model: AuditedModel, assignments: list, losses: dict[int, FoldLoss], reader, out: Path,
           progress: bool) -> list[CaseScores]:
    """Every case's scores against its given label, under its fold's nu; ``extra`` names the fold."""
    scored = []
    for a in tqdm(assignments, desc="scoring", unit="case", disable=not progress):
        folder = prediction_folder(out, a.fold)
        probabilities = read_probabilities(folder, a.case)
        if probabilities is None:  # damaged after the completeness check: dropped, so a re-run predicts it again
            drop_case(folder, a.case, model.dataset_json["file_ending"])
            raise OSError(f"the probabilities of case {a.case} (fold {a.fold}) cannot be read; they were removed: "
                          f"run the audit again to predict them afresh (log: {folder / 'predict.log'})")
        label, _ = reader.read_seg(model.cases[a.case]["label"])
        loss = losses[a.fold]
        scores = case_scores(a.case, probabilities, label, log_nu=loss.log_nu, ignore_label=model.ignore_label,
                             log_precision=loss.log_precision)
        scored.append(replace(scores, extra={"fold": a.fold, "held_out": a.held_out}))
    return scored


def _gallery(model: AuditedModel, top: list[CaseScores], rank_by: str, reader, out: Path) -> list[GalleryCase]:
    """Image, given label and prediction (middle slices) of the ``top`` cases, in rank order."""
    gallery = []
    for position, s in enumerate(top, start=1):
        image, _ = reader.read_images(model.cases[s.case]["images"])
        label, _ = reader.read_seg(model.cases[s.case]["label"])
        folder = prediction_folder(out, s.extra["fold"])
        try:  # nnU-Net writes the segmentation last: a killed run can leave it half written
            prediction, _ = reader.read_seg(str(folder / f"{s.case}{model.dataset_json['file_ending']}"))
        except Exception as err:  # noqa: BLE001 - each reader reports damage its own way
            drop_case(folder, s.case, model.dataset_json["file_ending"])
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise OSError(f"the segmentation of case {s.case} (fold {s.extra['fold']}) cannot be read ({reason}); "
                          "its files were removed: run the audit again to predict it afresh") from None
        gallery.append(GalleryCase(s.case, position, image_view(image), middle_slice(label[0]),
                                   middle_slice(prediction[0]), getattr(s, rank_by), rank_by))
    return gallery

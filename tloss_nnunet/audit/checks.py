"""The raw training cases checked against the model's dataset.json before anything is predicted.

Prediction takes minutes to hours; a label that cannot be scored (a value the model has no class for, a size
other than its image's) found only when scoring would waste them. One pass reads every label and the first
channel of every image with nnU-Net's own reader (the one ``nnUNetv2_predict`` picks for the file ending) and
refuses, in one line, naming the cases and what is wrong. The case count and file ending are checked before this,
without reading anything (:func:`tloss_nnunet.audit.model.load_model`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from tloss_nnunet.audit.model import AuditedModel
from tloss_nnunet.errors import InputError
from tloss_nnunet.interrupts import deferred_interrupts

__all__ = ["check_cases", "label_values", "reader_for"]

#: How many problems the refusal names (it counts them all).
_NAMED = 3


def reader_for(model: AuditedModel):
    """An instance of nnU-Net's reader for the model's file ending (what its predictor uses)."""
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    example = next(iter(model.cases.values()))["images"][0]
    try:
        # nnU-Net probes each reader inside a bare except, which would turn a Ctrl-C into its own error and
        # traceback: held until the probe is done. It announces its choice on stdout.
        with deferred_interrupts(), contextlib.redirect_stdout(io.StringIO()):
            return determine_reader_writer_from_dataset_json(model.dataset_json, example)()
    except RuntimeError as err:  # no reader for this file ending
        raise InputError(f"nnU-Net has no reader for {example} (file_ending "
                         f"{model.dataset_json['file_ending']!r}): {str(err).strip().splitlines()[0]}") from None


def label_values(model: AuditedModel) -> set[int]:
    """The values a label of this (label-map) model may hold: its classes and the ignore label."""
    return {v for v in model.dataset_json["labels"].values() if isinstance(v, int)}


def _read(read: Callable[[Any], tuple], what: Any, path: str, case: str) -> np.ndarray:
    try:
        array, _ = read(what)
    except Exception as err:  # noqa: BLE001 - each reader reports damage its own way (PIL, SimpleITK, nibabel)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(f"case {case}: {path} cannot be read by nnU-Net's reader (damaged?): {reason}; "
                         "restore it or remove the case") from None
    return np.asarray(array)


def _problem(case: str, label: np.ndarray, image: np.ndarray, allowed: set[int]) -> str | None:
    """What is wrong with one case's label: its size (vs its image's) or a value the model has no class for."""
    if label.shape[1:] != image.shape[1:]:
        return f"{case}: label {'x'.join(map(str, label.shape[1:]))} vs image {'x'.join(map(str, image.shape[1:]))}"
    unknown = [v for v in np.unique(label).tolist() if v not in allowed]
    if unknown:
        shown = ", ".join(f"{v:g}" for v in unknown[:3])
        return f"{case}: value{'s' if len(unknown) > 1 else ''} {shown}"
    return None


def check_cases(model: AuditedModel, reader, progress: bool = True) -> None:
    """Refuse (:class:`InputError`, one line) when a case's label has another size than its image or holds a
    value that is not one of the model's labels; reads each label and each image's first channel once."""
    allowed = label_values(model)
    problems = []
    for case, entry in tqdm(model.cases.items(), desc="checking labels", unit="case", disable=not progress):
        label = _read(reader.read_seg, entry["label"], entry["label"], case)
        image = _read(reader.read_images, entry["images"][:1], entry["images"][0], case)
        if problem := _problem(case, label, image, allowed):
            problems.append(problem)
    if problems:
        more = f" and {len(problems) - _NAMED} more" if len(problems) > _NAMED else ""
        raise InputError(f"{len(problems)} label(s) of {len(model.cases)} do not fit the model "
                         f"(its labels: {', '.join(map(str, sorted(allowed)))}; a label has its image's size): "
                         f"{'; '.join(problems[:_NAMED])}{more}; fix them or give the model's raw dataset with --raw")

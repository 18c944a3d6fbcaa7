"""Fill a staged repaired dataset folder: images and untouched labels linked, chosen labels rewritten, dataset.json,
and ``repair.png`` (the chosen cases before and after, :mod:`tloss_nnunet.audit.repair_gallery`).

Called by :func:`tloss_nnunet.audit.repair.repair_dataset` inside its staging folder, which is removed on any
error, so a refusal found here (probabilities that do not fit the dataset) still leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from tloss_nnunet.atomic import link_or_copy
from tloss_nnunet.audit.predict import prediction_folder, read_probabilities
from tloss_nnunet.audit.repair_gallery import GALLERY_CASES, GALLERY_FILE, RepairView, repair_view, write_repair_gallery
from tloss_nnunet.audit.repair_parts import PartLabel, read_part_label, write_part_label
from tloss_nnunet.audit.repair_rules import changed_pixels, repaired_label
from tloss_nnunet.errors import InputError
from tloss_nnunet.interrupts import deferred_interrupts

if TYPE_CHECKING:
    from tloss_nnunet.audit.repair import _Source

__all__ = ["write_dataset", "write_part"]

#: Source dataset.json keys given to the generator explicitly (everything else is copied as it is).
_HANDLED = ("channel_names", "labels", "numTraining", "file_ending", "name", "description", "licence", "license",
            "converted_by", "citation")


def _reader(source: _Source):
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    example = next(iter(source.cases.values()))["images"][0]
    # nnU-Net probes each reader inside a bare except, which would turn a Ctrl-C into its own error and traceback:
    # held until the probe is done. It announces its choice on stdout.
    with deferred_interrupts(), contextlib.redirect_stdout(io.StringIO()):
        return determine_reader_writer_from_dataset_json(source.dataset_json, example)()


def _repaired(reader, source: _Source, case: str, probabilities_folder: Path, label, mode: str,
              ignore_value: int | None, confidence: float):
    """(repaired label map (*spatial), the probabilities) of ``case`` (label: (1, *spatial) as read)."""
    probabilities = read_probabilities(probabilities_folder, case)
    if probabilities is None:
        raise InputError(f"the audit's probabilities of case {case} are missing or unreadable "
                         f"({probabilities_folder / (case + '.npz')}); run tloss-nnunet suspects again")
    classes = len([k for k in source.dataset_json["labels"] if k != "ignore"])
    if probabilities.shape != (classes, *label.shape[1:]):
        raise InputError(f"the audit's probabilities of case {case} have shape {probabilities.shape}, but its "
                         f"label {label.shape[1:]} and the dataset {classes} classes: the audit is not of this "
                         "dataset")
    try:
        repaired = repaired_label(label[0], probabilities, mode, ignore_value, confidence)
    except ValueError as err:
        raise InputError(f"case {case}: {err}") from None
    assert repaired is not None
    return repaired, probabilities


def _repair_case(reader, source: _Source, case: str, probabilities_folder: Path, destination: Path | None,
                 mode: str, ignore_value: int | None, confidence: float,
                 rank: int | None = None, part: PartLabel | None = None) -> tuple[int, int, RepairView | None]:
    """Write ``case``'s repaired label to ``destination`` (None: dropped), or link the one a part call wrote
    (``part``); return (changed pixels, pixels) and, when ``rank`` is given, the case's views for repair.png."""
    label, properties = reader.read_seg(source.cases[case]["label"])
    repaired = probabilities = None
    if part is not None:
        assert destination is not None  # a part label exists for a kept (not dropped) case only
        link_or_copy(part.path, destination)
        changed, pixels = part.changed_pixels, part.pixels
        if rank is not None:
            repaired = reader.read_seg(str(part.path))[0][0]
    else:
        if mode != "drop":
            repaired, probabilities = _repaired(reader, source, case, probabilities_folder, label, mode,
                                                ignore_value, confidence)
            reader.write_seg(repaired, str(destination), properties)
        changed, pixels = changed_pixels(label[0], repaired), int(label.size)
    view = None
    if rank is not None:
        image, _ = reader.read_images(source.cases[case]["images"])
        if probabilities is None:  # drop or a part's label: the prediction, shown when the audit has it
            probabilities = read_probabilities(probabilities_folder, case)
        fits = probabilities is not None and probabilities.shape[1:] == label.shape[1:]
        prediction = probabilities.argmax(0) if probabilities is not None and fits else None
        view = repair_view(case, rank, image, label[0], prediction, repaired, changed / pixels)
    return changed, pixels, view


def write_part(folder: Path, source: _Source, audit_dir: Path, audit: dict, cases: list[str], mode: str,
               ignore_value: int | None, confidence: float) -> None:
    """A part call's work: the repaired labels of ``cases`` into the parts ``folder``
    (:mod:`tloss_nnunet.audit.repair_parts`); a case already there whole is kept."""
    ending = source.dataset_json["file_ending"]
    reader = _reader(source)
    for case in cases:
        if read_part_label(folder, case, ending) is not None:
            continue
        label, properties = reader.read_seg(source.cases[case]["label"])
        repaired, _ = _repaired(reader, source, case, prediction_folder(audit_dir, audit["cases"][case]["fold"]),
                                label, mode, ignore_value, confidence)
        write_part_label(folder, case, ending, functools.partial(_write_seg, reader, repaired, properties),
                         changed_pixels(label[0], repaired), int(label.size))


def _write_seg(reader, segmentation, properties: dict, path: str) -> None:
    reader.write_seg(segmentation, path, properties)


def _generate_dataset_json(folder: Path, source: _Source, labels: dict, num_training: int, record: dict) -> None:
    """nnU-Net's generator with the source's keys (its ``citation`` argument writes ``release``: set after)."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    src = source.dataset_json
    description = (f"{src['description']} " if src.get("description") else "") + (
        f"Labels repaired by tloss-nnunet repair ({record['mode']}, {record['cases_chosen']} of "
        f"{record['cases_total']} case(s), ranked by {record['audit']['rank_by']}) from {source.folder.name}.")
    extra = {k: v for k, v in src.items() if k not in _HANDLED}
    licence = src.get("licence", src.get("license"))
    generate_dataset_json(str(folder), dict(src["channel_names"]), labels, num_training, src["file_ending"],
                          dataset_name=folder.name, description=description,
                          converted_by=src.get("converted_by", "tloss-nnunet repair"),
                          **({"license": licence} if licence is not None else {}), **extra)
    if "citation" in src:
        path = folder / "dataset.json"
        dataset_json = json.loads(path.read_text())
        dataset_json["citation"] = src["citation"]
        path.write_text(json.dumps(dataset_json, indent=4))


def write_dataset(folder: Path, source: _Source, audit_dir: Path, audit: dict, chosen: list[tuple[str, float]],
                  mode: str, ignore_value: int | None, confidence: float, labels: dict, record: dict,
                  parts: Path | None = None) -> None:
    """Write the repaired dataset into ``folder`` (created) and the per-case entries into ``record["cases"]``;
    ``parts``: a parts folder whose whole labels are taken instead of being computed again."""
    ending = source.dataset_json["file_ending"]
    reader = _reader(source)
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    dropped = set()
    views = []
    for rank, (case, score) in enumerate(chosen, start=1):  # ``chosen`` is the top of the ranking
        target = None if mode == "drop" else folder / "labelsTr" / f"{case}{ending}"
        part = None if parts is None or mode == "drop" else read_part_label(parts, case, ending)
        changed, pixels, view = _repair_case(reader, source, case,
                                             prediction_folder(audit_dir, audit["cases"][case]["fold"]), target,
                                             mode, ignore_value, confidence,
                                             rank if rank <= GALLERY_CASES else None, part)
        if view is not None:
            views.append(view)
        record["cases"].append({"case": case, "rank": rank, "score": score, "changed_pixels": changed,
                                "changed_fraction": round(changed / pixels, 6), "dropped": mode == "drop",
                                "held_out": bool(audit["cases"][case]["held_out"])})
        if mode == "drop":
            dropped.add(case)
    kept = [case for case in source.cases if case not in dropped]
    for case in kept:
        for image in source.cases[case]["images"]:
            link_or_copy(Path(image), folder / "imagesTr" / Path(image).name)
        if not (folder / "labelsTr" / f"{case}{ending}").exists():
            link_or_copy(Path(source.cases[case]["label"]), folder / "labelsTr" / f"{case}{ending}")
    for extra in ("imagesTs", "labelsTs"):  # test cases: carried over as they are
        if (source.folder / extra).is_dir():
            (folder / extra).mkdir()
            for path in sorted((source.folder / extra).iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    link_or_copy(path, folder / extra / path.name)
    _generate_dataset_json(folder, source, labels, len(kept), record)
    write_repair_gallery(folder / GALLERY_FILE, views, ignore_value)

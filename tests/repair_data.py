"""Tiny synthetic nnU-Net raw datasets and hand-made audits for the ``repair`` tests (tests/test_repair*.py).

Datasets: 2D PNG or 3D NIfTI, binary or three labels, four cases of different sizes, two of them with wrong labels
(the truth shifted by 2 pixels). Audits: what ``suspects`` writes (suspects.csv, the npz probabilities in the
reader's axis order as nnU-Net's predictor saves them, audit.json), from a model that learnt the truth.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
from PIL import Image

from tloss_nnunet.atomic import file_sha256
from tloss_nnunet.audit.model import CaseAssignment
from tloss_nnunet.audit.ownership import STAMP, TOOL
from tloss_nnunet.audit.provenance import audit_record, write_audit_record
from tloss_nnunet.audit.report import write_csv
from tloss_nnunet.audit.scores import CaseScores

SIZES_2D = [(20, 24), (16, 16), (24, 20), (18, 22)]
SIZES_3D = [(6, 10, 12), (8, 8, 8), (5, 12, 9), (7, 9, 11)]


def _truth(shape: tuple[int, ...], classes: int, seed: int) -> np.ndarray:
    """A label map with a box of class 1 (and a smaller one of class 2 for three labels)."""
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, np.uint8)
    lo = [int(rng.integers(0, s // 3)) for s in shape]
    label[tuple(slice(a, a + s // 2) for a, s in zip(lo, shape))] = 1
    if classes == 3:
        label[tuple(slice(a, a + max(s // 4, 1)) for a, s in zip(lo, shape))] = 2
    return label


def write(array: np.ndarray, path: Path) -> None:
    if path.suffix == ".png":
        Image.fromarray(array).save(path)
    else:
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((1.0, 1.0, 2.0))
        sitk.WriteImage(image, str(path))


def make_dataset(raw_root: Path, dim: int, classes: int, dataset_id: int = 501, ignore: bool = False) -> dict:
    """A raw dataset of 4 cases; ``case_1`` and ``case_3`` get wrong labels (their truth shifted by 2 pixels).
    Returns the folder, the true labels and the given ones (as nnU-Net's readers return them, (1, *spatial))."""
    ending = ".png" if dim == 2 else ".nii.gz"
    folder = raw_root / f"Dataset{dataset_id:03d}_Toy{dim}d"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True)
    truths, given = {}, {}
    for i, shape in enumerate(SIZES_2D if dim == 2 else SIZES_3D):
        case = f"case_{i}"
        truth = _truth(shape, classes, i)
        label = np.roll(truth, 2, axis=-1) if i in (1, 3) else truth.copy()
        if ignore:
            label[..., 0] = classes  # a column the annotator left out
        image = (40 + 80 * truth).astype(np.uint8)
        write(image, folder / "imagesTr" / f"{case}_0000{ending}")
        write(label, folder / "labelsTr" / f"{case}{ending}")
        truths[case], given[case] = truth, label
        if dim == 2:
            truths[case], given[case] = truth[None], label[None]  # nnU-Net's 2D reader adds a 1-long axis
    write(np.zeros(SIZES_2D[0] if dim == 2 else SIZES_3D[0], np.uint8), folder / "imagesTs" / f"test_0_0000{ending}")
    labels = {"background": 0, "a": 1, **({"b": 2} if classes == 3 else {}), **({"ignore": classes} if ignore else {})}
    generate_dataset_json(str(folder), {0: "grey"}, labels, 4, ending, dataset_name=folder.name,
                          description="toy", release="1.0")
    dataset_json = json.loads((folder / "dataset.json").read_text())  # the generator's citation= writes release
    (folder / "dataset.json").write_text(json.dumps({**dataset_json, "citation": "Toy et al."}))
    return {"folder": folder, "truths": truths, "given": given, "ending": ending, "classes": classes}


def probabilities(truth: np.ndarray, classes: int) -> np.ndarray:
    """(C, *spatial) of a model that learnt the truth: 0.96 on its class; uncertain (1 / C) in the first row."""
    p = np.full((classes, *truth.shape), 0.04 / (classes - 1), np.float32)
    np.put_along_axis(p, truth[None].astype(np.int64), 0.96, axis=0)
    p[..., 0, :] = 1.0 / classes
    return p


def make_audit(data: dict, out: Path, truths: dict | None = None, held_out: bool = True) -> Path:
    """An audit folder as suspects writes it: case_1 and case_3 first (most suspect), probabilities of ``truths``."""
    truths = truths or data["truths"]
    folder = out / "predictions" / "fold_0"
    folder.mkdir(parents=True)
    for case, truth in truths.items():
        np.savez_compressed(folder / f"{case}.npz", probabilities=probabilities(truth, data["classes"]))
    score = {"case_3": 0.8, "case_1": 0.6, "case_0": 0.1, "case_2": 0.05}
    ranked = [CaseScores(c, mse=s, one_minus_dice=s, valid_elements=1, extra={"fold": 0, "held_out": True})
              for c, s in sorted(score.items(), key=lambda kv: -kv[1])]
    write_csv(out / "suspects.csv", ranked)
    checkpoint = out.parent / f"{out.name}_checkpoint.pth"
    checkpoint.write_bytes(b"weights")
    raw = data["folder"]
    cases = {c: {"images": [str(raw / "imagesTr" / f"{c}_0000{data['ending']}")],
                 "label": str(raw / "labelsTr" / f"{c}{data['ending']}")} for c in sorted(truths)}
    model = SimpleNamespace(cases=cases, dataset_name=raw.name, folder=out.parent, checkpoint_name=checkpoint.name,
                            folds=(0,), checkpoint=lambda fold: checkpoint)
    assignments = [CaseAssignment(c, 0, held_out) for c in cases]
    (folder / STAMP).write_text(json.dumps({"tool": TOOL, "checkpoint": str(checkpoint), "cases": sorted(cases),
                                            "sha256": file_sha256(checkpoint)}))
    write_audit_record(out, audit_record(model, assignments, "one_minus_dice", out / "suspects.csv"))
    return out


def read(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        return np.asarray(Image.open(path))[None]
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def verify(folder: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        verify_dataset_integrity(str(folder), num_processes=1)


def digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}

"""Re-create an audit's held-out probabilities that a new machine lost, and check them against its record.

The repair runs read two things of their (dataset, setting)'s audit: the ranking, from the committed record, and
the cross-fitted probabilities, from a file in the work folder (:func:`~.repair_audit.audit_file`), which a study
resumed on another machine does not have. The audit is deterministic on one kind of CPU (seeded data, folds and
training on one thread), so it is re-run; it counts only if it reproduces its record: every fold kept the same
iteration and every case's scores agree within :data:`TOLERANCE`. Otherwise its file is removed and the study stops
with the largest difference, rather than repair labels with probabilities the recorded ranking did not come from.

On another kind of CPU the training's floating-point rounding differs from the first iteration on, and 800
iterations later the scores differ by tens of percent. Such an audit can still serve the repair runs that have
not used the old one: with ``supersede`` the re-run audit becomes the record (the caller sets the old one aside).
Its file is left under :func:`superseding_file` until the caller has stored the new record and calls
:func:`finish_superseding`, so a study killed in between re-runs the audit instead of pairing the new
probabilities with the old ranking.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tloss_nnunet.errors import InputError

from .repair_audit import audit_file, audit_run
from .studykit.config import StudyConfig

#: Largest relative difference of a case's score accepted between a re-run audit and its record.
TOLERANCE = 1e-3
#: The per-case scores compared (ours and cleanlab's).
COMPARED: tuple[str, ...] = ("tloss_nll", "mse", "one_minus_dice", "cleanlab_softmin")


class AuditMismatch(InputError):
    """A re-run audit does not reproduce its record (reported as one line, like bad input: the study stops)."""


def missing_audits(records: list[dict], todo: list[tuple], work_dir: Path) -> list[dict]:
    """The audit records whose file is missing in ``work_dir`` although a repair run of ``todo`` (study keys
    ``(engine, config, dataset, setting, arm, seed)``) needs it; one per (dataset, setting)."""
    needed = {(key[2], key[3]) for key in todo if not key[4].startswith("audit_")}
    found: dict[tuple[str, str], dict] = {}
    for record in records:
        cell = (record["dataset"], record["setting"])
        if record.get("stage") == "audit" and cell in needed and not audit_file(work_dir, *cell).is_file():
            found.setdefault(cell, record)
    return list(found.values())


def difference(recorded: dict, rebuilt: dict) -> tuple[float, list[str]]:
    """Largest relative score difference between two audit records of one cell, and what else differs."""
    problems = [f"fold {a['fold']} kept iteration {b['kept_iteration']} (recorded {a['kept_iteration']})"
                for a, b in zip(recorded["folds"], rebuilt["folds"]) if a["kept_iteration"] != b["kept_iteration"]]
    before = {c["case"]: c for c in recorded["cases"]}
    after = {c["case"]: c for c in rebuilt["cases"]}
    if set(before) != set(after):
        problems.append(f"cases differ: {sorted(set(before) ^ set(after))}")
    worst = 0.0
    for case in set(before) & set(after):
        for name in COMPARED:
            a, b = float(before[case][name]), float(after[case][name])
            worst = max(worst, abs(a - b) / max(abs(a), abs(b), 1e-12))
    return worst, problems


#: Fields of the recorded audit that a superseding one keeps (the study adds them to each audit it runs).
KEPT_FIELDS: tuple[str, ...] = ("engine", "config", "release_seed", "noise_seed")


def superseding_file(work_dir: Path, dataset: str, setting: str) -> Path:
    """Where a superseding audit's probabilities wait until its record is stored."""
    final = audit_file(work_dir, dataset, setting)
    return final.with_name(final.name + ".superseding")


def finish_superseding(work_dir: Path, dataset: str, setting: str) -> None:
    """Put a superseding audit's probabilities in place, once its record is stored."""
    superseding_file(work_dir, dataset, setting).replace(audit_file(work_dir, dataset, setting))


def rebuild_audit(recorded: dict, dataset_dir: str, clean_dir: str, config: StudyConfig, work_dir: str,
                  device: str = "cpu", supersede: bool = False, hint: str = "") -> tuple[str, dict | None]:
    """Re-run the audit of ``recorded`` into ``work_dir``; return a one-line report and, when it does not
    reproduce the record and ``supersede`` is set, the re-run audit's record (its file under
    :func:`superseding_file`), else None. Without ``supersede`` a mismatch removes the file and raises
    :class:`AuditMismatch` (its message ends with ``hint``)."""
    kept = {field: recorded[field] for field in KEPT_FIELDS if field in recorded}
    rebuilt = audit_run(recorded["dataset"], recorded["setting"], recorded["seed"], dataset_dir, clean_dir, config,
                        work_dir, device, kept)
    worst, problems = difference(recorded, rebuilt)
    cell = f"{recorded['dataset']} {recorded['setting']}"
    target = audit_file(Path(work_dir), recorded["dataset"], recorded["setting"])
    if problems or not np.isfinite(worst) or worst > TOLERANCE:
        what = (f"the re-run audit of {cell} does not reproduce its record: largest relative score difference "
                f"{worst:.2e} (tolerance {TOLERANCE:g}); {'; '.join(problems) or 'folds agree'}")
        if supersede:
            target.replace(superseding_file(Path(work_dir), recorded["dataset"], recorded["setting"]))
            rebuilt["supersedes"] = {"machine": recorded.get("machine"), "largest_relative_difference": worst,
                                     "problems": problems}
            return f"{what}: the re-run audit becomes its record (the old one set aside)", rebuilt
        target.unlink(missing_ok=True)
        raise AuditMismatch(what + hint)
    return f"re-created the audit file of {cell} (largest relative score difference {worst:.1e})", None

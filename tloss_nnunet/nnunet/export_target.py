"""May ``export-stock`` write its folder? Only when it is new (or empty) or its own earlier, unchanged export.

The export's folder name, ``nnUNetTrainer__<plans>__<configuration>``, is also where ``nnUNetv2_train ... -tr
nnUNetTrainer`` trains the stock baseline in ``$nnUNet_results``. So ``--overwrite`` must never mean "replace
whatever is there": an earlier export is recognised by its ``tloss_export.json``, which lists every file the
export wrote with its SHA-256; a folder holding anything else (a trained model, an export that training
continued in, other files) is refused with or without ``--overwrite``. Exports of older versions list no digests:
nothing proves their checkpoints unchanged, so ``--overwrite`` refuses them too and says how to proceed (remove the
folder yourself if nothing in it is needed).
"""

from __future__ import annotations

import json
from pathlib import Path

from tloss_nnunet.atomic import file_sha256

__all__ = ["PROVENANCE_FILE", "TOOL", "file_digests", "target_problem"]

PROVENANCE_FILE = "tloss_export.json"
TOOL = "tloss-nnunet export-stock"
_NEVER = "export-stock never replaces it (--overwrite only replaces earlier exports); choose another OUTPUT_FOLDER"



def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def file_digests(folder: Path) -> dict[str, str]:
    """``relative path -> SHA-256`` of every file under ``folder`` except the provenance file."""
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in _files(folder) if p.name != PROVENANCE_FILE
            or p.parent != folder}


def _provenance(folder: Path) -> dict | None:
    try:
        provenance = json.loads((folder / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return provenance if isinstance(provenance, dict) and "exported_as" in provenance else None


def _changed_files(folder: Path, recorded: dict) -> list[str]:
    """Files added or changed since the export wrote ``folder`` (``recorded``: its ``path -> SHA-256``). Removed
    files are no reason to refuse: replacing the folder loses nothing of them."""
    present = {p.relative_to(folder).as_posix() for p in _files(folder)} - {PROVENANCE_FILE}
    changed = sorted(present - set(recorded))
    changed += [name for name in sorted(present & set(recorded)) if file_sha256(folder / name) != recorded[name]]
    return changed


def target_problem(target: Path, overwrite: bool) -> str | None:
    """Why the export must not write ``target`` (``None`` when it may)."""
    if not target.exists() and not target.is_symlink():
        return None
    if not target.is_dir() or target.is_symlink():
        return f"'{target}' exists and is not a folder; {_NEVER}."
    if not any(target.iterdir()):
        return None  # an empty folder holds nothing to lose
    provenance = _provenance(target)
    if provenance is None:
        trained = any(target.glob("fold_*/checkpoint_*.pth")) or (target / "plans.json").is_file()
        what = "is a trained nnU-Net model" if trained else "holds other files"
        return f"'{target}' {what}, not an earlier export; {_NEVER}."
    recorded = provenance.get("files")
    if not isinstance(recorded, dict):  # an older version's export: its checkpoints cannot be verified as ours
        return (f"'{target}' is an export by an older export-stock that recorded no SHA-256 digests, so nothing "
                f"shows that its checkpoints are unchanged (training may have continued in it); if nothing in it "
                f"is needed, remove it yourself (rm -r '{target}') and export again, or choose another "
                f"OUTPUT_FOLDER.")
    changed = _changed_files(target, recorded)
    if changed:
        shown = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
        return (f"'{target}' is an earlier export but changed since ({len(changed)} file(s): {shown}; training "
                f"may have continued in it); {_NEVER}.")
    return None if overwrite else f"'{target}' is an earlier export; pass --overwrite to replace it."

"""Label auditing: which training cases' labels are probably wrong, judged by a trained model.

Entry points (imported lazily: the command line's ``--help`` must not load torch or nnU-Net)::

    from tloss_nnunet.audit import score_cases      # arrays in, ranked per-case scores out (MONAI users)
    from tloss_nnunet.audit import audit_model      # an nnU-Net model folder in, suspects.csv/.md/.png out
    from tloss_nnunet.audit import repair_dataset   # an audit in, a new raw dataset with repaired labels out
    from tloss_nnunet.audit import repaired_label   # the repair rules over arrays (studies)

``tloss-nnunet suspects MODEL_FOLDER -o OUT_DIR`` is ``audit_model`` on the command line, ``tloss-nnunet repair
AUDIT_DIR --out-id ID ...`` is ``repair_dataset``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tloss_nnunet.lazy import lazy_attributes

if TYPE_CHECKING:  # what the lazy attributes resolve to, for type checkers and IDEs
    from tloss_nnunet.audit.audit import AuditResult, audit_model
    from tloss_nnunet.audit.repair import RepairResult, repair_dataset
    from tloss_nnunet.audit.repair_rules import (
        DEFAULT_CONFIDENCE,
        REPAIR_MODES,
        cases_to_repair,
        disagreement,
        repaired_label,
    )
    from tloss_nnunet.audit.scores import SCORE_NAMES, CaseScores, case_scores, score_cases

__all__ = ["DEFAULT_CONFIDENCE", "REPAIR_MODES", "SCORE_NAMES", "AuditResult", "CaseScores", "RepairResult",
           "audit_model", "case_scores", "cases_to_repair", "disagreement", "repair_dataset", "repaired_label",
           "score_cases"]

_LAZY = {
    "SCORE_NAMES": "tloss_nnunet.audit.scores",
    "CaseScores": "tloss_nnunet.audit.scores",
    "case_scores": "tloss_nnunet.audit.scores",
    "score_cases": "tloss_nnunet.audit.scores",
    "AuditResult": "tloss_nnunet.audit.audit",
    "audit_model": "tloss_nnunet.audit.audit",
    "RepairResult": "tloss_nnunet.audit.repair",
    "repair_dataset": "tloss_nnunet.audit.repair",
    "DEFAULT_CONFIDENCE": "tloss_nnunet.audit.repair_rules",
    "REPAIR_MODES": "tloss_nnunet.audit.repair_rules",
    "cases_to_repair": "tloss_nnunet.audit.repair_rules",
    "disagreement": "tloss_nnunet.audit.repair_rules",
    "repaired_label": "tloss_nnunet.audit.repair_rules",
}
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)

"""Label auditing: which training cases' labels are probably wrong, judged by a trained model.

Two entry points (imported lazily: the command line's ``--help`` must not load torch or nnU-Net)::

    from tloss_nnunet.audit import score_cases      # arrays in, ranked per-case scores out (MONAI users)
    from tloss_nnunet.audit import audit_model      # an nnU-Net model folder in, suspects.csv/.md/.png out

``tloss-nnunet suspects MODEL_FOLDER -o OUT_DIR`` is ``audit_model`` on the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tloss_nnunet.lazy import lazy_attributes

if TYPE_CHECKING:  # what the lazy attributes resolve to, for type checkers and IDEs
    from tloss_nnunet.audit.audit import AuditResult, audit_model
    from tloss_nnunet.audit.scores import SCORE_NAMES, CaseScores, case_scores, score_cases

__all__ = ["SCORE_NAMES", "AuditResult", "CaseScores", "audit_model", "case_scores", "score_cases"]

_LAZY = {
    "SCORE_NAMES": "tloss_nnunet.audit.scores",
    "CaseScores": "tloss_nnunet.audit.scores",
    "case_scores": "tloss_nnunet.audit.scores",
    "score_cases": "tloss_nnunet.audit.scores",
    "AuditResult": "tloss_nnunet.audit.audit",
    "audit_model": "tloss_nnunet.audit.audit",
}
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)

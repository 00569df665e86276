"""Confidence conditioned KD (Mishra and Sundaram, arXiv 2107.06993, 2021).

Named ``cckd_l`` / ``cckd_t``, never a bare ``cckd``: elsewhere CCKD means Correlation
Congruence KD. lambda_i = the teacher's probability on the true class [paper, Fig. 1].
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import losses
from .base import Batch, Method, Terms, register_method


@register_method("cckd_l")
@dataclass
class CCKDLoss(Method):
    """CCKD-L [paper]: ``l_i = lambda_i tau^2 KL(p_T || p_S) + (1 - lambda_i) CE(y_i, z_S)``.

    ``lambda_tau`` [ours, default 1]: the temperature at which lambda is read off the teacher.
    """

    tau: float = 4.0
    lambda_tau: float = 1.0

    def __call__(self, b: Batch) -> Terms:
        lam = losses.teacher_confidence(b.teacher_logits, b.y, self.lambda_tau)
        per = losses.cckd_l_loss(b.logits, b.teacher_logits, b.y, lam, self.tau)
        return Terms(per_sample=per, parts={"lambda": lam, "cckd_l": per.detach()})


@register_method("cckd_t")
@dataclass
class CCKDTarget(Method):
    """CCKD-T [paper, eqs. 4-6]: ``t_i = lambda_i p_T + (1 - lambda_i) y_i``; ``l_i = tau^2 KL(t_i || p_S)``."""

    tau: float = 4.0
    lambda_tau: float = 1.0

    def __call__(self, b: Batch) -> Terms:
        lam = losses.teacher_confidence(b.teacher_logits, b.y, self.lambda_tau)
        target = losses.cckd_t_target(b.teacher_logits, b.y, lam, self.tau)
        per = losses.kl_to_target(b.logits, target, self.tau)
        return Terms(per_sample=per, parts={"lambda": lam, "cckd_t": per.detach()})

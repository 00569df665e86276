"""Confidence conditioned KD (Mishra and Sundaram, arXiv 2107.06993, 2021).

Named ``cckd_l`` / ``cckd_t``, never a bare ``cckd``: elsewhere CCKD means Correlation
Congruence KD. lambda_i = y . softmax(z_T / tau), the teacher's tempered probability on the true
class [paper, Fig. 1 and Algorithm 1, lines 5 and 8]; ``lambda_tau`` reads it at another
temperature (1: the public re-implementation's reading, an ablation).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..numerics import losses
from .base import Batch, Method, Terms, register_method


@register_method("cckd_l")
@dataclass
class CCKDLoss(Method):
    """CCKD-L [paper]: ``l_i = lambda_i kd_scale KL(p_T || p_S) + (1 - lambda_i) CE(y_i, z_S)``.

    ``lambda_tau`` None: lambda at ``tau`` [paper, Algorithm 1]; a number: lambda at that
    temperature (1.0 [public]). ``kd_scale`` None: tau^2 [ours]; 1.0 the literal Fig. 1c balance.
    """

    tau: float = 4.0
    lambda_tau: float | None = None
    kd_scale: float | None = None

    def __call__(self, b: Batch) -> Terms:
        lam = losses.teacher_confidence(b.teacher_logits, b.y, self.tau if self.lambda_tau is None else self.lambda_tau)
        per = losses.cckd_l_loss(b.logits, b.teacher_logits, b.y, lam, self.tau, self.kd_scale)
        return Terms(per_sample=per, parts={"lambda": lam, "cckd_l": per.detach()})


@register_method("cckd_t")
@dataclass
class CCKDTarget(Method):
    """CCKD-T [paper, eqs. 4-6]: ``t_i = lambda_i p_T + (1 - lambda_i) y_i``; ``l_i = kd_scale KL(t_i || p_S)``.

    ``lambda_tau`` and ``kd_scale`` as in :class:`CCKDLoss`.
    """

    tau: float = 4.0
    lambda_tau: float | None = None
    kd_scale: float | None = None

    def __call__(self, b: Batch) -> Terms:
        lam = losses.teacher_confidence(b.teacher_logits, b.y, self.tau if self.lambda_tau is None else self.lambda_tau)
        target = losses.cckd_t_target(b.teacher_logits, b.y, lam, self.tau)
        scale = self.tau * self.tau if self.kd_scale is None else self.kd_scale
        per = scale * losses.kl_to_target(b.logits, target, self.tau, scale=False)
        return Terms(per_sample=per, parts={"lambda": lam, "cckd_t": per.detach()})

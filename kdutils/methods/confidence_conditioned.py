"""Confidence conditioned KD (Mishra and Sundaram, arXiv 2107.06993, 2021).

Named ``cckd_l`` / ``cckd_t``, never a bare ``cckd``: elsewhere CCKD means Correlation
Congruence KD. lambda_i = y . softmax(z_T / tau), the teacher's tempered probability on the true
class [paper, Fig. 1 and Algorithm 1, lines 5 and 8]; ``lambda_tau`` reads it at another
temperature (1: the public re-implementation's reading, an ablation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..numerics import losses
from .base import Batch, Entry, Method, Terms, register_method


def teacher_confidence(z_t: torch.Tensor, y: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """CCKD's per-sample weight ``lambda_i = softmax(z_t[i] / tau)[y_i]`` (detached), in [0, 1].

    [paper, Fig. 1 and Algorithm 1, lines 5 and 8] lambda = y . y_T with y_T = softmax(z_T / tau),
    the teacher's tempered probability on the true class: the methods pass their own tau by
    default. Read at tau = 1 it is the public re-implementation's choice (an ablation).
    """
    return F.softmax(z_t.detach() / tau, dim=1).gather(1, y[:, None]).squeeze(1)


def cckd_l_loss(
    z_s: torch.Tensor,
    z_t: torch.Tensor,
    y: torch.Tensor,
    lam: torch.Tensor,
    tau: float = 4.0,
    kd_scale: float | None = None,
) -> torch.Tensor:
    """CCKD-L, the sample-specific loss [paper, Fig. 1c and Algorithm 1]:

    ``l_i = lambda_i * kd_scale * KL(p_T || p_S) + (1 - lambda_i) * CE(y_i, z_S)``

    with ``p = softmax(z / tau)``. ``kd_scale`` [ours] defaults to Hinton's ``tau^2``; 1 keeps the
    lambda / (1 - lambda) balance of Fig. 1c literal. The CE term is on the untempered logits
    [ours; Algorithm 1 writes L_CE(y, y_S) with the tempered y_S]. lambda = 1 gives the KD term
    alone, lambda = 0 plain cross-entropy.

    Usage: ``cckd_l_loss(z_s, z_t, y, teacher_confidence(z_t, y, tau=4.0)).mean()``; as a method, ``create_method("cckd_l")``.
    """
    scale = tau * tau if kd_scale is None else kd_scale
    return lam * scale * losses.kd_kl(z_s, z_t, tau, scale=False) + (1.0 - lam) * losses.cross_entropy(z_s, y)


def cckd_t_target(z_t: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, tau: float = 4.0) -> torch.Tensor:
    """CCKD-T's sample-specific target [paper, eqs. 4-6]:

    ``t_i = lambda_i * softmax(z_t[i] / tau) + (1 - lambda_i) * onehot(y_i)``, renormalised to
    sum to 1 (it already does up to rounding). Detached.

    Usage: ``losses.kl_to_target(z_s, cckd_t_target(z_t, y, teacher_confidence(z_t, y, 4.0))).mean()``; as a method, ``create_method("cckd_t")``.
    """
    p_t = F.softmax(z_t.detach() / tau, dim=1)
    onehot = F.one_hot(y, p_t.shape[1]).to(p_t.dtype)
    t = lam[:, None] * p_t + (1.0 - lam[:, None]) * onehot
    return t / t.sum(dim=1, keepdim=True)


@register_method("cckd_l")
@dataclass
class CCKDLoss(Method):
    """CCKD-L [paper]: ``l_i = lambda_i kd_scale KL(p_T || p_S) + (1 - lambda_i) CE(y_i, z_S)``.

    ``lambda_tau`` None: lambda at ``tau`` [paper, Algorithm 1]; a number: lambda at that
    temperature (1.0 [public]). ``kd_scale`` None: tau^2 [ours]; 1.0 the literal Fig. 1c balance.
    """

    leaderboard = (Entry("CCKD-L", "cckd_l", source="[paper] Mishra and Sundaram 2021 (notebook 01)"),)

    tau: float = 4.0
    lambda_tau: float | None = None
    kd_scale: float | None = None

    def __call__(self, b: Batch) -> Terms:
        lam = teacher_confidence(b.teacher_logits, b.y, self.tau if self.lambda_tau is None else self.lambda_tau)
        per = cckd_l_loss(b.logits, b.teacher_logits, b.y, lam, self.tau, self.kd_scale)
        return Terms(per_sample=per, parts={"lambda": lam, "cckd_l": per.detach()})


@register_method("cckd_t")
@dataclass
class CCKDTarget(Method):
    """CCKD-T [paper, eqs. 4-6]: ``t_i = lambda_i p_T + (1 - lambda_i) y_i``; ``l_i = kd_scale KL(t_i || p_S)``.

    ``lambda_tau`` and ``kd_scale`` as in :class:`CCKDLoss`.
    """

    leaderboard = (Entry("CCKD-T", "cckd_t", source="[paper] Mishra and Sundaram 2021 (notebook 01)"),)

    tau: float = 4.0
    lambda_tau: float | None = None
    kd_scale: float | None = None

    def __call__(self, b: Batch) -> Terms:
        lam = teacher_confidence(b.teacher_logits, b.y, self.tau if self.lambda_tau is None else self.lambda_tau)
        target = cckd_t_target(b.teacher_logits, b.y, lam, self.tau)
        scale = self.tau * self.tau if self.kd_scale is None else self.kd_scale
        per = scale * losses.kl_to_target(b.logits, target, self.tau, scale=False)
        return Terms(per_sample=per, parts={"lambda": lam, "cckd_t": per.detach()})

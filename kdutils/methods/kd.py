"""Hinton et al. (2015) knowledge distillation."""

from __future__ import annotations

from dataclasses import dataclass

from ..numerics import losses
from .base import Batch, Method, Terms, register_method


@register_method("kd")
@dataclass
class KD(Method):
    """``l_i = ce_weight * CE(y_i, z_S) + kd_weight * tau^2 KL(p_T || p_S)`` (see :func:`kdutils.losses.kd_loss`)."""

    tau: float = 4.0
    ce_weight: float = 0.1
    kd_weight: float = 0.9

    def __call__(self, b: Batch) -> Terms:
        ce = losses.cross_entropy(b.logits, b.y)
        kl = losses.kd_kl(b.logits, b.teacher_logits, self.tau)
        return Terms(per_sample=self.ce_weight * ce + self.kd_weight * kl, parts={"ce": ce.detach(), "kd": kl.detach()})

"""Hinton et al. (2015) knowledge distillation."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..numerics import losses
from .base import Batch, Entry, Method, Terms, register_method


def kd_loss(
    z_s: torch.Tensor,
    z_t: torch.Tensor,
    y: torch.Tensor,
    tau: float = 4.0,
    ce_weight: float = 0.1,
    kd_weight: float = 0.9,
) -> torch.Tensor:
    """Hinton KD per sample: ``ce_weight * CE(y, z_s) + kd_weight * tau^2 KL(p_T || p_S)``.

    Defaults (tau 4, weights 0.1 / 0.9) are this project's KD baseline (cckd.md).

    Usage: ``kd_loss(student(x), teacher(x), y).mean()``; as a method, ``create_method("kd", tau=4.0)``.
    """
    return ce_weight * losses.cross_entropy(z_s, y) + kd_weight * losses.kd_kl(z_s, z_t, tau)


@register_method("kd")
@dataclass
class KD(Method):
    """``l_i = ce_weight * CE(y_i, z_S) + kd_weight * tau^2 KL(p_T || p_S)`` (:func:`kd_loss`)."""

    leaderboard = (
        Entry("KD", "kd", source="[paper] Hinton et al. 2015; tau 4, CE weight 0.1 [ours] (notebook 00)"),
        Entry("KD+DS", "kd", needs=("selection",), source="[paper] Lan et al. 2024's data selection (notebook 05)"),
    )

    tau: float = 4.0
    ce_weight: float = 0.1
    kd_weight: float = 0.9

    def __call__(self, b: Batch) -> Terms:
        per_sample = kd_loss(b.logits, b.teacher_logits, b.y, self.tau, self.ce_weight, self.kd_weight)
        with torch.no_grad():  # the two terms again, for the training log only
            parts = {
                "ce": losses.cross_entropy(b.logits, b.y),
                "kd": losses.kd_kl(b.logits, b.teacher_logits, self.tau),
            }
        return Terms(per_sample=per_sample, parts=parts)

"""Distillation losses as pure tensor functions, one value per sample.

Notation: ``z_s`` student logits (B, C), ``z_t`` teacher logits (B, C), ``y`` int64
labels (B,), ``tau`` the temperature. Every function returns a (B,) tensor; the
trainer reduces it (a weighted mean over the samples that take part), so a gate or a
per-sample weight never needs a loss of its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(z_s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy with the hard label.

    ``l_i = -log softmax(z_s[i])[y_i]``.
    """
    return F.cross_entropy(z_s, y, reduction="none")


def soft_cross_entropy(z_s: torch.Tensor, target: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Per-sample cross-entropy against a soft target distribution.

    ``l_i = -sum_c target[i, c] log softmax(z_s[i] / tau)[c]``.
    """
    return -(target * F.log_softmax(z_s / tau, dim=1)).sum(dim=1)


def kd_kl(z_s: torch.Tensor, z_t: torch.Tensor, tau: float = 4.0, scale: bool = True) -> torch.Tensor:
    """Hinton et al. (2015, "Distilling the Knowledge in a Neural Network") soft term.

    ``l_i = tau^2 * KL(p_T || p_S)`` with ``p_T = softmax(z_t / tau)``,
    ``p_S = softmax(z_s / tau)``; the ``tau^2`` factor (``scale=True``) keeps the
    gradient's size independent of tau, as the paper recommends. The teacher's side
    carries no gradient.
    """
    log_p_s = F.log_softmax(z_s / tau, dim=1)
    log_p_t = F.log_softmax(z_t.detach() / tau, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    return kl * (tau * tau) if scale else kl


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
    """
    return ce_weight * cross_entropy(z_s, y) + kd_weight * kd_kl(z_s, z_t, tau)

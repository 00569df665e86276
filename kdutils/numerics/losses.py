"""The loss primitives every method shares, as pure tensor functions, one value per sample.

Cross-entropy (hard and soft targets), the tempered KL of Hinton et al., the KL to any target
distribution and the linear ramp of a schedule. A method's own loss lives in its file under
:mod:`kdutils.methods` (``kd_loss`` in ``kd.py``, ``cckd_l_loss`` in ``confidence_conditioned.py``,
``lr_mse_loss`` in ``label_revision.py``, ...), with its formula, its source and a usage line.

Notation: ``z_s`` student logits (B, C), ``z_t`` teacher logits (B, C), ``y`` int64
labels (B,), ``tau`` the temperature. Every function returns a (B,) tensor; the
trainer reduces it (a weighted mean over the samples that take part), so a gate or a
per-sample weight never needs a loss of its own.

The correlation losses of DIST and CMKD (Pearson, soft ranks, Spearman, difficulty weights and
DIST's batch-level intra-class term) are in :mod:`kdutils.correlation`.
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


def kl_to_target(z_s: torch.Tensor, target: torch.Tensor, tau: float = 4.0, scale: bool = True) -> torch.Tensor:
    """``tau^2 KL(target || softmax(z_s / tau))`` per sample, for any target distribution
    (zeros allowed: 0 log 0 = 0). With ``target = softmax(z_t / tau)`` this is :func:`kd_kl`."""
    log_p_s = F.log_softmax(z_s / tau, dim=1)
    kl = (torch.xlogy(target, target) - target * log_p_s).sum(dim=1)
    return kl * (tau * tau) if scale else kl


# ---------------------------------------------------------------- schedules


def linear_ramp(progress: float, warmup: float, ramp: float) -> float:
    """The IBP schedule's ramp factor r(t) in [0, 1] at training progress ``t`` in [0, 1]:

    ``r(t) = 0`` for ``t < warmup``, ``min(1, (t - warmup) / ramp)`` after (1 at once when
    ``ramp = 0``). Gowal et al. 2018 [public]: a warm-up at eps = 0, then eps ramped linearly
    to eps_train (and kappa from 1 to kappa_final) over a ramp, then held.
    """
    if progress < warmup:
        return 0.0
    if ramp <= 0:
        return 1.0
    return min(1.0, (progress - warmup) / ramp)

"""Distillation losses as pure tensor functions, one value per sample.

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


# ---------------------------------------------------------------- confidence conditioned KD
# Mishra and Sundaram, "Confidence Conditioned Knowledge Distillation", arXiv 2107.06993 (2021).


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
    """
    scale = tau * tau if kd_scale is None else kd_scale
    return lam * scale * kd_kl(z_s, z_t, tau, scale=False) + (1.0 - lam) * cross_entropy(z_s, y)


def cckd_t_target(z_t: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, tau: float = 4.0) -> torch.Tensor:
    """CCKD-T's sample-specific target [paper, eqs. 4-6]:

    ``t_i = lambda_i * softmax(z_t[i] / tau) + (1 - lambda_i) * onehot(y_i)``, renormalised to
    sum to 1 (it already does up to rounding). Detached.
    """
    p_t = F.softmax(z_t.detach() / tau, dim=1)
    onehot = F.one_hot(y, p_t.shape[1]).to(p_t.dtype)
    t = lam[:, None] * p_t + (1.0 - lam[:, None]) * onehot
    return t / t.sum(dim=1, keepdim=True)


def kl_to_target(z_s: torch.Tensor, target: torch.Tensor, tau: float = 4.0, scale: bool = True) -> torch.Tensor:
    """``tau^2 KL(target || softmax(z_s / tau))`` per sample, for any target distribution
    (zeros allowed: 0 log 0 = 0). With ``target = softmax(z_t / tau)`` this is :func:`kd_kl`."""
    log_p_s = F.log_softmax(z_s / tau, dim=1)
    kl = (torch.xlogy(target, target) - target * log_p_s).sum(dim=1)
    return kl * (tau * tau) if scale else kl

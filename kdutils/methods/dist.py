"""DIST: knowledge distillation from a stronger teacher by correlation (Huang et al., NeurIPS 2022).

Public code ``hunto/DIST_KD`` [public]; the baseline and the Pearson part of CMKD
(``docs/papers/cmkd.md``). Losses in :mod:`kdutils.correlation`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..numerics import correlation, losses
from .base import Batch, Entry, Method, Terms, register_method


def dist_inter(z_s: torch.Tensor, z_t: torch.Tensor, tau: float = 4.0) -> torch.Tensor:
    """DIST's inter-class term per sample: ``tau^2 (1 - rho(P_S[i, :], P_T[i, :]))`` (B,) [public].

    Its mean over the batch is DIST's ``L_inter = tau^2 (1 - mean_i rho_i)``.

    Usage: ``dist_inter(z_s, z_t).mean() + dist_intra(z_s, z_t)``; as a method, ``create_method("dist")``.
    """
    return tau * tau * correlation.pearson_distance(z_s, z_t, tau)


def dist_intra(z_s: torch.Tensor, z_t: torch.Tensor, tau: float = 4.0) -> torch.Tensor:
    """DIST's intra-class term, a scalar of the batch [public]:

    ``L_intra = tau^2 (1 - mean_j rho(P_S[:, j], P_T[:, j]))``, the correlation of each class's
    probabilities across the rows given (pass only the rows that take part). With one row every
    centred column is zero, rho = 0 and the term is the constant tau^2 (no gradient), as in
    DIST's code; the batch size matters (DIST: 64, drop the last partial batch).
    """
    p_s, p_t = correlation.tempered(z_s, tau), correlation.tempered(z_t.detach(), tau)
    return tau * tau * (1.0 - correlation.pearson(p_s.t(), p_t.t()).mean())


@register_method("dist")
@dataclass
class DIST(Method):
    """``loss = ce_weight CE + beta L_inter + gamma L_intra`` [public]:

    * ``L_inter = tau^2 (1 - mean_i rho(P_S[i, :], P_T[i, :]))``, given per sample
      (:func:`kdutils.dist_inter`), so the trainer's mean over the rows that take
      part is DIST's mean;
    * ``L_intra = tau^2 (1 - mean_j rho(P_S[:, j], P_T[:, j]))``, a batch term computed over the
      rows that take part only (:func:`kdutils.dist_intra`).

    Defaults: DIST's CIFAR-100 setting [public], tau = 4 and ``CE + 2 (L_inter + L_intra)``,
    written as beta = gamma = 2 (DIST's loss module has beta = gamma = 1 and a loss weight 2).
    DIST trains with batch 64 and drops the last partial batch (``Recipe(drop_last=True)``),
    since the intra-class term depends on the batch.
    """

    leaderboard = (Entry("DIST", "dist", source="[public] Huang et al. 2022 (notebook 02)"),)

    tau: float = 4.0
    beta: float = 2.0
    gamma: float = 2.0
    ce_weight: float = 1.0

    def __call__(self, b: Batch) -> Terms:
        z_s, z_t = b.logits, b.teacher_logits
        ce = losses.cross_entropy(z_s, b.y)
        lp = correlation.pearson_distance(z_s, z_t, self.tau)
        per = self.ce_weight * ce + self.beta * self.tau * self.tau * lp

        def batch(mask: torch.Tensor) -> torch.Tensor:
            return self.gamma * dist_intra(z_s[mask], z_t[mask], self.tau)

        with torch.no_grad():  # diagnostic: over the whole batch, before any gate
            intra = dist_intra(z_s, z_t, self.tau) / (self.tau * self.tau)
        return Terms(per_sample=per, batch=batch, parts={"ce": ce.detach(), "pearson": lp.detach(), "intra": intra})

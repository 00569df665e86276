"""IBP training (Gowal et al. 2018, "On the effectiveness of interval bound propagation for
training verifiably robust models"): a certifiably robust teacher for faithful.md."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..numerics import ibp, losses
from ._robust import check_attack, check_ramp, check_weight
from .base import IBP_PASS, TRAIN_FACTOR, Batch, Entry, Method, Terms, register_method


def ibp_loss(z: torch.Tensor, z_worst: torch.Tensor, y: torch.Tensor, kappa: float) -> torch.Tensor:
    """IBP training (Gowal et al. 2018, eq. 7) [public]:

    ``l_i = kappa CE(z_i, y_i) + (1 - kappa) CE(z_worst_i, y_i)``

    with ``z`` the clean logits and ``z_worst = -lower(z_y - z_j)`` the worst-case logits over
    the eps-ball (:func:`kdutils.ibp.worst_case_logits`).

    Usage: ``ibp_loss(z, ibp.worst_case_logits(model, x, eps, y), y, kappa=0.5).mean()``; as a method, ``create_method("ibp")``.
    """
    return kappa * losses.cross_entropy(z, y) + (1.0 - kappa) * losses.cross_entropy(z_worst, y)


@register_method("ibp")
@dataclass
class IBPTraining(Method):
    """``l_i = kappa(t) CE(z_i, y_i) + (1 - kappa(t)) CE(z_worst_i(eps(t)), y_i)``
    (:func:`kdutils.ibp_loss`; ``z_worst`` from :func:`kdutils.ibp.worst_case_logits`).

    **Schedule** [public: Gowal et al. 2018, Sec. 4 and Appendix; MNIST: 2k warm-up steps, a 10k
    step ramp, 60k steps in all]: with ``t`` = the batch's training progress in [0, 1) (global
    step / total steps, so a resumed run follows the same schedule bit for bit) and
    ``r(t) = linear_ramp(t, warmup, ramp)`` (:func:`kdutils.losses.linear_ramp`: 0 during the
    warm-up, then linear to 1 over ``ramp``, then 1)::

        eps(t)   = eps * r(t)                      (0 -> eps)
        kappa(t) = 1 - (1 - kappa) * r(t)          (1 -> kappa, 0.5 in Gowal et al.)

    ``warmup`` = 1/30 and ``ramp`` = 1/6 of training are Gowal et al.'s MNIST fractions (2k and
    10k of 60k steps) [public]; ``eps`` defaults to faithful.md's epsilon 0.1 [ours; Gowal et al.
    train MNIST at a somewhat larger epsilon than they test]. eps in pixel units, the ball
    clipped to [0, 1]. Needs a model IBP can bound (``ibp_small``, ``ibp_medium``, ``ibp_large``).
    """

    leaderboard = (
        Entry(
            "IBP (no teacher)",
            lambda st: {"name": "ibp", "eps": st.faithful_eps},
            block="interval",
            source="[paper] Gowal et al. 2018 (notebook 04's control)",
        ),
    )

    needs_teacher = False
    eps: float = 0.1
    kappa: float = 0.5
    warmup: float = 1 / 30
    ramp: float = 1 / 6

    def __post_init__(self) -> None:
        check_attack(self.eps, 1, None)
        check_weight("kappa", self.kappa)
        check_ramp(self.warmup, self.ramp)

    def passes(self) -> tuple[float, float]:
        """One differentiated interval pass of the student (:data:`TRAIN_FACTOR` x :data:`IBP_PASS` =
        6 forwards: 3x plain training [ours]) on the steps after the warm-up (none at ``kappa = 1``)."""
        on = 1.0 - self.warmup if self.kappa < 1 else 0.0
        return on * TRAIN_FACTOR * IBP_PASS, 0.0

    def schedule(self, progress: float) -> tuple[float, float]:
        """``(eps(t), kappa(t))`` at training progress ``t``."""
        r = losses.linear_ramp(progress, self.warmup, self.ramp)
        return self.eps * r, 1.0 - (1.0 - self.kappa) * r

    def __call__(self, b: Batch) -> Terms:
        eps, kappa = self.schedule(b.progress)
        ce = losses.cross_entropy(b.logits, b.y)
        if kappa >= 1.0:  # warm-up: the worst-case term has weight 0
            ce_worst, per = ce.detach(), ce
        else:
            z_worst = ibp.worst_case_logits(b.student, b.x, eps, b.y)
            per = ibp_loss(b.logits, z_worst, b.y, kappa)
            ce_worst = losses.cross_entropy(z_worst.detach(), b.y)
        parts = {"ce": ce.detach(), "ce_worst": ce_worst, "eps": torch.tensor(eps), "kappa": torch.tensor(kappa)}
        return Terms(per_sample=per, parts=parts)

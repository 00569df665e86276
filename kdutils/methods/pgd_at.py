"""PGD adversarial training (Madry et al. 2018, "Towards Deep Learning Models Resistant to
Adversarial Attacks"): a robust teacher for faithful.md."""

from __future__ import annotations

from dataclasses import dataclass

from ..numerics import attacks, losses
from ._robust import check_attack
from .base import ATTACK_STEP, Batch, Entry, Method, Terms, register_method


@register_method("pgd_at")
@dataclass
class PGDAT(Method):
    """``l_i = CE(S(x_adv_i), y_i)``, ``x_adv`` = PGD on the student's CE (Madry et al. 2018 [public]:
    training on the PGD points only).

    PGD (:func:`kdutils.attacks.pgd`): l_inf ball of ``eps`` in pixel units clipped to [0, 1],
    ``steps`` steps of ``step_size`` (None: 2.5 eps / steps, Madry's total step length), uniform
    random start drawn from the batch's generator (a resumed run draws the same starts), the
    student in eval mode during the attack and in train mode for the forward it is trained on.
    Madry et al. use eps 0.3, 40 steps of 0.01 on MNIST [public]; the defaults (eps 0.1, 10
    steps) are faithful.md's epsilon [paper, Fig. 1] at a CPU budget [ours].
    """

    leaderboard = (
        Entry(
            "PGD-AT (no teacher)",
            lambda st: {"name": "pgd_at", "eps": st.faithful_eps, "steps": st.train_pgd_steps},
            source="[paper] Madry et al. 2018; eps and steps the profile's",
        ),
    )

    needs_teacher = False
    eps: float = 0.1
    steps: int = 10
    step_size: float | None = None

    def __post_init__(self) -> None:
        check_attack(self.eps, self.steps, self.step_size)

    def passes(self) -> tuple[float, float]:
        """``steps`` attack steps on the student: training costs ``1 + steps`` times plain training."""
        return ATTACK_STEP * self.steps, 0.0

    def forward(self, b: Batch):
        x_adv = attacks.pgd(
            b.student, b.x, self.eps, b.y, steps=self.steps, step_size=self.step_size, generator=b.generator
        )
        return b.student(x_adv)

    def __call__(self, b: Batch) -> Terms:
        ce = losses.cross_entropy(b.logits, b.y)
        return Terms(per_sample=ce, parts={"ce_adv": ce.detach()})

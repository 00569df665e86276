"""Self-regulation (SR): a gate that lets a sample into the backward pass only while it is
misclassified or not yet confidently right.

Mishra and Sundaram, CCKD (arXiv 2107.06993), Algorithm 1 "CCKD-T+Reg" [paper], and the same
authors' self-regulated KD (arXiv 2102.07125). At epoch n (0-based) the threshold is
``eta_n = 1 - exp(-alpha n)``; sample i takes part if the student misclassifies it, or
classifies it correctly with confidence ``delta_i < eta_n``.

* ``delta`` is computed from y_S = softmax(z_S / tau) [paper, Algorithm 1: "compute delta from
  y_S"], at the wrapped method's tau (``delta_tau=None``; 1 for a method without a temperature,
  e.g. the SR teacher's cross-entropy). ``delta_tau=1.0`` is the stricter reading at tau = 1
  [ours, an ablation]: at eta = 0.9 a 10-class sample leaves once its logit gap is about 4.5 at
  tau = 1, about 18 at tau = 4.
* Its form is not defined in the available material: ``"margin"`` (default) [public, the
  re-implementation] is the gap between the student's two largest tempered probabilities,
  ``"true_prob"`` is p_S[y] [ours].
* ``alpha`` [ours]: by default chosen so that eta at the last epoch is ``eta_end`` = 0.9,
  ``alpha = -ln(1 - eta_end) / (epochs - 1)``; pass ``alpha`` to fix it instead.
* ``beta`` [ours]: a fixed threshold instead of the schedule (the fixed-threshold variant).

The gate wraps any method (KD+SR, CCKD-L+SR, CCKD-T+SR, CE+SR for a self-regulated teacher):
it is a mask, combined (logical and) with the inner method's mask; weights and batch terms pass
through, and the trainer gates a batch term to the same rows (see :mod:`kdutils.methods.base`).
So the loss is the mean over the samples that take part, and participation counts are the
gate's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..core.errors import UnknownNameError
from .base import Batch, Entry, Terms, Wrapper, combine_masks, create_method, register_method

DELTAS = ("margin", "true_prob")


def sr_confidence(logits: torch.Tensor, y: torch.Tensor, delta: str = "margin", tau: float = 1.0) -> torch.Tensor:
    """delta_i of the SR gate from y_S = softmax(z_S / tau) (detached), in [0, 1]."""
    p = F.softmax(logits.detach().float() / tau, dim=1)
    if delta == "margin":
        top2 = p.topk(2, dim=1).values
        return top2[:, 0] - top2[:, 1]
    if delta == "true_prob":
        return p.gather(1, y[:, None]).squeeze(1)
    raise UnknownNameError("SR delta", delta, DELTAS)


def eta_schedule(epoch: int, num_epochs: int, *, alpha: float | None = None, eta_end: float = 0.9) -> float:
    """``eta_n = 1 - exp(-alpha n)``; alpha defaults to reach ``eta_end`` at the last epoch."""
    if alpha is None:
        if not 0.0 < eta_end < 1.0:
            raise ValueError(f"eta_end must be in (0, 1), got {eta_end}")
        alpha = -math.log(1.0 - eta_end) / max(1, num_epochs - 1)
    return 1.0 - math.exp(-alpha * epoch)


def sr_gate(logits: torch.Tensor, y: torch.Tensor, eta: float, delta: str = "margin", tau: float = 1.0) -> torch.Tensor:
    """Boolean (B,): misclassified, or correct with delta < eta (delta read at ``tau``)."""
    wrong = logits.detach().argmax(dim=1) != y
    return wrong | (sr_confidence(logits, y, delta, tau) < eta)


@register_method("sr")
@dataclass
class SelfRegulated(Wrapper):
    """Wrap ``inner`` (a method name or spec) with the SR gate; see the module docstring."""

    leaderboard = (
        Entry("KD+SR", "kd+sr", source="[paper] Mishra and Sundaram 2021 (notebook 01)"),
        Entry("CCKD-L+SR", "cckd_l+sr", source="[paper] Mishra and Sundaram 2021 (notebook 01)"),
        Entry("CCKD-T+SR", "cckd_t+sr", source="[paper] Mishra and Sundaram 2021 (notebook 01)"),
        Entry("regulated", "kd+sr", needs=("sr teacher",), source="[paper] Mishra and Sundaram 2021 (notebook 03)"),
    )

    inner: Any = field(default_factory=lambda: {"name": "kd"})
    delta: str = "margin"
    eta_end: float = 0.9
    alpha: float | None = None
    beta: float | None = None
    delta_tau: float | None = None

    def __post_init__(self) -> None:
        if self.delta not in DELTAS:
            raise UnknownNameError("SR delta", self.delta, DELTAS)
        self.inner = create_method(self.inner)

    def eta(self, epoch: int, num_epochs: int) -> float:
        if self.beta is not None:
            return self.beta
        return eta_schedule(epoch, num_epochs, alpha=self.alpha, eta_end=self.eta_end)

    @property
    def gate_tau(self) -> float:
        """The temperature delta is read at: ``delta_tau``, else the inner method's tau, else 1."""
        if self.delta_tau is not None:
            return float(self.delta_tau)
        return float(getattr(self.inner, "tau", 1.0))

    def __call__(self, b: Batch) -> Terms:
        terms = self.inner(b)
        gate = sr_gate(b.logits, b.y, self.eta(b.epoch, b.num_epochs), self.delta, self.gate_tau)
        return dataclasses.replace(
            terms, mask=combine_masks(terms.mask, gate), parts={**terms.parts, "sr_gate": gate.float()}
        )

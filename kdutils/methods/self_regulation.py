"""Self-regulation (SR): a gate that lets a sample into the backward pass only while it is
misclassified or not yet confidently right.

Mishra and Sundaram, CCKD (arXiv 2107.06993), Algorithm 1 "CCKD-T+Reg" [paper], and the same
authors' self-regulated KD (arXiv 2102.07125). At epoch n (0-based) the threshold is
``eta_n = 1 - exp(-alpha n)``; sample i takes part if the student misclassifies it, or
classifies it correctly with confidence ``delta_i < eta_n``.

* ``delta`` is not defined in the available material [ours]: ``"margin"`` (default) is the gap
  between the student's two largest probabilities, ``"true_prob"`` is p_S[y].
* ``alpha`` [ours]: by default chosen so that eta at the last epoch is ``eta_end`` = 0.9,
  ``alpha = -ln(1 - eta_end) / (epochs - 1)``; pass ``alpha`` to fix it instead.
* ``beta`` [ours]: a fixed threshold instead of the schedule (the fixed-threshold variant).

The gate wraps any method (KD+SR, CCKD-L+SR, CCKD-T+SR, CE+SR for a self-regulated teacher):
it multiplies the inner method's weights by the gate, so the trainer's reduction (mean over the
samples that take part) and participation counts need nothing special.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import UnknownNameError
from .base import Batch, Method, Terms, create_method, register_method

DELTAS = ("margin", "true_prob")


def sr_confidence(logits: torch.Tensor, y: torch.Tensor, delta: str = "margin") -> torch.Tensor:
    """delta_i of the SR gate from the student's logits (detached), in [0, 1]."""
    p = F.softmax(logits.detach().float(), dim=1)
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


def sr_gate(logits: torch.Tensor, y: torch.Tensor, eta: float, delta: str = "margin") -> torch.Tensor:
    """Boolean (B,): misclassified, or correct with delta < eta."""
    wrong = logits.detach().argmax(dim=1) != y
    return wrong | (sr_confidence(logits, y, delta) < eta)


@register_method("sr")
@dataclass
class SelfRegulated(Method):
    """Wrap ``inner`` (a method name or spec) with the SR gate; see the module docstring."""

    inner: Any = field(default_factory=lambda: {"name": "kd"})
    delta: str = "margin"
    eta_end: float = 0.9
    alpha: float | None = None
    beta: float | None = None

    def __post_init__(self) -> None:
        if self.delta not in DELTAS:
            raise UnknownNameError("SR delta", self.delta, DELTAS)
        self.inner = create_method(self.inner)

    @property
    def needs_teacher(self) -> bool:  # type: ignore[override]
        return self.inner.needs_teacher

    def eta(self, epoch: int, num_epochs: int) -> float:
        if self.beta is not None:
            return self.beta
        return eta_schedule(epoch, num_epochs, alpha=self.alpha, eta_end=self.eta_end)

    def __call__(self, b: Batch) -> Terms:
        terms = self.inner(b)
        gate = sr_gate(b.logits, b.y, self.eta(b.epoch, b.num_epochs), self.delta).to(terms.per_sample.dtype)
        w = gate if terms.weight is None else terms.weight * gate
        return Terms(terms.per_sample, weight=w, batch=terms.batch, parts={**terms.parts, "sr_gate": gate})

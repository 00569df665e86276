"""Student alone: cross-entropy with the labels, no teacher."""

from __future__ import annotations

from dataclasses import dataclass

from ..numerics import losses
from .base import Batch, Entry, Method, Terms, register_method


@register_method("ce")
@dataclass
class CrossEntropy(Method):
    """``l_i = CE(y_i, z_S(x_i))``. Also the teacher's own training."""

    leaderboard = (Entry("student alone", "ce", source="no teacher: the reference every method must beat"),)

    needs_teacher = False

    def __call__(self, b: Batch) -> Terms:
        ce = losses.cross_entropy(b.logits, b.y)
        return Terms(per_sample=ce, parts={"ce": ce.detach()})

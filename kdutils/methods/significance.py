"""Significance-based distillation (Mishra and Sundaram, arXiv 2102.07125, 2021).

[paper] A sample's significance s_i is the number of epochs in which it took part in the
self-regulated teacher's training; the student's per-sample distillation losses are weighted by
it. In kdutils s_i is simply the teacher run's participation counts (``Run.participation``).

[ours] Weights ``w_i = s_i / max_j s_j`` (default), or ``s_i / epochs``, or ``sqrt(s_i / max_j s_j)``
(:func:`significance_weights`). Samples with s_i = 0 never take part (the mask is ``w > 0``: they
are the saving); the others take part with importance ``w_i``. ``normalise=True`` (default,
the spec's [ours] choice) makes the batch loss ``sum_i w_i l_i / sum_i w_i`` over the
participating samples (``max`` and ``epochs`` then differ by a constant factor only, which it
cancels: they train identically); ``normalise=False`` uses the trainer's plain mean over the
participating samples of ``w_i l_i``, so the loss scale follows the weights. l_i is the inner
method's loss (default: the KD baseline).

Hybrid distillation [paper] = this method wrapped in the SR gate: ``{"name": "sr", "inner":
{"name": "significance"}}`` or ``"significance+sr"``: weights = significance x gate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.errors import UnknownNameError
from .base import Batch, Entry, Terms, Wrapper, combine_masks, create_method, register_method

WEIGHTINGS = ("max", "epochs", "sqrt")


def significance_weights(
    participation: torch.Tensor, weighting: str = "max", epochs: int | None = None
) -> torch.Tensor:
    """Per-sample weights from significance counts s_i (float32, in [0, 1])."""
    s = participation.to(torch.float32)
    top = float(s.max()) if len(s) else 0.0
    if weighting == "max":
        return s / top if top > 0 else s
    if weighting == "epochs":
        if not epochs:
            raise ValueError("weighting 'epochs' needs the teacher's number of epochs")
        return s / float(epochs)
    if weighting == "sqrt":
        return (s / top).sqrt() if top > 0 else s
    raise UnknownNameError("significance weighting", weighting, WEIGHTINGS)


@register_method("significance")
@dataclass
class SignificanceWeighted(Wrapper):
    """Weight the inner method's per-sample losses by the significance weights of the batch.

    The weights come with the data (``Batch.sample_weight``: pass
    ``sample_weight=significance_weights(teacher.participation)`` to the trainer).
    """

    leaderboard = (
        Entry(
            "significance-based",
            "significance",
            needs=("sr teacher", "significance"),
            source="[paper] Mishra and Sundaram 2021 (notebook 03)",
        ),
        Entry(
            "hybrid",
            "significance+sr",
            needs=("sr teacher", "significance"),
            source="[paper] Mishra and Sundaram 2021 (notebook 03)",
        ),
    )

    inner: Any = field(default_factory=lambda: {"name": "kd"})
    normalise: bool = True

    def __post_init__(self) -> None:
        self.inner = create_method(self.inner)

    def __call__(self, b: Batch) -> Terms:
        if b.sample_weight is None:
            raise ValueError(
                "method 'significance' needs per-sample weights: train with sample_weight=significance_weights(...)"
            )
        terms = self.inner(b)
        w = b.sample_weight.to(terms.per_sample.dtype)
        mask = combine_masks(terms.mask, w > 0)
        if terms.weight is not None:
            w = w * terms.weight
        reduction = "weighted_mean" if self.normalise else terms.reduction
        return dataclasses.replace(
            terms, mask=mask, weight=w, reduction=reduction, parts={**terms.parts, "significance": b.sample_weight}
        )

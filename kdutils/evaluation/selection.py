"""Which training rows a run sees, and with what weight: objects that name themselves.

A run trained on part of the training set, or with per-sample weights, is a different run:
its key must say how the rows or weights were chosen. Each object here carries its own
parameters and gives

* ``identity()``: a small JSON-able dict (its registered ``name`` and parameters, a run key
  where the choice comes from a run) that :meth:`kdutils.Experiment.train` writes into the
  run's configuration (``config["train_rows"]`` / ``config["sample_weight"]``), so the key
  follows the choice and never a free-text description;
* ``rows(n)`` (a :class:`Selection`): the kept rows of an ``n``-row training split, sorted, as
  a LongTensor; or ``weights()`` (a :class:`Weighting`): one float per training row.

::

    sig = exp.teacher(method="ce+sr")                         # its participation = significance
    exp.student("kd", seed=0, teacher=t, selection=kd.DropLeastSignificant(0.3, sig))
    exp.student("kd", seed=0, teacher=t, selection=kd.DropRandom(0.3, seed=0))
    exp.student("significance", seed=0, teacher=sig, weights=kd.SignificanceWeights(sig, "max"))

A new selection (e.g. label revision's data selection) is one new subclass registered with
``@SELECTIONS.register("name")``; :func:`selection_names` lists them.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..core.errors import UnknownNameError
from ..core.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from ..training.store import Run

SELECTIONS: Registry[type] = Registry("training-row selection")
WEIGHTINGS: Registry[type] = Registry("sample weighting")


class _Identified(abc.ABC):
    """What a selection and a weighting share: ``params()`` plus the registered ``name`` form the
    run-key identity."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """The parameters that define the choice (JSON-able; a run stands for its key)."""

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.identity().items())


class Selection(_Identified):
    """Chooses the training rows of a run. Subclasses set ``name`` (via the registry)."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def rows(self, n: int) -> torch.Tensor:
        """The kept rows of an ``n``-row training split: sorted, unique, int64."""

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """The parameters that define the choice (JSON-able; a run stands for its key)."""


class Weighting(_Identified):
    """Per-sample weights of a run's training rows. Subclasses set ``name`` (via the registry)."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def weights(self) -> torch.Tensor:
        """One float weight per row of the whole training split."""

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """The parameters that define the weights (JSON-able; a run stands for its key)."""


def _register(registry: Registry, name: str):
    def deco(cls):
        cls.name = name
        return registry.register(name)(cls)

    return deco


def _check_fraction(fraction: float) -> float:
    f = float(fraction)
    if not (math.isfinite(f) and 0.0 <= f < 1.0):
        raise ValueError(f"fraction must be in [0, 1) (the share of training rows to drop), got {fraction!r}")
    return f


def _keep_after(order: torch.Tensor, fraction: float) -> torch.Tensor:
    """Drop the first ``round(fraction * n)`` rows of ``order``; the rest, sorted."""
    drop = int(round(fraction * len(order)))
    return order[drop:].sort().values.to(torch.long)


def _participation(run: "Run", n: int, what: str) -> torch.Tensor:
    s = run.participation
    if len(s) != n:
        raise ValueError(
            f"{what}: run {run.key} counted participation for {len(s)} training rows, this split has {n} "
            "(a run of another split or training subset)"
        )
    return s


@_register(SELECTIONS, "drop_least_significant")
@dataclass(frozen=True, eq=False)
class DropLeastSignificant(Selection):
    """Drop the ``fraction`` of rows with the smallest significance, ties broken at random.

    Significance s_i = the number of epochs row i took part in ``significance``'s training
    (a self-regulated teacher's run; Mishra and Sundaram, arXiv 2102.07125 [paper]). It is a small
    integer, so most rows tie (on MNIST about four in five at 0): rows of equal significance are
    ordered by a random permutation drawn with ``seed`` (the student's seed [ours]), not by their
    place in the dataset, which would drop the first images of the dataset among the ties.
    """

    fraction: float
    significance: "Run"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fraction", _check_fraction(self.fraction))
        object.__setattr__(self, "seed", int(self.seed))

    def rows(self, n: int) -> torch.Tensor:
        s = _participation(self.significance, n, "drop_least_significant")
        return _keep_after(tie_broken_order(s, self.seed), self.fraction)

    def params(self) -> dict[str, Any]:
        return {
            "fraction": self.fraction,
            "significance_from": self.significance.key,
            "ties": "random",
            "seed": self.seed,
        }


def tie_broken_order(score: torch.Tensor, seed: int, *, descending: bool = False) -> torch.Tensor:
    """The indices of ``score`` sorted (ascending unless ``descending``), equal scores in the order
    of a random permutation drawn with ``seed`` (CPU generator)."""
    perm = torch.randperm(len(score), generator=torch.Generator().manual_seed(int(seed)))
    s = score[perm].to(torch.float64)
    return perm[torch.argsort(-s if descending else s, stable=True)]


def ties(score: torch.Tensor, order: torch.Tensor, k: int) -> tuple[int, int]:
    """``(tied, n)``: of the first ``k`` rows of ``order``, how many share their score with a row
    outside them (the choice among those was the tie-break's), and how many rows have that score."""
    if k <= 0 or k >= len(order):
        return 0, 0
    edge = score[order[k - 1]]
    same = score == edge
    return int(same[order[:k]].sum()), int(same.sum())


@_register(SELECTIONS, "drop_random")
@dataclass(frozen=True)
class DropRandom(Selection):
    """Drop a random ``fraction`` of rows: draw ``seed`` of ``torch.randperm`` (CPU generator)."""

    fraction: float
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fraction", _check_fraction(self.fraction))
        object.__setattr__(self, "seed", int(self.seed))

    def rows(self, n: int) -> torch.Tensor:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        return _keep_after(order, self.fraction)

    def params(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "seed": self.seed}


@_register(SELECTIONS, "keep_random")
@dataclass(frozen=True)
class KeepRandom(Selection):
    """Keep ``rows`` rows drawn at random (``seed`` of ``torch.randperm``, CPU generator), all of
    them when the split has no more: a fixed-size training subset, e.g. notebook 06's interval block
    at ``quick`` (:data:`kdutils.papers.comparison.INTERVAL_ROWS`)."""

    count: int
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            from ..core.errors import ParameterError

            raise ParameterError("count", self.count, "a positive int (the number of training rows kept)")
        object.__setattr__(self, "seed", int(self.seed))

    def rows(self, n: int) -> torch.Tensor:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        return order[: min(self.count, n)].sort().values

    def params(self) -> dict[str, Any]:
        return {"count": self.count, "seed": self.seed}


@_register(WEIGHTINGS, "significance")
@dataclass(frozen=True, eq=False)
class SignificanceWeights(Weighting):
    """Significance weights from a self-regulated teacher's participation counts.

    ``weighting``: ``max`` (s_i / max s), ``epochs`` (s_i / the teacher's epochs) or ``sqrt``
    (sqrt(s_i / max s)) [ours]; see :func:`kdutils.methods.significance.significance_weights`.
    """

    teacher_run: "Run"
    weighting: str = "max"

    def __post_init__(self) -> None:
        from ..methods.significance import WEIGHTINGS as NAMES

        if self.weighting not in NAMES:
            raise UnknownNameError("significance weighting", self.weighting, NAMES)

    def weights(self) -> torch.Tensor:
        from ..methods.significance import significance_weights

        epochs = self.teacher_run.config["recipe"]["epochs"]
        return significance_weights(self.teacher_run.participation, self.weighting, epochs=epochs)

    def params(self) -> dict[str, Any]:
        return {"significance_from": self.teacher_run.key, "weighting": self.weighting}


def extreme_rows(
    score: torch.Tensor, y: torch.Tensor, num_classes: int, per_class: int, *, largest: bool
) -> torch.Tensor:
    """Per class, the ``per_class`` rows with the largest (or smallest) ``score``; ties by index.

    Rows come class by class (class 0 first), e.g. the most / least significant images of each
    class for :func:`kdutils.plots.image_grid`.
    """
    score, y = torch.as_tensor(score), torch.as_tensor(y)
    if score.shape != y.shape:
        raise ValueError(f"score has shape {tuple(score.shape)}, labels {tuple(y.shape)}")
    picked = []
    for c in range(num_classes):
        idx = (y == c).nonzero().flatten()
        s = score[idx].to(torch.float64)
        order = torch.argsort(-s if largest else s, stable=True)
        picked.append(idx[order[:per_class]])
    return torch.cat(picked) if picked else torch.zeros(0, dtype=torch.long)


def selection_names() -> list[str]:
    return SELECTIONS.names()


__all__ = [
    "SELECTIONS",
    "WEIGHTINGS",
    "Selection",
    "Weighting",
    "DropLeastSignificant",
    "DropRandom",
    "SignificanceWeights",
    "extreme_rows",
    "selection_names",
]

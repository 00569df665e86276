"""The method interface: what the one training loop asks of every distillation method.

A method is a small object (a dataclass of its hyper-parameters). Per batch the trainer

1. builds a :class:`Batch` (inputs, labels, row indices, teacher logits, epoch and step, a
   seeded generator for the method's own randomness, the models);
2. asks ``method.forward(batch)`` for the student logits it trains on (default: one
   train-mode forward on the clean batch; an adversarial method computes its points first,
   under :func:`kdutils.runtime.evaluating`, and returns the forward on them, so BatchNorm
   statistics are updated once per step, by the forward that is trained on);
3. calls ``method(batch)`` and gets :class:`Terms`.

**Terms and the reduction.** ``per_sample`` (B,) are the samples' losses; ``mask`` (B,) bool
says who takes part (None: everyone); ``weight`` (B,) >= 0 says how much each counts (None: 1).
The two are separate on purpose: the mask is participation (what data usage, self-regulation's
savings and significance count, per sample index), the weight is importance (it never counts
as participation). The trainer's loss is the **mean over the samples that take part** of the
weighted losses::

    loss = sum_i m_i w_i l_i / max(1, sum_i m_i)  +  batch(m)

so a weighted method's loss scale does not depend on the batch's weight sum (weights of 0.5
halve the loss): ``reduction="mean"``, the default. A method that wants self-normalised
weights sets ``reduction="weighted_mean"``::

    loss = sum_i m_i w_i l_i / sum_i m_i w_i  +  batch(m)

(significance-based distillation, as its spec says). Either way the denominator is taken over
the final mask, after every wrapper.

**Batch-level terms** (a term of the whole batch, such as DIST's intra-class correlation) are
given as a callable ``batch(mask) -> scalar`` that computes the term **over the participating
rows only** (``mask`` is the final (B,) bool mask, after every wrapper). The rule: a batch term
is gated like the per-sample terms, so a row that a gate (SR) or a selection leaves out
contributes nothing, not even through a batch statistic, and every row it uses is counted as
taking part. A step where no row takes part makes no optimizer step and never calls ``batch``.
(A plain tensor is accepted as ``batch`` only when every row takes part; the trainer refuses it
otherwise, since it cannot be gated.)

``parts`` are named diagnostics logged in the history: (B,) parts as means over the samples
seen in the epoch, scalar parts as means over the epoch's steps.

**State and hooks.** ``on_epoch_end(EpochEnd)`` is called after every epoch (reselection,
ramps; it may return numbers for the history row); ``state_dict`` / ``load_state_dict`` hold
any state a method owns, saved in every checkpoint so a resumed run is bit-identical. Wrappers
(``sr``, ``significance``) delegate all of these to the method they wrap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Union

import torch
import torch.nn as nn

from ..core.errors import UnknownNameError
from ..core.keys import key_fields
from ..core.registry import Registry

REDUCTIONS = ("mean", "weighted_mean")
BatchTerm = Union[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


@dataclass
class Batch:
    """Everything a method may look at for one training step."""

    x: torch.Tensor  # (B, C, H, W) in [0, 1], already augmented
    y: torch.Tensor  # (B,) int64
    idx: torch.Tensor  # (B,) rows of the training split (CPU)
    logits: torch.Tensor | None  # (B, classes) the logits ``method.forward`` returned, with grad
    teacher_logits: torch.Tensor | None  # (B, classes) teacher on the clean x, no grad
    epoch: int  # 0-based
    num_epochs: int
    step: int  # global step, 0-based
    student: nn.Module
    teacher: nn.Module | None = None
    sample_weight: torch.Tensor | None = None  # (B,) per-sample weights stored with the data (e.g. significance)
    steps_per_epoch: int = 1
    #: the method's own randomness (PGD random starts, ...): seeded from the run's seed, on the
    #: batch's device, saved in checkpoints; never the global RNG
    generator: torch.Generator | None = None

    @property
    def progress(self) -> float:
        """Training progress in [0, 1) at this step (for epsilon and weight ramps)."""
        return self.step / max(1, self.num_epochs * self.steps_per_epoch)


@dataclass
class Terms:
    per_sample: torch.Tensor  # (B,)
    mask: torch.Tensor | None = None  # (B,) bool: who takes part (None: everyone)
    weight: torch.Tensor | None = None  # (B,) >= 0: importance (None: 1)
    batch: BatchTerm | None = None  # callable(mask) -> scalar over the participating rows
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    reduction: str = "mean"  # "mean": / sum(m); "weighted_mean": / sum(m w)

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise UnknownNameError("Terms reduction", self.reduction, REDUCTIONS)

    def participating(self) -> torch.Tensor:
        """(B,) bool: the final mask (everyone when ``mask`` is None)."""
        if self.mask is None:
            return torch.ones_like(self.per_sample, dtype=torch.bool)
        return self.mask.to(torch.bool)


@dataclass
class EpochEnd:
    """What ``Method.on_epoch_end`` sees after each epoch."""

    epoch: int  # 0-based, the epoch just finished
    num_epochs: int
    participation: torch.Tensor  # (N_train,) int64 counts so far
    record: dict  # the epoch's history row (read-only by convention)
    student: nn.Module


def combine_masks(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """Logical and of two optional masks (None = everyone)."""
    if a is None:
        return b
    if b is None:
        return a
    return a.to(torch.bool) & b.to(torch.bool)


#: training FLOPs per forward FLOP: forward + backward (about 2x the forward)
TRAIN_FACTOR = 3
#: forwards per image of one PGD step inside training, per model the attack runs through: a forward
#: and a backward to the input, counted like a training step [ours: an upper bound; the backward
#: needs the activations' gradients only, not the weights', so about 2 forwards]
ATTACK_STEP = TRAIN_FACTOR
#: forwards per image of one interval pass (:mod:`kdutils.ibp`) [ours, from its layer rules]: every
#: affine layer runs twice, ``W c + b`` on the centre and ``|W| r`` on the radius (the last layer's
#: margin elision, ``(W_c - W_j) c`` and ``|W_c - W_j| r``, is as many products as the two); the
#: monotone layers on both ends, ``|W|`` and the interval arithmetic are elementwise, left out like
#: the forward's normalisation and activations. ``tests/experiments/test_costs.py`` counts it with FlopCounterMode
IBP_PASS = 2


#: the blocks of notebook 06's leaderboard: which teacher-student pair a row trains on
BLOCKS = ("standard", "interval")
#: what a row of the interval block adds to its label in notebook 06 (its own pair's student alone and KD)
INTERVAL_SUFFIX = " | IBP pair"


@dataclass(frozen=True)
class Entry:
    """One row of notebook 06's leaderboard (:mod:`kdutils.papers.comparison`), declared by the method
    file it belongs to (:attr:`Method.leaderboard`).

    ``spec``: the method spec with its paper's defaults, or a function of the dataset's
    :class:`~kdutils.profiles.Settings` returning one (for an attack's epsilon and steps).
    ``block``: ``"standard"`` (the profile's teacher-student pair) or ``"interval"`` (the pair of
    interval-bound networks of notebook 04, for methods that need bounds). ``needs``: what the run
    needs besides the pair's teacher, from :data:`kdutils.papers.comparison.NEEDS` (``"sr teacher"``,
    ``"significance"``, ``"selection"``). ``source``: where its defaults come from."""

    label: str
    spec: Any
    block: str = "standard"
    needs: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise UnknownNameError("leaderboard block", self.block, BLOCKS)

    def method_spec(self, settings: Any) -> Any:
        """The method spec on one dataset's settings."""
        return self.spec(settings) if callable(self.spec) else self.spec


class Method:
    """Base of every method. Subclasses are dataclasses registered in :data:`METHODS`."""

    name: ClassVar[str] = "method"
    needs_teacher: ClassVar[bool] = True
    #: notebook 06's rows for this method (:class:`Entry`, each with its paper's defaults); None: one
    #: row named after the method, with its defaults. A new method file appears in 06 with no other change.
    leaderboard: ClassVar[tuple[Entry, ...] | None] = None
    #: why notebook 06 leaves this method out (non-empty: not comparable, with the reason)
    not_comparable: ClassVar[str] = ""

    def forward(self, b: Batch) -> torch.Tensor:
        """The student logits this method trains on (one train-mode forward on ``b.x``)."""
        return b.student(b.x)

    def __call__(self, b: Batch) -> Terms:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_epoch_end(self, end: EpochEnd) -> dict[str, float] | None:
        """Called after every epoch; may return numbers for the history row."""
        return None

    def modules(self) -> dict[str, nn.Module]:
        """Modules the method owns and trains with the student (a projector, a learnt temperature):
        ``name -> nn.Module``. The trainer moves them to the run's device, adds their parameters to
        the student's optimizer and keeps their weights in its checkpoints; the stored run keeps the
        student only. Build them in ``__post_init__`` from a seeded generator, so a run repeats its
        numbers. None by default."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """State the method owns beyond its hyper-parameters (saved in checkpoints)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"method {self.name!r} owns no state, got {sorted(state)}")

    def passes(self) -> tuple[float, float]:
        """What one step of this method costs besides the trained forward and backward and the
        teacher's clean logits: ``(student, teacher)`` forwards per training image, in forwards of
        each model (an attack step is :data:`ATTACK_STEP`, an interval pass :data:`IBP_PASS`, a
        second trained forward :data:`TRAIN_FACTOR`). :mod:`kdutils.costs` plans every run with it.
        0 for a method without attacks or bounds."""
        return 0.0, 0.0

    def params(self) -> dict[str, Any]:
        """The method's hyper-parameters (part of the run's identity): every field, except one
        declared with :func:`kdutils.keys.added` while at its default (a parameter added later
        keeps stored runs' keys)."""
        return {"name": self.name, **key_fields(self)}


class Wrapper(Method):
    """A method around another one (``inner``): it delegates the forward, the hooks and the
    state, and combines its own mask / weight with the inner method's."""

    inner: Any

    @property
    def needs_teacher(self) -> bool:  # type: ignore[override]
        return self.inner.needs_teacher

    def forward(self, b: Batch) -> torch.Tensor:
        return self.inner.forward(b)

    def passes(self) -> tuple[float, float]:
        return self.inner.passes()  # a wrapper costs what its inner method does

    def on_epoch_end(self, end: EpochEnd) -> dict[str, float] | None:
        return self.inner.on_epoch_end(end)

    def modules(self) -> dict[str, nn.Module]:
        return self.inner.modules()

    def state_dict(self) -> dict[str, Any]:
        inner = self.inner.state_dict()
        return {"inner": inner} if inner else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state.get("inner", {}))


def distils(method: Method, teacher: object | None) -> bool:
    """The one decision "does this run use a teacher": the method needs one and one is given.

    A method that needs a teacher without one raises here, for ``fit`` and ``Experiment`` alike.
    """
    if method.needs_teacher and teacher is None:
        raise ValueError(f"method {method.name!r} needs a teacher: pass teacher=... (e.g. exp.teacher())")
    return teacher is not None and method.needs_teacher


METHODS: Registry[type[Method]] = Registry("method")


def register_method(name: str):
    """Class decorator: register a method dataclass under ``name`` (sets ``cls.name``)."""

    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        return METHODS.register(name)(cls)

    return deco


def create_method(spec: str | dict | Method, **params) -> Method:
    """``create_method("kd", tau=2)`` or ``create_method({"name": "kd", "tau": 2})``.

    A wrapper can be written as a suffix: ``"kd+sr"`` is ``{"name": "sr", "inner": {"name": "kd"}}``
    (the inner method's parameters go in ``inner``). An unknown method or parameter raises an
    error that names the valid choices.
    """
    if isinstance(spec, Method):
        return spec
    if isinstance(spec, str) and "+" in spec:
        inner, _, wrapper = spec.rpartition("+")
        return create_method({"name": wrapper, "inner": inner}, **params)
    if isinstance(spec, dict):
        params = {**{k: v for k, v in spec.items() if k != "name"}, **params}
        spec = spec.get("name")  # type: ignore[assignment]
    cls = METHODS.get(spec)  # type: ignore[arg-type]
    valid = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for k in params:
        if k not in valid:
            raise UnknownNameError(f"parameter of method {spec!r}", k, valid or ["(none)"])
    return cls(**params)


def method_names() -> list[str]:
    return METHODS.names()


def leaderboard_rows() -> list[Entry]:
    """Every row notebook 06's leaderboard can have, in the registry's order: each registered method's
    declared rows (:attr:`Method.leaderboard`), or one row named after it with its defaults; methods
    that declare themselves not comparable are left out. Notebook 06 checks and orders them
    (:func:`kdutils.papers.comparison.entries`); the figures of every notebook colour by them."""
    rows: list[Entry] = []
    for name in METHODS.names():
        cls = METHODS.get(name)
        if cls.not_comparable:
            continue
        rows += list(cls.leaderboard) if cls.leaderboard is not None else [Entry(name, name, source=f"{name} defaults")]
    return rows

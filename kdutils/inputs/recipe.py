"""How to train: :class:`Recipe` (optimizer, schedule, epochs, batch size, augmentation) and the
optimizer / schedule registries it names.

Its own module, below both the training loop (:mod:`kdutils.train`) and the profiles
(:mod:`kdutils.profiles`), which size recipes without importing the loop. A recipe is part of
every run's identity (``Recipe.to_dict`` goes into the run key).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import torch

from ..core.errors import UnknownNameError
from ..core.keys import added, key_fields
from ..core.registry import Registry

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")
SCHEDULES: Registry[Callable[..., Any]] = Registry("schedule")


@dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, schedule, epochs, batch size, augmentation."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"  # see OPTIMIZERS: adam, sgd
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # see SCHEDULES: cosine, step, constant
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    augment: bool = False
    crop_padding: int = 4
    flip: bool = True
    drop_last: bool = False
    #: at most this many batches per epoch (None: every batch); the dry run's cut
    #: (:func:`kdutils.configure` ``dry_run=True``). Epochs, schedule and milestones are unchanged by it.
    max_steps_per_epoch: int | None = added(None)

    def __post_init__(self) -> None:
        OPTIMIZERS.get(self.optimizer)
        SCHEDULES.get(self.schedule)
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {self.epochs}, {self.batch_size}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ValueError(f"max_steps_per_epoch must be None or >= 1, got {self.max_steps_per_epoch}")
        object.__setattr__(self, "milestones", tuple(self.milestones))

    @property
    def teacher_per_batch(self) -> bool:
        """The one decision "the teacher runs on every batch": augmented batches differ every
        epoch, so a teacher's logits can be computed once over the training set only without
        augmentation (then ``Experiment`` caches them per teacher and ``fit`` reuses them)."""
        return self.augment

    def replace(self, **changes) -> "Recipe":
        valid = [f.name for f in fields(self)]
        for k in changes:
            if k not in valid:
                raise UnknownNameError("recipe parameter", k, valid)
        return Recipe(**{**asdict(self), **changes})

    def to_dict(self) -> dict:
        """The recipe as it enters a run key (:func:`kdutils.keys.key_fields`: a field added later
        is absent at its default)."""
        d = key_fields(self)
        d["milestones"] = list(self.milestones)
        return d


@OPTIMIZERS.register("adam")
def _adam(params, r: Recipe) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=r.lr, weight_decay=r.weight_decay)


@OPTIMIZERS.register("sgd")
def _sgd(params, r: Recipe) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay, nesterov=False)


@SCHEDULES.register("cosine")
def _cosine(opt, r: Recipe):
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=r.epochs)


@SCHEDULES.register("step")
def _step(opt, r: Recipe):
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(r.milestones), gamma=r.gamma)


@SCHEDULES.register("constant")
def _constant(opt, r: Recipe):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)

"""The method interface: what the one training loop asks of every distillation method.

A method is a small object (a dataclass of its hyper-parameters) called once per batch
with a :class:`Batch` and returning :class:`Terms`:

* ``per_sample`` (B,): the loss of each sample;
* ``weight`` (B,) >= 0 or None: how much each sample counts; a sample with weight 0
  does not take part in this step (the trainer counts participation per sample index
  from ``weight > 0``);
* ``batch``: a scalar added once per batch (e.g. DIST's intra-class term), or None;
* ``parts``: named (B,) components, logged as means in the history.

The trainer reduces ``sum(w * l) / sum(w) + batch``; a batch where no sample takes part
and there is no batch term makes no optimizer step. Methods that need extra forward
passes (adversarial points, bounds) call ``batch.student`` / ``batch.teacher``
themselves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn as nn

from ..errors import UnknownNameError
from ..registry import Registry


@dataclass
class Batch:
    """Everything a method may look at for one training step."""

    x: torch.Tensor  # (B, C, H, W) in [0, 1], already augmented
    y: torch.Tensor  # (B,) int64
    idx: torch.Tensor  # (B,) rows of the training split (CPU)
    logits: torch.Tensor  # (B, classes) student logits on x, with grad
    teacher_logits: torch.Tensor | None  # (B, classes), no grad
    epoch: int  # 0-based
    num_epochs: int
    step: int  # global step, 0-based
    student: nn.Module
    teacher: nn.Module | None = None
    sample_weight: torch.Tensor | None = None  # (B,) per-sample weights stored with the data (e.g. significance)


@dataclass
class Terms:
    per_sample: torch.Tensor
    weight: torch.Tensor | None = None
    batch: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


class Method:
    """Base of every method. Subclasses are dataclasses registered in :data:`METHODS`."""

    name: ClassVar[str] = "method"
    needs_teacher: ClassVar[bool] = True

    def __call__(self, b: Batch) -> Terms:  # pragma: no cover - abstract
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The method's hyper-parameters (part of the run's identity)."""
        out = {"name": self.name}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = v.params() if isinstance(v, Method) else v
        return out


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

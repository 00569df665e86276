"""DS: data selection (Lan, Cheung, et al., arXiv 2404.03693; spec ``docs/papers/label_revision.md``).

[public summary only] A score picks the training rows supervised by the teacher; the others are
supervised by the labels alone, and the teacher is never run on them. Estimator, ratio and
direction are unknown; every choice here is [ours]:

* **scorers**, registered by name in :data:`SCORERS` (higher = keep), each computed with the
  teacher once, before student training:

  - ``"influence"``: a TracIn-style proxy, the dot product of a row's gradient of the teacher's
    cross-entropy with respect to its last linear layer (weights and bias) with the mean of the
    same gradient over the **validation** split (never the test split)
    (:func:`influence_scores`); a positive score means a gradient step on the row lowers the
    validation loss;
  - ``"confidence"``: the teacher's probability on the true class, p_T[y];
  - ``"correct"``: 1 where the teacher's top class is the label, else 0.

* the **keep ratio** ``keep`` in (0, 1] (default 0.7; the spec sweeps 0.5, 0.7, 0.9): the
  ``round(keep * N)`` rows with the highest scores are supervised by the teacher; ties are
  broken by a permutation seeded with ``seed`` (:func:`keep_mask`).

A :class:`DataSelection` names its scorer, ratio, seed and the teacher run that scored (by key):
its ``identity()`` enters the run key as ``config["teacher_rows"]``. Pass it to
:meth:`kdutils.Experiment.student` (or ``NotebookContext.student``) as ``teacher_rows=``::

    t = exp.teacher()
    ds = kd.DataSelection(t, "influence", keep=0.7)
    run = exp.student("kd+lr", seed=0, teacher=t, teacher_rows=ds)   # KD+LR+DS: LR inside the subset
    run.teacher_forwards                                              # per training row, this run

The trainer (:func:`kdutils.fit`, ``teacher_rows=``) runs the method on the selected rows of each
batch (its distillation terms, LR included) and plain cross-entropy on the others; it forwards
the teacher on the selected rows only and counts, per training row, the teacher forwards the run
made or read: one per row whose precomputed logits it reads (a recipe without augmentation),
one per row and epoch when the teacher runs on every batch. ``Run.teacher_forwards`` holds the
counts, ``record["teacher_forwards"]`` their sum and every history row the epoch's. The scorers
themselves need one teacher pass over the training rows (and the validation rows for
``influence``); it is made once per teacher and scorer, cached with the teacher's run, and not
counted in the students' runs.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.registry import Registry
from ..numerics.metrics import predict_logits

if TYPE_CHECKING:  # pragma: no cover
    from ..inputs.data import Split
    from ..training.store import Run, RunData

#: name -> scorer(ScoreInputs) -> (N_train,) float scores, higher = supervised by the teacher
SCORERS: Registry[Callable[["ScoreInputs"], torch.Tensor]] = Registry("data-selection scorer")
#: name -> class of the objects passed as ``teacher_rows=``
TEACHER_ROWS: Registry[type] = Registry("teacher-row selection")


@dataclass
class ScoreInputs:
    """What a scorer may read: the teacher (eval mode), the split, the device, and the teacher's
    logits on the training rows (``train_logits()``, cached by the experiment)."""

    teacher: nn.Module
    split: "Split"
    device: torch.device
    train_logits: Callable[[], torch.Tensor]


def register_scorer(name: str):
    """Decorator: register ``fn(ScoreInputs) -> (N_train,) scores`` under ``name``."""
    return SCORERS.register(name)


def scorer_names() -> list[str]:
    return SCORERS.names()


# ---------------------------------------------------------------- the scorers
def last_layer_inputs(model: nn.Module, x: torch.Tensor, device: torch.device | str | None = None):
    """``(logits, features)`` of ``model`` on ``x`` (eval mode, no grad, CPU float32): ``features``
    are the inputs of its last :class:`torch.nn.Linear`, the layer that produces the logits."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer: the influence scorer needs a linear head")
    feats: list[torch.Tensor] = []
    hook = linears[-1].register_forward_hook(lambda mod, inp, out: feats.append(inp[0].detach().float().cpu()))
    try:
        z = predict_logits(model, x, device=device)
    finally:
        hook.remove()
    h = torch.cat(feats) if feats else torch.zeros(0, linears[-1].in_features)
    if h.shape[0] != z.shape[0] or linears[-1].out_features != z.shape[1]:
        raise ValueError(f"{type(model).__name__}: its last nn.Linear does not produce the logits")
    return z, h


def influence_scores(
    h_train: torch.Tensor,
    z_train: torch.Tensor,
    y_train: torch.Tensor,
    h_val: torch.Tensor,
    z_val: torch.Tensor,
    y_val: torch.Tensor,
) -> torch.Tensor:
    """TracIn-style influence proxy [ours, spec]: ``s_i = <g_i, mean_j g_j^val>``, where ``g`` is
    the gradient of ``CE(W h + b, y)`` with respect to the last layer's ``(W, b)``.

    For a linear layer ``g = e (h, 1)^T`` with ``e = softmax(z) - onehot(y)``, so the dot product
    factorises: ``s_i = e_i^T G (h_i, 1)`` with ``G = mean_j e_j (h_j, 1)^T``; no per-sample
    gradient is stored. (Pruthi et al., "Estimating Training Data Influence by Tracing Gradient
    Descent", NeurIPS 2020, restricted to the last layer and one checkpoint.)
    """
    if len(y_val) == 0:
        raise ValueError("the influence scorer needs validation rows (val_fraction > 0)")

    def err(z, y):
        return F.softmax(z.double(), dim=1) - F.one_hot(y, z.shape[1]).double()

    def aug(h):
        return torch.cat([h.double(), torch.ones(len(h), 1, dtype=torch.float64)], dim=1)

    g_val = err(z_val, y_val).T @ aug(h_val) / len(y_val)  # (C, D + 1)
    return ((err(z_train, y_train) @ g_val) * aug(h_train)).sum(dim=1).float()


@register_scorer("influence")
def _influence(inp: ScoreInputs) -> torch.Tensor:
    sp = inp.split
    z_tr, h_tr = last_layer_inputs(inp.teacher, sp.train_x, inp.device)
    z_va, h_va = last_layer_inputs(inp.teacher, sp.val_x, inp.device)
    return influence_scores(h_tr, z_tr, sp.train_y, h_va, z_va, sp.val_y)


@register_scorer("confidence")
def _confidence(inp: ScoreInputs) -> torch.Tensor:
    return F.softmax(inp.train_logits().float(), dim=1).gather(1, inp.split.train_y[:, None]).squeeze(1)


@register_scorer("correct")
def _correct(inp: ScoreInputs) -> torch.Tensor:
    return (inp.train_logits().argmax(dim=1) == inp.split.train_y).float()


# ---------------------------------------------------------------- the selection
def check_keep(keep: float) -> float:
    k = float(keep) if isinstance(keep, (int, float)) and not isinstance(keep, bool) else math.nan
    if not (math.isfinite(k) and 0.0 < k <= 1.0):
        raise ValueError(f"keep must be in (0, 1] (the share of training rows supervised by the teacher), got {keep!r}")
    return k


def keep_mask(scores: torch.Tensor, keep: float, seed: int = 0) -> torch.Tensor:
    """(N,) bool: the ``max(1, round(keep * N))`` rows with the highest scores; ties broken by a
    ``torch.randperm`` seeded with ``seed`` (so equal scores, e.g. ``correct``, are not kept by index)."""
    keep = check_keep(keep)
    n = len(scores)
    k = min(n, max(1, int(round(keep * n))))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    order = perm[torch.argsort(-scores[perm].to(torch.float64), stable=True)]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[:k]] = True
    return mask


def drop_order(n: int, seed: int = 0) -> torch.Tensor:
    """The rows in the order :func:`keep_mask` breaks ties of equal scores when it drops rows: among
    equal scores, a row later in its seeded permutation is dropped first (for figures of the rows a
    selection drops first)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).flip(0)


class TeacherRows(abc.ABC):
    """Which training rows the teacher supervises (``teacher_rows=``); the rest learn from labels."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """The parameters that define the choice (JSON-able; a run stands for its key)."""

    @abc.abstractmethod
    def mask(self, exp: "RunData") -> torch.Tensor:
        """(N_train,) bool over ``exp``'s whole training split: True = supervised by the teacher."""

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.identity().items())


@TEACHER_ROWS.register("data_selection")
@dataclass(frozen=True, eq=False)
class DataSelection(TeacherRows):
    """DS [ours, spec]: the ``keep`` share of training rows with the highest ``scorer`` scores,
    scored with ``teacher_run``'s model, is supervised by the teacher (module docstring)."""

    teacher_run: "Run"
    scorer: str = "influence"
    keep: float = 0.7
    seed: int = 0

    name: ClassVar[str] = "data_selection"

    def __post_init__(self) -> None:
        SCORERS.get(self.scorer)  # an unknown scorer names the valid ones
        object.__setattr__(self, "keep", check_keep(self.keep))
        object.__setattr__(self, "seed", int(self.seed))

    def params(self) -> dict[str, Any]:
        return {"scorer": self.scorer, "keep": self.keep, "seed": self.seed, "scored_by": self.teacher_run.key}

    def scores(self, exp: "RunData") -> torch.Tensor:
        """(N_train,) the scorer's scores on ``exp``'s training split (cached with the teacher run)."""
        return exp.selection_scores(self.teacher_run, self.scorer)

    def mask(self, exp: "RunData") -> torch.Tensor:
        return keep_mask(self.scores(exp), self.keep, self.seed)


def teacher_rows_names() -> list[str]:
    return TEACHER_ROWS.names()


__all__ = [
    "SCORERS",
    "TEACHER_ROWS",
    "ScoreInputs",
    "register_scorer",
    "scorer_names",
    "last_layer_inputs",
    "influence_scores",
    "check_keep",
    "keep_mask",
    "TeacherRows",
    "DataSelection",
    "teacher_rows_names",
]

"""L-inf attacks in pure PyTorch for training and for faithfulness measurements: FGSM and PGD.

foolbox stays the independent evaluator of the robustness suite (:mod:`kdutils.metrics`); these
attacks are the ones a method runs inside its loss (adversarial training, ARD, RSLAD, faithful
distillation's PGD variant) and the ones that need an objective foolbox does not have (push the
student away from the teacher's class, maximise the teacher-student confidence gap, maximise a
KL divergence to fixed soft labels as RSLAD does).

**The ball.** ``B(x) = {x' : ||x' - x||_inf <= eps} ∩ [0, 1]^d`` (faithful.md [ours]); images
are in [0, 1] (every model normalises inside), so ``eps`` is in pixel units.

**PGD** (Madry et al. 2018) maximises a per-sample objective ``f(x') -> (B,)``::

    x_0     = clip(x + U(-eps, eps))            (random start; x itself without one)
    x_{k+1} = clip(proj_eps(x_k + a * sign(grad f(x_k))))

with ``clip`` onto [0, 1] and ``proj_eps`` onto the eps-ball around x; the step ``a``
defaults to ``2.5 * eps / steps`` (total step length 2.5 eps, as in Madry et al. and in the
robustness evaluation). **FGSM** (Goodfellow et al. 2015) is one step of size ``eps`` from x.

Every attack

* is batched: the objective is summed over the batch for the gradient, which gives every
  sample its own gradient (samples do not interact in eval mode);
* draws its random start from the ``generator`` given (never the global RNG), so a seeded
  generator reproduces the points bit for bit on the CPU;
* puts every model of the objective in eval mode for its forwards (BatchNorm statistics and
  dropout untouched, :func:`kdutils.runtime.evaluating`) and restores each module's mode;
* takes gradients with respect to the input only (parameters' ``.grad`` are never touched),
  works under ``torch.no_grad`` too, and returns detached points: usable inside a loss.

**Objectives** (:class:`Objective`: a callable ``x -> (B,)`` with the models it runs, so the
attack can put them in eval mode): :class:`CrossEntropy` (the default: CE of a model on
labels; with the teacher's class as labels it pushes the student away from it),
:class:`Margin` (``max_{j != c} z_j - z_c``, positive exactly where the model leaves class c),
:class:`ConfidenceGap` (``sign * (p_T[c] - p_S[c])``: sign +1 is faithful.md's Delta+, the
student under-confident; -1 is Delta-), :class:`KLDivergence` (``KL(softmax(z_ref / tau) ||
softmax(model(x) / tau))`` to fixed reference logits: RSLAD's inner maximisation). A plain
callable works as well (the caller then handles modes).

**Start.** ``random_start=True`` draws ``x_0`` uniformly in the ball (Madry et al.); ``start``
gives an explicit first point instead (projected onto the ball and clipped), e.g. RSLAD's
``x + 0.001 * N(0, 1)``.

**Keeping iterates.** ``keep="last"`` returns the final iterate (standard PGD);
``keep="best"`` returns, per sample, the iterate with the highest objective among all
iterates (the start and the final point included). ``track(x) -> (B,) bool`` is evaluated
at every iterate (e.g. :class:`Disagreement`: does T's class differ from S's?);
:func:`pgd_result` reports per sample whether any iterate satisfied it, and the first one that
did (faithful.md: "checking every iterate").
"""

from __future__ import annotations

from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, runtime_checkable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..core.errors import UnknownNameError
from ..inputs.runtime import evaluating

__all__ = [
    "Objective",
    "CrossEntropy",
    "Margin",
    "ConfidenceGap",
    "KLDivergence",
    "Disagreement",
    "AttackResult",
    "fgsm",
    "pgd",
    "pgd_result",
    "pgd_accuracy",
    "project",
    "KEEP",
]

KEEP = ("last", "best")


@runtime_checkable
class Objective(Protocol):
    """A per-sample objective to maximise: ``objective(x) -> (B,)``, and the models it runs."""

    models: tuple[nn.Module, ...]

    def __call__(self, x: Tensor) -> Tensor: ...


@dataclass
class CrossEntropy:
    """``CE(model(x), y)`` per sample: the standard untargeted attack.

    With ``y`` = the teacher's class on the clean input it is faithful.md's "push the student
    away from the teacher's class" [ours].
    """

    model: nn.Module
    y: Tensor  # (B,) int64

    @property
    def models(self) -> tuple[nn.Module, ...]:
        return (self.model,)

    def __call__(self, x: Tensor) -> Tensor:
        return F.cross_entropy(self.model(x), self.y, reduction="none")


@dataclass
class Margin:
    """``max_{j != c} z_j(x) - z_c(x)`` per sample (Carlini-Wagner's margin, no clamp): positive
    exactly where ``model`` no longer predicts ``c`` (ties aside)."""

    model: nn.Module
    c: Tensor  # (B,) int64

    @property
    def models(self) -> tuple[nn.Module, ...]:
        return (self.model,)

    def __call__(self, x: Tensor) -> Tensor:
        z = self.model(x)
        zc = z.gather(1, self.c[:, None]).squeeze(1)
        others = z.masked_fill(F.one_hot(self.c, z.shape[1]).bool(), float("-inf"))
        return others.amax(1) - zc


@dataclass
class ConfidenceGap:
    """``sign * (p_T[c](x) - p_S[c](x))`` per sample (faithful.md [ours]: Delta+ for sign = +1,
    the student under-confident on class c; Delta- for sign = -1). Gradients flow through
    both networks."""

    teacher: nn.Module
    student: nn.Module
    c: Tensor  # (B,) int64, the class whose confidence is compared (the true class)
    sign: int = 1

    def __post_init__(self) -> None:
        if self.sign not in (1, -1):
            raise ValueError(f"ConfidenceGap sign must be +1 or -1, got {self.sign}")

    @property
    def models(self) -> tuple[nn.Module, ...]:
        return (self.teacher, self.student)

    def __call__(self, x: Tensor) -> Tensor:
        pt = self.teacher(x).softmax(1).gather(1, self.c[:, None]).squeeze(1)
        ps = self.student(x).softmax(1).gather(1, self.c[:, None]).squeeze(1)
        return self.sign * (pt - ps)


@dataclass
class KLDivergence:
    """``KL(softmax(z_ref / tau) || softmax(model(x) / tau))`` per sample, ``z_ref`` fixed logits
    (no gradient): RSLAD's inner maximisation with the teacher's clean logits as ``z_ref`` at
    tau = 1 (Zi et al. 2021, ``rslad_loss.py`` [public]: ``KLDivLoss(log_softmax(S(x_adv)),
    softmax(T(x)))`` summed)."""

    model: nn.Module
    z_ref: Tensor  # (B, classes)
    tau: float = 1.0

    @property
    def models(self) -> tuple[nn.Module, ...]:
        return (self.model,)

    def __call__(self, x: Tensor) -> Tensor:
        log_p = F.log_softmax(self.z_ref.detach() / self.tau, dim=1)
        log_q = F.log_softmax(self.model(x) / self.tau, dim=1)
        return (log_p.exp() * (log_p - log_q)).sum(1)


@dataclass
class Disagreement:
    """``argmax T(x) != argmax S(x)`` per sample: a ``track`` criterion for local disagreement."""

    teacher: nn.Module
    student: nn.Module

    @property
    def models(self) -> tuple[nn.Module, ...]:
        return (self.teacher, self.student)

    def __call__(self, x: Tensor) -> Tensor:
        return self.teacher(x).argmax(1) != self.student(x).argmax(1)


@dataclass
class AttackResult:
    """What :func:`pgd_result` returns (all tensors detached)."""

    x: Tensor  # (B, ...) the returned points (last or best iterate)
    value: Tensor | None  # (B,) the objective at ``x``
    hit: Tensor | None = None  # (B,) bool: ``track`` held at some iterate (None without track)
    hit_x: Tensor | None = None  # (B, ...) the first iterate where it held (x where it never did)


def project(x_adv: Tensor, x: Tensor, eps: float | Tensor, clip: tuple[float, float] | None = (0.0, 1.0)) -> Tensor:
    """``x_adv`` projected onto the l_inf ball of radius ``eps`` around ``x``, then onto ``clip``.

    ``eps`` may be a float or a tensor broadcastable to ``x`` (per-sample budgets).
    """
    out = torch.max(torch.min(x_adv, x + eps), x - eps)
    return out.clamp(*clip) if clip is not None else out


def _models(objective: Callable) -> Sequence[nn.Module]:
    return tuple(getattr(objective, "models", ()) or ())


def _as_objective(target: nn.Module | Callable, y: Tensor | None) -> Callable[[Tensor], Tensor]:
    if isinstance(target, nn.Module):
        if y is None:
            raise ValueError("an attack on a model needs labels y (or pass an objective such as ConfidenceGap)")
        return CrossEntropy(target, y)
    if y is not None:
        raise ValueError("y is used only when attacking a model; an objective carries its own classes")
    if not callable(target):
        raise TypeError(f"attack target must be a model or an objective callable, got {type(target).__name__}")
    return target


def pgd_result(
    target: nn.Module | Callable[[Tensor], Tensor],
    x: Tensor,
    eps: float | Tensor,
    y: Tensor | None = None,
    *,
    steps: int = 10,
    step_size: float | Tensor | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    keep: str = "last",
    track: Callable[[Tensor], Tensor] | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
    start: Tensor | None = None,
) -> AttackResult:
    """PGD (see the module docstring) returning an :class:`AttackResult`.

    ``target`` is a model (then the objective is CE on ``y``) or an :class:`Objective`.
    ``x`` is ``(B, ...)`` in ``clip``; ``eps >= 0``. ``steps = 0`` returns the start point.
    ``start`` (same shape as ``x``) replaces the random start.
    """
    return _pgd(
        target,
        x,
        eps,
        y,
        steps=steps,
        step_size=step_size,
        random_start=random_start,
        generator=generator,
        keep=keep,
        track=track,
        clip=clip,
        final_value=True,
        start=start,
    )


def _pgd(target, x, eps, y, *, steps, step_size, random_start, generator, keep, track, clip, final_value, start=None):
    if keep not in KEEP:
        raise UnknownNameError("PGD keep", keep, KEEP)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if isinstance(eps, (int, float)) and eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    objective = _as_objective(target, y)
    a = step_size if step_size is not None else 2.5 * eps / max(1, steps)
    x = x.detach()
    with ExitStack() as stack, torch.enable_grad():
        for m in {id(m): m for m in (*_models(objective), *_models(track))}.values():
            stack.enter_context(evaluating(m))
        if start is not None:
            if start.shape != x.shape:
                raise ValueError(f"start has shape {tuple(start.shape)}, x {tuple(x.shape)}")
            x_adv = project(start.detach().to(x.dtype), x, eps, clip)
        elif random_start:
            u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x_adv = project(x + (2 * u - 1) * eps, x, eps, clip)
        else:
            x_adv = x.clone()
        best_x = best_v = hit = hit_x = None
        value = None
        for k in range(steps + 1):
            last = k == steps
            if last and not (final_value or track is not None or keep == "best"):
                break  # plain PGD for training: no forward at the final point
            x_adv.requires_grad_(not last)
            with torch.no_grad() if last else nullcontext():
                value = objective(x_adv)
            if value.shape != x.shape[:1]:
                raise ValueError(
                    f"the objective must return one value per sample {tuple(x.shape[:1])}, got {tuple(value.shape)}"
                )
            grad = None if last else torch.autograd.grad(value.sum(), x_adv)[0]
            x_adv, value = x_adv.detach(), value.detach()
            if track is not None:
                with torch.no_grad():
                    now = track(x_adv).bool()
                if hit is None:
                    hit, hit_x = torch.zeros_like(now), x.clone()
                new = now & ~hit
                hit_x[new] = x_adv[new]
                hit |= now
            if keep == "best":
                if best_v is None:
                    best_x, best_v = x_adv.clone(), value.clone()
                else:
                    better = value > best_v
                    best_x[better], best_v[better] = x_adv[better], value[better]
            if not last:
                x_adv = project(x_adv + a * grad.sign(), x, eps, clip)
        if keep == "best":
            x_adv, value = best_x, best_v
    return AttackResult(x_adv, value, hit, hit_x)


def pgd(
    target: nn.Module | Callable[[Tensor], Tensor],
    x: Tensor,
    eps: float | Tensor,
    y: Tensor | None = None,
    *,
    steps: int = 10,
    step_size: float | Tensor | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    keep: str = "last",
    track: Callable[[Tensor], Tensor] | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
    start: Tensor | None = None,
) -> Tensor:
    """PGD's points (detached): :func:`pgd_result` (same arguments) ``.x``, without the forward
    at the final point that only the objective value needs (unless ``keep`` or ``track`` need it)."""
    return _pgd(
        target,
        x,
        eps,
        y,
        steps=steps,
        step_size=step_size,
        random_start=random_start,
        generator=generator,
        keep=keep,
        track=track,
        clip=clip,
        final_value=False,
        start=start,
    ).x


def fgsm(
    target: nn.Module | Callable[[Tensor], Tensor],
    x: Tensor,
    eps: float | Tensor,
    y: Tensor | None = None,
    *,
    clip: tuple[float, float] | None = (0.0, 1.0),
) -> Tensor:
    """FGSM: one signed-gradient step of size ``eps`` from ``x`` (no random start), clipped."""
    return pgd(target, x, eps, y, steps=1, step_size=eps, random_start=False, clip=clip)


def _unit(x: Tensor, dev: torch.device, dtype: torch.dtype) -> Tensor:
    x = x.to(dev)
    return x.to(dtype).div_(255.0) if x.dtype == torch.uint8 else x.to(dtype)


def pgd_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    epsilons: Sequence[float],
    *,
    steps: int = 10,
    rel_stepsize: float | None = None,
    batch_size: int = 256,
    seed: int = 0,
) -> list[float]:
    """Robust top-1 accuracy under this module's PGD (CE on ``y``) at each epsilon.

    A sample counts as robust when the model is right on the clean input and at the PGD point
    (so ``eps = 0`` gives the clean accuracy, as foolbox's success does). ``x`` is uint8
    (scaled by 1/255) or float in [0, 1]; runs on the device of the model's first parameter, in
    batches; the step is ``rel_stepsize * eps`` (default ``2.5 / steps``); the random start of
    each epsilon is drawn from a generator seeded with ``seed`` (on that device).
    """
    if x.shape[0] == 0:
        raise ValueError("x is empty (N = 0)")
    p = next(model.parameters(), None)
    dev, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    rel = rel_stepsize if rel_stepsize is not None else 2.5 / max(1, steps)
    out = []
    with evaluating(model):
        for eps in epsilons:
            g = torch.Generator(device=dev).manual_seed(seed)
            right = 0
            for s in range(0, x.shape[0], batch_size):
                xb, yb = _unit(x[s : s + batch_size], dev, dtype), y[s : s + batch_size].to(dev)
                x_adv = pgd(model, xb, float(eps), yb, steps=steps, step_size=rel * float(eps), generator=g)
                with torch.no_grad():
                    ok = (model(xb).argmax(1) == yb) & (model(x_adv).argmax(1) == yb)
                right += int(ok.sum())
            out.append(right / x.shape[0])
    return out

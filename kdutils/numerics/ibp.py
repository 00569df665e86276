"""Interval bound propagation (IBP) through the layers of this project's models.

Gowal et al. 2018 ("On the effectiveness of interval bound propagation for training verifiably
robust models") [public]: an interval ``[l, u]`` around every activation is pushed through the
network layer by layer, so that for every input in the box the activation stays in its interval.
auto_LiRPA cannot be installed with this torch (faithful.md), hence these few dozen lines.

**The input box.** ``B(x) = [x - eps, x + eps] ∩ [0, 1]`` (faithful.md [ours]; images in
[0, 1], the model normalises inside): :func:`input_box`.

**Layer rules** (every rule is sound: the image of the box lies in the output interval):

* affine layers (``nn.Linear``, ``nn.Conv2d``, :class:`kdutils.models.Normalize`,
  ``nn.BatchNorm1d/2d`` in eval mode) in centre-radius form: with ``c = (u + l) / 2`` and
  ``r = (u - l) / 2``, ``c' = W c + b`` and ``r' = |W| r``; ``l' = c' - r'``, ``u' = c' + r'``
  (exact for one affine layer);
* monotone (non-decreasing) layers, elementwise or pooling: ``l' = f(l)``, ``u' = f(u)``
  (``nn.ReLU``, ``nn.LeakyReLU`` (slope >= 0), ``nn.Sigmoid``, ``nn.Tanh``, ``nn.MaxPool2d``,
  ``nn.AvgPool2d``, ``nn.AdaptiveAvgPool2d``, ``nn.AdaptiveMaxPool2d``);
* shape and constant layers: ``nn.Flatten``, ``nn.Identity``, :class:`kdutils.models.PadTo`
  (zero padding), ``nn.Dropout`` in eval mode;
* ``nn.Sequential``: the composition.

Anything else (a residual block, BatchNorm in train mode) raises :class:`UnsupportedLayerError`,
which names the module and the supported layers.

**Margins by elision of the last layer** (Gowal et al. 2018, Sec. 3) [public]: when the model
ends with ``nn.Linear`` (``z = W h + b``), the difference ``z_c - z_j = (W_c - W_j) h + b_c - b_j``
is bounded directly from the interval of ``h``::

    m_cj = (W_c - W_j) c_h + (b_c - b_j) -/+ |W_c - W_j| r_h

which is never looser than ``l_c - u_j`` from the logit intervals. :func:`margin_bounds` gives
the lower and upper bounds of ``z_c - z_j`` for every j (0 at j = c), falling back to the
logit intervals when the last layer is not linear.

**Probability bounds** of class c (softmax ``p_c = 1 / (1 + sum_{j != c} exp(z_j - z_c))``,
decreasing in every ``z_j - z_c``) [ours]::

    LB[p_c] = 1 / (1 + sum_{j != c} exp(-lower(z_c - z_j)))
    UB[p_c] = 1 / (1 + sum_{j != c} exp(-upper(z_c - z_j)))

computed as ``exp(-logsumexp([0, -m_cj]))`` for stability, clamped to [0, 1]. With the plain
logit intervals (``margins=False``) this is ``exp(l_c) / (exp(l_c) + sum_{j != c} exp(u_j))``
and symmetrically ``exp(u_c) / (exp(u_c) + sum_{j != c} exp(l_j))``.

**Certified** at x with class c: ``lower(z_c - z_j) > 0`` for every ``j != c`` (no point of the
box changes the prediction). **IBP training** (Gowal et al.): CE on :func:`worst_case_logits`
``-lower(z_y - z_j)`` (0 at y). Every function is differentiable in the model's parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..inputs.models import Normalize, PadTo
from ..inputs.runtime import evaluating

__all__ = [
    "Interval",
    "UnsupportedLayerError",
    "SUPPORTED_LAYERS",
    "input_box",
    "interval_bounds",
    "logit_bounds",
    "margin_bounds",
    "worst_case_logits",
    "probability_bounds",
    "certified",
    "certified_accuracy",
    "check_supported",
]


class Interval(NamedTuple):
    """Elementwise bounds ``lower <= value <= upper`` (same shape)."""

    lower: Tensor
    upper: Tensor


_AFFINE = (nn.Linear, nn.Conv2d, Normalize, nn.BatchNorm1d, nn.BatchNorm2d)
_MONOTONE = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)
_SHAPE = (nn.Flatten, nn.Identity, PadTo, nn.Dropout)
#: every layer type :func:`interval_bounds` propagates through (plus ``nn.Sequential`` of them)
SUPPORTED_LAYERS: tuple[type[nn.Module], ...] = (nn.Sequential, *_AFFINE, *_MONOTONE, *_SHAPE)


class UnsupportedLayerError(TypeError):
    """A module IBP has no rule for; the message names it and the supported layers."""

    def __init__(self, module: nn.Module, why: str = ""):
        names = ", ".join(t.__name__ for t in SUPPORTED_LAYERS)
        super().__init__(
            f"interval bound propagation does not support {type(module).__name__}{why}; supported layers: {names} "
            "(a model must be an nn.Sequential of these)"
        )


def _leaves(model: nn.Module) -> list[nn.Module]:
    """The layers of a (nested) ``nn.Sequential`` in order, each checked to have a rule."""
    if type(model) is nn.Sequential:
        return [leaf for m in model for leaf in _leaves(m)]
    if type(model) not in SUPPORTED_LAYERS:  # exact types: a subclass may compute something else
        raise UnsupportedLayerError(model)
    if isinstance(model, (nn.BatchNorm1d, nn.BatchNorm2d)) and (model.training or model.running_mean is None):
        raise UnsupportedLayerError(model, " in train mode or without running statistics (use eval mode)")
    if isinstance(model, nn.Dropout) and model.training and model.p > 0:
        raise UnsupportedLayerError(model, " in train mode (use eval mode)")
    if isinstance(model, nn.LeakyReLU) and model.negative_slope < 0:
        raise UnsupportedLayerError(model, " with a negative slope (not monotone)")
    return [model]


def check_supported(model: nn.Module) -> None:
    """Raise :class:`UnsupportedLayerError` unless IBP can bound ``model`` in its current mode."""
    _leaves(model)


def _affine(layer: nn.Module, c: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    if isinstance(layer, nn.Linear):
        return F.linear(c, layer.weight, layer.bias), F.linear(r, layer.weight.abs())
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros":
            raise UnsupportedLayerError(layer, f" with padding_mode={layer.padding_mode!r}")
        conv = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
        return F.conv2d(c, layer.weight, layer.bias, **conv), F.conv2d(r, layer.weight.abs(), None, **conv)
    if isinstance(layer, Normalize):
        return layer(c), r / layer.std.abs()
    # BatchNorm in eval mode: y = (x - mean) * scale + beta per channel
    scale = torch.rsqrt(layer.running_var + layer.eps)
    if layer.weight is not None:
        scale = scale * layer.weight
    shape = (1, -1) + (1,) * (c.dim() - 2)
    return layer(c), r * scale.abs().view(shape)


def _propagate(layers: list[nn.Module], lower: Tensor, upper: Tensor) -> Interval:
    for layer in layers:
        if isinstance(layer, _AFFINE):
            c, r = _affine(layer, (upper + lower) / 2, (upper - lower) / 2)
            lower, upper = c - r, c + r
        else:  # monotone or shape: the same function on both ends
            lower, upper = layer(lower), layer(upper)
    return Interval(lower, upper)


def input_box(x: Tensor, eps: float | Tensor, clip: tuple[float, float] | None = (0.0, 1.0)) -> Interval:
    """``[x - eps, x + eps]`` clipped to ``clip`` (the l_inf ball of faithful.md, B(x))."""
    if isinstance(eps, (int, float)) and eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    lower, upper = x - eps, x + eps
    if clip is not None:
        lower, upper = lower.clamp(*clip), upper.clamp(*clip)
    return Interval(lower, upper)


def interval_bounds(model: nn.Module, lower: Tensor, upper: Tensor) -> Interval:
    """Bounds of ``model``'s output for every input in the box ``[lower, upper]`` (same shapes).

    The model is used as it is (its BatchNorm and Dropout layers must be in eval mode);
    :func:`logit_bounds` puts it in eval mode for you.
    """
    return _propagate(_leaves(model), lower, upper)


def logit_bounds(model: nn.Module, x: Tensor, eps: float | Tensor, clip=(0.0, 1.0)) -> Interval:
    """``(B, classes)`` bounds of the logits over ``B(x)`` (model in eval mode inside, restored)."""
    with evaluating(model):
        return interval_bounds(model, *input_box(x, eps, clip))


def margin_bounds(model: nn.Module, x: Tensor, eps: float | Tensor, c: Tensor, clip=(0.0, 1.0)) -> Interval:
    """``(B, classes)`` bounds of ``z_c - z_j`` over ``B(x)`` for every class j (0 at j = c).

    By elision of the last layer when it is ``nn.Linear`` (see the module docstring), else from
    the logit intervals (``l_c - u_j``, ``u_c - l_j``).
    """
    with evaluating(model):
        layers = _leaves(model)
        lower, upper = input_box(x, eps, clip)
        if layers and isinstance(layers[-1], nn.Linear):
            h = _propagate(layers[:-1], lower, upper)
            last = layers[-1]
            hc, hr = (h.upper + h.lower) / 2, (h.upper - h.lower) / 2
            d = last.weight[c][:, None, :] - last.weight[None]  # (B, K, H): W_c - W_j
            mid = (d * hc[:, None, :]).sum(-1)
            if last.bias is not None:
                mid = mid + last.bias[c][:, None] - last.bias[None]
            rad = (d.abs() * hr[:, None, :]).sum(-1)
            return Interval(mid - rad, mid + rad)
        z = _propagate(layers, lower, upper)
    own = F.one_hot(c, z.lower.shape[1]).bool()
    lo = z.lower.gather(1, c[:, None]) - z.upper
    hi = z.upper.gather(1, c[:, None]) - z.lower
    return Interval(lo.masked_fill(own, 0.0), hi.masked_fill(own, 0.0))


def worst_case_logits(model: nn.Module, x: Tensor, eps: float | Tensor, y: Tensor, clip=(0.0, 1.0)) -> Tensor:
    """``(B, classes)``: ``-lower(z_y - z_j)`` (0 at y), the logits of IBP training (Gowal et al.
    2018): ``cross_entropy(worst_case_logits(...), y)`` bounds the CE of every point of B(x)."""
    return -margin_bounds(model, x, eps, y, clip).lower


def probability_bounds(
    model: nn.Module,
    x: Tensor,
    eps: float | Tensor,
    c: Tensor,
    *,
    margins: bool = True,
    clip=(0.0, 1.0),
    log: bool = False,
    margin_fn=None,
) -> Interval:
    """``(B,)`` bounds of the softmax probability of class ``c`` over ``B(x)`` (module docstring).

    ``margins=True`` uses :func:`margin_bounds` (tighter); ``False`` the logit intervals alone.
    ``log=True``: bounds of ``log p[c]`` instead (``-logsumexp(-m)``, in (-inf, 0]). Their
    gradient does not vanish where the probability bound saturates at 0: ``-log LB p[c]`` is
    IBP training's robust cross-entropy. ``margin_fn``: another verifier's margin bounds with
    :func:`margin_bounds`' signature (:func:`kdutils.crown.crown_margin_bounds`).
    """
    if margin_fn is not None:
        m = margin_fn(model, x, eps, c, clip)
    elif margins:
        m = margin_bounds(model, x, eps, c, clip)
    else:
        z = logit_bounds(model, x, eps, clip)
        own = F.one_hot(c, z.lower.shape[1]).bool()
        m = Interval(
            (z.lower.gather(1, c[:, None]) - z.upper).masked_fill(own, 0.0),
            (z.upper.gather(1, c[:, None]) - z.lower).masked_fill(own, 0.0),
        )
    # the j = c entry of -m is 0: logsumexp over it is exactly log(1 + sum_{j != c} exp(-m_cj))
    log_lower = (-torch.logsumexp(-m.lower, dim=1)).clamp(max=0.0)
    log_upper = (-torch.logsumexp(-m.upper, dim=1)).clamp(max=0.0)
    if log:
        return Interval(log_lower, log_upper)
    return Interval(log_lower.exp(), log_upper.exp())


def certified(model: nn.Module, x: Tensor, eps: float | Tensor, c: Tensor, clip=(0.0, 1.0), margin_fn=None) -> Tensor:
    """``(B,)`` bool: IBP (or ``margin_fn``'s verifier) proves that ``model`` predicts ``c`` at every
    point of ``B(x)``."""
    with torch.no_grad():
        m = (margin_fn or margin_bounds)(model, x, eps, c, clip).lower
        own = F.one_hot(c, m.shape[1]).bool()
        return (m.masked_fill(own, float("inf")) > 0).all(1)


def certified_accuracy(
    model: nn.Module, x: Tensor, y: Tensor, eps: float, *, batch_size: int = 256, clip=(0.0, 1.0), margin_fn=None
) -> float:
    """Share of samples certified at their label ``y`` (``x`` uint8 or float in [0, 1]), by IBP or
    by ``margin_fn``'s verifier (:func:`kdutils.crown.crown_margin_bounds`).

    Runs on the device of ``model``'s first parameter, in batches.
    """
    if x.shape[0] == 0:
        raise ValueError("x is empty (N = 0)")
    p = next(model.parameters(), None)
    dev, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    hits = 0
    for s in range(0, x.shape[0], batch_size):
        xb = x[s : s + batch_size].to(dev)
        xb = xb.to(dtype).div_(255.0) if xb.dtype == torch.uint8 else xb.to(dtype)
        hits += int(certified(model, xb, eps, y[s : s + batch_size].to(dev), clip, margin_fn).sum())
    return hits / x.shape[0]

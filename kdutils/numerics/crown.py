"""CROWN: backward linear bound propagation (Zhang, Weng, Chen, Hsieh, Daniel 2018, "Efficient
Neural Network Robustness Certification with General Activation Functions") [public], in pure
torch for this project's Sequential networks of affine layers, ReLU and shape layers.

Where IBP (:mod:`kdutils.ibp`) pushes an interval forward, CROWN bounds a linear function of the
output, ``s(x) = C f(x)`` (here the margins ``z_c - z_j``), by walking the network backwards
with a linear coefficient ``A`` and a constant ``a``, so that ``s(x) >= A x + a`` over the box:

* affine layer ``y = W h + b``: ``a += A b``, ``A <- A W`` (a convolution's ``A W`` is the
  transposed convolution of ``A``); :class:`kdutils.models.Normalize` and BatchNorm in eval mode
  are per-channel affine maps;
* ReLU with pre-activation bounds ``[l, u]``: stable neurons pass (``u <= 0``: 0; ``l >= 0``:
  identity); an unstable one (``l < 0 < u``) is relaxed between the lower line ``alpha h``
  (``alpha = 1`` when ``u > -l``, else 0: CROWN's adaptive choice) and the upper line
  ``u (h - l) / (u - l)``; a positive coefficient takes the lower line, a negative one the upper;
* ``nn.Flatten``, ``nn.Identity``, ``nn.Dropout`` (eval), :class:`kdutils.models.PadTo`: reshape,
  pass or crop ``A``;
* at the input box ``[x_l, x_u]``: ``min A x = A+ x_l + A- x_u``.

The pre-activation bounds of every ReLU come from the same backward walk started at that layer
(full CROWN) while the layer's units times the largest activation behind it stay within
``max_work`` (:data:`MAX_WORK`), else from IBP (the CROWN-IBP reading, for wide convolutional layers) [ours: the cost of full CROWN grows
with the units of every layer]; every bound is intersected with IBP's, so CROWN is never
looser than IBP and is exact for one affine layer (the minimum of a linear function over a box).
Sound: for every point of the box the true value lies within the bounds (tests/numerics/test_crown.py
checks it under dense sampling and at PGD points).

The paper's author CV line mentions LP-based bounds [public]; CROWN is the linear relaxation
closest to them that fits here (faithful.md [ours]).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..inputs.models import Normalize, PadTo
from ..inputs.runtime import evaluating
from .ibp import Interval, UnsupportedLayerError, _leaves, _propagate, input_box, margin_bounds, probability_bounds

__all__ = ["CROWN_LAYERS", "linear_bounds", "crown_margin_bounds", "crown_probability_bounds", "MAX_WORK"]

#: a ReLU layer takes CROWN's pre-activation bounds when its units times the largest activation
#: behind it are at most this, else IBP's (CROWN-IBP) [ours]: full CROWN walks back once per unit.
#: With 2**20: the last dense layer of ibp_small on MNIST (100 units behind 3,200 activations) gets
#: CROWN's bounds, its convolutional layers and every layer of ibp_large on CIFAR-10 IBP's. Measured
#: on one core, ibp_small, 64 MNIST-sized images: 1.9 s; every layer by CROWN 56 s; IBP alone 0.01 s
MAX_WORK = 2**20
#: the backward walk of the pre-activation bounds holds at most about this many elements per tensor
CHUNK_ELEMENTS = 2**24

_AFFINE = (nn.Linear, nn.Conv2d, Normalize, nn.BatchNorm1d, nn.BatchNorm2d)
_PASS = (nn.Identity, nn.Dropout)
#: the layer types CROWN bounds (inside an ``nn.Sequential``)
CROWN_LAYERS: tuple[type[nn.Module], ...] = (*_AFFINE, nn.ReLU, nn.Flatten, PadTo, *_PASS)


def _check(layers: list[nn.Module]) -> None:
    for layer in layers:
        if not isinstance(layer, CROWN_LAYERS):
            names = ", ".join(t.__name__ for t in CROWN_LAYERS)
            raise UnsupportedLayerError(layer, f" in CROWN (supported: {names}; IBP bounds the others)")


def _shapes(layers: list[nn.Module], x: Tensor) -> list[torch.Size]:
    """The per-sample input shape of every layer, and the output's last."""
    shapes = [x.shape[1:]]
    h = x[:1]
    with torch.no_grad():
        for layer in layers:
            h = layer(h)
            shapes.append(h.shape[1:])
    return shapes


def _channel_affine(layer: nn.Module) -> tuple[Tensor, Tensor]:
    """``(scale, shift)`` per channel of Normalize or eval-mode BatchNorm: ``y = x scale + shift``."""
    if isinstance(layer, Normalize):
        scale = 1.0 / layer.std.flatten()
        return scale, -layer.mean.flatten() * scale
    scale = torch.rsqrt(layer.running_var + layer.eps)
    if layer.weight is not None:
        scale = scale * layer.weight
    shift = -layer.running_mean * scale
    if layer.bias is not None:
        shift = shift + layer.bias
    return scale, shift


def _back_affine(layer: nn.Module, A: Tensor, in_shape: torch.Size) -> tuple[Tensor, Tensor]:
    """``(A W, A b)`` for ``A`` of shape ``(B, K, *out_shape)``."""
    B, K = A.shape[:2]
    if isinstance(layer, nn.Linear):
        const = A @ layer.bias if layer.bias is not None else A.new_zeros(B, K)
        return A @ layer.weight, const
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros":
            raise UnsupportedLayerError(layer, f" with padding_mode={layer.padding_mode!r}")
        flat = A.reshape(B * K, *A.shape[2:])
        out = F.conv_transpose2d(flat, layer.weight, None, layer.stride, layer.padding, 0, layer.groups, layer.dilation)
        # a strided convolution may not reach the last rows and columns: pad back to the input's size
        dh, dw = in_shape[-2] - out.shape[-2], in_shape[-1] - out.shape[-1]
        if dh or dw:
            out = F.pad(out, (0, dw, 0, dh))
        const = (A.sum(dim=(-1, -2)) @ layer.bias) if layer.bias is not None else A.new_zeros(B, K)
        return out.reshape(B, K, *in_shape), const.reshape(B, K)
    scale, shift = _channel_affine(layer)
    view = (1, 1, -1) + (1,) * (A.dim() - 3)
    per_channel = A.sum(dim=tuple(range(3, A.dim()))) if A.dim() > 3 else A
    return A * scale.view(view), per_channel @ shift


def _back_relu(A: Tensor, pre: Interval) -> tuple[Tensor, Tensor]:
    """``(A', const)`` with ``A relu(h) >= A' h + const`` for ``h`` in ``pre`` (per sample)."""
    lo, up = pre.lower.unsqueeze(1), pre.upper.unsqueeze(1)
    unstable = (lo < 0) & (up > 0)
    active = (lo >= 0).to(A.dtype)
    slope_up = torch.where(unstable, up / (up - lo).clamp_min(1e-12), active)
    slope_lo = torch.where(unstable, (up > -lo).to(A.dtype), active)
    intercept_up = torch.where(unstable, -slope_up * lo, torch.zeros_like(lo))
    pos, neg = A.clamp(min=0), A.clamp(max=0)
    const = (neg * intercept_up).flatten(2).sum(-1)
    return pos * slope_lo + neg * slope_up, const


def _backward(layers, shapes, pre_bounds, spec: Tensor, box: Interval) -> Tensor:
    """Lower bound of ``spec . f(x)`` over ``box``; ``spec`` (B, K, *out_shape)."""
    A, const = spec, spec.new_zeros(spec.shape[:2])
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if isinstance(layer, _AFFINE):
            A, c = _back_affine(layer, A, shapes[i])
            const = const + c
        elif isinstance(layer, nn.ReLU):
            A, c = _back_relu(A, pre_bounds[i])
            const = const + c
        elif isinstance(layer, nn.Flatten):
            A = A.reshape(A.shape[0], A.shape[1], *shapes[i])
        elif isinstance(layer, PadTo):
            left, right, top, bottom = layer.pad
            A = A[..., top : A.shape[-2] - bottom, left : A.shape[-1] - right]
        # Identity, Dropout in eval mode: A unchanged
    pos, neg = A.clamp(min=0), A.clamp(max=0)
    lo, hi = box.lower.unsqueeze(1), box.upper.unsqueeze(1)
    return (pos * lo + neg * hi).flatten(2).sum(-1) + const


def _pre_activation_bounds(layers, shapes, box: Interval, max_work: int) -> dict[int, Interval]:
    """Bounds of the input of every ReLU: IBP's, tightened by CROWN while the layer is narrow."""
    bounds: dict[int, Interval] = {}
    for i, layer in enumerate(layers):
        if not isinstance(layer, nn.ReLU):
            continue
        ibp_b = _propagate(layers[:i], box.lower, box.upper)
        n = shapes[i].numel()
        if n * max(s.numel() for s in shapes[: i + 1]) > max_work:
            bounds[i] = ibp_b
            continue
        B = box.lower.shape[0]
        eye = torch.eye(n, dtype=box.lower.dtype, device=box.lower.device)
        rows = torch.cat([eye, -eye])  # lower bounds of h and of -h
        widest = max(s.numel() for s in shapes[: i + 1])
        chunk = max(1, CHUNK_ELEMENTS // (B * widest))  # rows of the walk at a time: bounded memory
        lows = torch.cat(
            [
                _backward(
                    layers[:i], shapes, bounds, rows[k : k + chunk].expand(B, -1, -1).reshape(B, -1, *shapes[i]), box
                )
                for k in range(0, 2 * n, chunk)
            ],
            dim=1,
        )
        lo, hi = lows[:, :n].reshape(B, *shapes[i]), -lows[:, n:].reshape(B, *shapes[i])
        bounds[i] = Interval(torch.maximum(lo, ibp_b.lower), torch.minimum(hi, ibp_b.upper))
    return bounds


def linear_bounds(
    model: nn.Module, x: Tensor, eps: float | Tensor, spec: Tensor, clip=(0.0, 1.0), *, max_work: int = MAX_WORK
) -> Interval:
    """``(B, K)`` CROWN bounds of ``spec . f(x')`` over ``B(x)`` for ``spec`` (B, K, classes)."""
    with evaluating(model):
        layers = _leaves(model)
        _check(layers)
        box = input_box(x, eps, clip)
        shapes = _shapes(layers, x)
        pre = _pre_activation_bounds(layers, shapes, box, max_work)
        low = _backward(layers, shapes, pre, torch.cat([spec, -spec], dim=1), box)
    k = spec.shape[1]
    return Interval(low[:, :k], -low[:, k:])


def crown_margin_bounds(
    model: nn.Module, x: Tensor, eps: float | Tensor, c: Tensor, clip=(0.0, 1.0), *, max_work: int = MAX_WORK
) -> Interval:
    """``(B, classes)`` bounds of ``z_c - z_j`` over ``B(x)`` (0 at j = c), as
    :func:`kdutils.ibp.margin_bounds` but by CROWN, intersected with IBP's (never looser)."""
    with torch.no_grad(), evaluating(model):
        n_cls = model(x[:1]).shape[1]
    own = F.one_hot(c, n_cls).to(x.dtype)
    spec = own[:, None, :] - torch.eye(n_cls, dtype=x.dtype, device=x.device)[None]  # (B, K, K): e_c - e_j
    m = linear_bounds(model, x, eps, spec, clip, max_work=max_work)
    ibp_m = margin_bounds(model, x, eps, c, clip)
    mask = own.bool()
    lo = torch.maximum(m.lower, ibp_m.lower).masked_fill(mask, 0.0)
    hi = torch.minimum(m.upper, ibp_m.upper).masked_fill(mask, 0.0)
    return Interval(lo, hi)


def crown_probability_bounds(model: nn.Module, x: Tensor, eps: float | Tensor, c: Tensor, clip=(0.0, 1.0)) -> Interval:
    """``(B,)`` bounds of ``p[c]`` over ``B(x)`` from CROWN's margins (the formula of
    :func:`kdutils.ibp.probability_bounds`)."""
    return probability_bounds(model, x, eps, c, clip=clip, margin_fn=crown_margin_bounds)

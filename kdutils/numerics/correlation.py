"""Correlation primitives shared by DIST and CMKD, as pure tensor functions.

The companion of :mod:`kdutils.losses` for the correlation-matching family: Pearson correlation,
the tempered softmax, soft and hard ranks and the Pearson and Spearman distances. Notation as
there: ``z_s`` student logits (B, C), ``z_t`` teacher logits (B, C), ``y`` labels (B,), ``tau``
the temperature, ``P = softmax(z / tau)``; per-sample terms return (B,). The methods' own terms
live in their files: DIST's inter- and intra-class terms in :mod:`kdutils.methods.dist`, CMKD's
difficulty and weights in :mod:`kdutils.methods.cmkd`.

Sources:

* DIST: Huang, You, Wang, Qian, Xu, "Knowledge Distillation from A Stronger Teacher",
  NeurIPS 2022; public code ``hunto/DIST_KD`` [public]. Pearson correlation of rows as the
  cosine of the centred vectors with ``eps = 1e-8`` added to the product of the norms.
* CMKD: Niu, Wang, Cai, Hou, arXiv 2410.06561 (2024): Pearson and Spearman correlation losses
  weighted per sample by difficulty [paper]; the exact forms here (the soft rank, the
  difficulty measures, the weights) are this project's [ours] (``docs/papers/cmkd.md``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

#: the soft rank never holds more than this many (row, class, class) elements at once [ours]:
#: 2**22 elements are 16 MiB in float32 per temporary (a few temporaries live at a time)
SOFT_RANK_MAX_ELEMENTS = 2**22


# ---------------------------------------------------------------- Pearson and DIST


def pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of matching rows of ``a`` and ``b`` (N, D) -> (N,).

    ``rho(u, v) = <u - mean u, v - mean v> / (|u - mean u| |v - mean v| + eps)``, the cosine of the
    centred vectors, as DIST's public code (eps 1e-8 added to the product of the norms) [public].
    A constant row gives rho = 0.
    """
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def standardise(z: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Z-score of each row of logits: ``(z - mean_c z) / (std_c z + eps)`` (unbiased std) [ours].

    The logit standardisation of Sun et al. (CVPR 2024, "Logit Standardization in Knowledge
    Distillation"), offered by CMKD as a flag (default off). A constant row maps to zeros.
    """
    return (z - z.mean(dim=1, keepdim=True)) / (z.std(dim=1, keepdim=True) + eps)


def tempered(z: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """``P = softmax(z / tau)`` along the classes."""
    return F.softmax(z / tau, dim=1)


def pearson_distance(z_s: torch.Tensor, z_t: torch.Tensor, tau: float = 4.0) -> torch.Tensor:
    """``Lp_i = 1 - rho(P_S[i, :], P_T[i, :])`` (B,), in [0, 2], without DIST's tau^2.

    The inter-class (per-sample, across classes) correlation distance of DIST [public], the
    Pearson part of CMKD [paper]. The teacher's side carries no gradient.
    """
    return 1.0 - pearson(tempered(z_s, tau), tempered(z_t.detach(), tau))


# ---------------------------------------------------------------- ranks and Spearman


def soft_rank_chunk(num_classes: int, max_elements: int = SOFT_RANK_MAX_ELEMENTS) -> int:
    """Rows per chunk of :func:`soft_rank`: the largest ``b >= 1`` with ``b C^2 <= max_elements``."""
    return max(1, max_elements // max(1, num_classes * num_classes))


class _SoftRank(torch.autograd.Function):
    """``r_i = 1/2 + sum_j sigmoid((x_i - x_j) / kappa)`` row by row in chunks; the backward
    recomputes the sigmoids chunk by chunk, so neither pass holds more than one chunk's
    (b, C, C) block. Gradient: ``dL/dx_k = (1 / kappa) sum_j s'_kj (g_k - g_j)`` with
    ``s' = sigmoid'((x_k - x_j) / kappa)`` (even in its argument)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kappa: float, chunk: int) -> torch.Tensor:
        out = torch.empty_like(x)
        for s in range(0, x.shape[0], chunk):
            xc = x[s : s + chunk]
            out[s : s + chunk] = torch.sigmoid((xc[:, :, None] - xc[:, None, :]) / kappa).sum(dim=2) + 0.5
        ctx.save_for_backward(x)
        ctx.kappa, ctx.chunk = kappa, chunk
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        (x,) = ctx.saved_tensors
        gx = torch.empty_like(x)
        for s in range(0, x.shape[0], ctx.chunk):
            xc, gc = x[s : s + ctx.chunk], g[s : s + ctx.chunk]
            sig = torch.sigmoid((xc[:, :, None] - xc[:, None, :]) / ctx.kappa)
            gx[s : s + ctx.chunk] = (sig * (1.0 - sig) * (gc[:, :, None] - gc[:, None, :])).sum(dim=2) / ctx.kappa
        return gx, None, None


def soft_rank(
    x: torch.Tensor, kappa: float = 1.0, *, chunk: int | None = None, max_elements: int = SOFT_RANK_MAX_ELEMENTS
) -> torch.Tensor:
    """Differentiable rank of each row of ``x`` (B, C) -> (B, C), ascending (the largest value
    gets the largest rank, about C) [ours, pure PyTorch, no compiled extension]:

    ``r_i = 1 + sum_{j != i} sigmoid((x_i - x_j) / kappa)``

    As kappa -> 0 it tends to the hard rank ``1 + #{j : x_j < x_i}`` (ties share half a rank
    each); a larger kappa smooths it. Cost O(C^2) per row. **Memory bound**: rows are processed
    in chunks of ``chunk`` (default :func:`soft_rank_chunk`, so that ``chunk * C^2 <=
    max_elements`` = 2**22 elements), in the forward and in the backward (a custom autograd
    function that recomputes the chunk's sigmoids instead of saving them); the extra memory is a
    few (chunk, C, C) temporaries plus O(B C), whatever the batch size: 16 MiB per float32
    temporary at the default bound, e.g. 4 rows at a time for 1000 classes, all of a 64-row batch
    for 100 classes. Half-precision input is ranked in float32.
    """
    if kappa <= 0:
        raise ValueError(f"soft rank kappa must be positive, got {kappa}")
    if chunk is None:
        chunk = soft_rank_chunk(x.shape[1], max_elements)
    if chunk < 1:
        raise ValueError(f"soft rank chunk must be >= 1, got {chunk}")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return _SoftRank.apply(x, float(kappa), int(chunk))


def hard_rank(x: torch.Tensor) -> torch.Tensor:
    """Rank of each row of ``x`` (B, C) -> (B, C) in 1..C, ascending, detached (argsort; ties
    broken by position, stably). ``r_i = 1 + #{j : x_j < x_i}`` without ties."""
    order = torch.argsort(x.detach(), dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(1, x.shape[1] + 1, device=x.device).expand_as(order))
    return ranks.to(x.dtype if x.is_floating_point() else torch.float32)


def spearman_distance(
    z_s: torch.Tensor,
    z_t: torch.Tensor,
    tau: float = 4.0,
    kappa: float = 1.0,
    *,
    max_elements: int = SOFT_RANK_MAX_ELEMENTS,
) -> torch.Tensor:
    """CMKD's Spearman part per sample: ``Ls_i = 1 - rho(soft_rank(z_S[i] / tau), rank(z_T[i] / tau))`` (B,).

    [paper] Spearman correlation = Pearson correlation of the class ranks; [ours] the student's
    ranks are :func:`soft_rank` of the tempered logits (kappa in units of ``z / tau``), the
    teacher's hard ranks (argsort; tau does not change them). In [0, 2]: 0 for the same ranking,
    2 for the reversed one (exactly so with hard ranks; up to the soft rank's smoothing for the
    student). Like :func:`pearson_distance` it carries no tau^2: CMKD multiplies both parts by
    tau^2, so they share one scale and one lambda.
    """
    r_s = soft_rank(z_s / tau, kappa, max_elements=max_elements)
    r_t = hard_rank(z_t).to(r_s.dtype)
    return 1.0 - pearson(r_s, r_t)

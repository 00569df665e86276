"""Faithfulness of a student to its teacher near data points (faithful.md [ours]): local
disagreement, the empirical confidence gap (PGD) and its certified upper bound (IBP).

``B(x)`` is the l_inf ball of radius eps around x clipped to [0, 1] (pixel units), ``c`` the true
class. Every function takes images ``x`` (uint8, scaled by 1/255, or float in [0, 1]) and labels
``y``, runs in batches on the device of the student's first parameter, with the models in eval
mode, and returns per-point CPU tensors, so the evaluations (:mod:`kdutils.evaluations`) and the
tests share them.

* :func:`local_disagreement`: some ``x'`` in B(x) with ``argmax T(x') != argmax S(x')``, searched
  by two PGD attacks on the CW margin (``max_{j != k} z_j - z_k``): one pushes the student away
  from the teacher's clean class k, one the teacher away from the student's clean class;
  :class:`kdutils.attacks.Disagreement` is checked at the clean point and at every iterate of
  both. Found = a certain disagreement; not found = none found (a lower bound of the rate).
* :func:`empirical_gap`: ``Delta+ = max p_T[c] - p_S[c]`` and ``Delta- = max p_S[c] - p_T[c]``
  over B(x), each by PGD on :class:`kdutils.attacks.ConfidenceGap` (``keep="best"``), the clean
  point included: lower bounds of the true maxima.
* :func:`certified_gap`: upper bounds by interval bound propagation
  (:func:`kdutils.ibp.probability_bounds`) or by CROWN (:mod:`kdutils.crown`, tighter):
  ``UB p_T[c] - LB p_S[c]`` and
  ``UB p_S[c] - LB p_T[c]``; and whether both networks are certified to keep class c on B(x)
  (certified absence of disagreement). Sound: ``empirical <= true <= certified`` per point.
* :func:`faithful_share`: the share of points with ``max(Delta+, Delta-) <= delta`` (delta-faithful)
  on a grid of delta.
* :func:`confidence_slice`: the confidence of the true class of several models over a 2-D slice
  of B(x) around one image (the paper's Fig. 1, for :func:`kdutils.plots.confidence_slices`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from ..core.registry import check_choice
from ..inputs.runtime import evaluating
from ..numerics import attacks, crown, ibp

__all__ = [
    "predictions",
    "local_disagreement",
    "empirical_gap",
    "certified_gap",
    "faithful_share",
    "gap_histogram",
    "SLICE_DIRECTIONS",
    "confidence_slice",
]


def _device(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters(), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


def _batches(model: nn.Module, x: Tensor, y: Tensor, batch_size: int):
    dev, dtype = _device(model)
    for s in range(0, x.shape[0], batch_size):
        yield attacks._unit(x[s : s + batch_size], dev, dtype), y[s : s + batch_size].to(dev)


def _cat(parts: list[Tensor], dtype: torch.dtype) -> Tensor:
    """The per-batch results joined; no points (e.g. a teacher right on none of them): an empty (0,) tensor."""
    return torch.cat(parts) if parts else torch.zeros(0, dtype=dtype)


def _prob(model: nn.Module, x: Tensor, c: Tensor) -> Tensor:
    return model(x).softmax(1).gather(1, c[:, None]).squeeze(1)


def predictions(teacher: nn.Module, student: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256):
    """``(teacher_class, student_class)`` on the clean images, (N,) int64 CPU tensors each."""
    pt, ps = [], []
    with torch.no_grad(), evaluating(teacher), evaluating(student):
        for xb, _ in _batches(student, x, y, batch_size):
            pt.append(teacher(xb).argmax(1).cpu())
            ps.append(student(xb).argmax(1).cpu())
    return _cat(pt, torch.int64), _cat(ps, torch.int64)


def true_class_confidence(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> Tensor:
    """The model's softmax probability of the true class per image, (N,) float CPU tensor."""
    out = []
    with torch.no_grad(), evaluating(model):
        for xb, yb in _batches(model, x, y, batch_size):
            out.append(_prob(model, xb, yb).float().cpu())
    return _cat(out, torch.float32)


#: the teacher's true-class confidence the slice figure's image is picked nearest to [ours]: not
#: saturated (a slice around p = 0.9999 is one flat colour), not borderline either
SLICE_CONFIDENCE = 0.9


def slice_image(ok: Tensor, confidence: Tensor, target: float = SLICE_CONFIDENCE) -> int:
    """The image a confidence slice is drawn around: among those every model classifies right
    (``ok``), the one whose teacher confidence in its true class is nearest ``target`` (ties: the
    first). Without any such image, the first image (an untrained dry run's networks)."""
    if not bool(ok.any()):
        return 0
    dist = (confidence.double() - target).abs()
    dist[~ok] = float("inf")
    return int(torch.argmin(dist))


def local_disagreement(
    teacher: nn.Module,
    student: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    steps: int = 10,
    step_size: float | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> tuple[Tensor, Tensor]:
    """``(student_attack, teacher_attack)``: (N,) bool, a disagreement found in B(x) by the attack
    that moves the student (resp. the teacher); either one: a local disagreement. The clean
    point counts (a student already wrong where the teacher is right disagrees there)."""
    dev, _ = _device(student)
    g = torch.Generator(device=dev).manual_seed(seed)
    out_s, out_t = [], []
    with evaluating(teacher), evaluating(student):
        for xb, yb in _batches(student, x, y, batch_size):
            track = attacks.Disagreement(teacher, student)
            with torch.no_grad():
                kt, ks = teacher(xb).argmax(1), student(xb).argmax(1)
                clean = kt != ks
            found = []
            for model, k in ((student, kt), (teacher, ks)):
                r = attacks.pgd_result(
                    attacks.Margin(model, k), xb, eps, steps=steps, step_size=step_size, generator=g, track=track
                )
                found.append((r.hit | clean).cpu())
            out_s.append(found[0])
            out_t.append(found[1])
    return _cat(out_s, torch.bool), _cat(out_t, torch.bool)


def empirical_gap(
    teacher: nn.Module,
    student: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    steps: int = 10,
    step_size: float | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> tuple[Tensor, Tensor]:
    """``(delta_plus, delta_minus)``: (N,) float, the largest ``p_T[y] - p_S[y]`` (resp.
    ``p_S[y] - p_T[y]``) PGD finds in B(x), the clean point included (lower bounds)."""
    dev, _ = _device(student)
    g = torch.Generator(device=dev).manual_seed(seed)
    plus, minus = [], []
    with evaluating(teacher), evaluating(student):
        for xb, yb in _batches(student, x, y, batch_size):
            with torch.no_grad():
                clean = _prob(teacher, xb, yb) - _prob(student, xb, yb)
            vals = []
            for sign in (1, -1):
                r = attacks.pgd_result(
                    attacks.ConfidenceGap(teacher, student, yb, sign),
                    xb,
                    eps,
                    steps=steps,
                    step_size=step_size,
                    generator=g,
                    keep="best",
                )
                vals.append(torch.maximum(r.value, sign * clean).cpu())
            plus.append(vals[0])
            minus.append(vals[1])
    return _cat(plus, torch.float32), _cat(minus, torch.float32)


#: the verifiers of the certified gap: name -> margin bounds (``ibp.margin_bounds``' signature)
VERIFIERS = {"ibp": ibp.margin_bounds, "crown": crown.crown_margin_bounds}


def certified_gap(
    teacher: nn.Module,
    student: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    batch_size: int = 256,
    verifier: str = "ibp",
) -> tuple[Tensor, Tensor, Tensor]:
    """``(bound_plus, bound_minus, both_certified)``: (N,) float upper bounds
    ``UB p_T[y] - LB p_S[y]`` and ``UB p_S[y] - LB p_T[y]`` over B(x) by ``verifier`` (``"ibp"``
    or ``"crown"``: :data:`VERIFIERS`), and (N,) bool: the verifier proves that both networks
    predict y everywhere in B(x). Both models must be boundable by it."""
    margin_fn = VERIFIERS[check_choice("verifier", verifier, VERIFIERS)]
    plus, minus, both = [], [], []
    with torch.no_grad():
        for xb, yb in _batches(student, x, y, batch_size):
            t = ibp.probability_bounds(teacher, xb, eps, yb, margin_fn=margin_fn)
            s = ibp.probability_bounds(student, xb, eps, yb, margin_fn=margin_fn)
            plus.append((t.upper - s.lower).cpu())
            minus.append((s.upper - t.lower).cpu())
            agree = ibp.certified(teacher, xb, eps, yb, margin_fn=margin_fn)
            both.append((agree & ibp.certified(student, xb, eps, yb, margin_fn=margin_fn)).cpu())
    return _cat(plus, torch.float32), _cat(minus, torch.float32), _cat(both, torch.bool)


def faithful_share(gap: Tensor, deltas: Sequence[float]) -> list[float]:
    """Share of points with ``gap <= delta`` for each delta (``gap`` = max(Delta+, Delta-))."""
    if gap.numel() == 0:
        return [float("nan")] * len(deltas)
    return [float((gap <= d).double().mean()) for d in deltas]


def gap_histogram(gap: Tensor, bins: int = 20) -> dict[str, list]:
    """Histogram of gaps over ``bins`` equal bins of [0, 1] (values clamped into it), as
    :func:`kdutils.metrics.rank_histogram`: ``{"edges": [...], "counts": [...]}``."""
    v = gap.detach().double().cpu().flatten().clamp(0.0, 1.0)
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    idx = torch.bucketize(v, edges, right=True).sub_(1).clamp_(0, bins - 1)
    counts = torch.bincount(idx, minlength=bins)
    return {"edges": [round(float(e), 10) for e in edges], "counts": [int(c) for c in counts]}


#: how :func:`confidence_slice` picks its two directions
SLICE_DIRECTIONS = ("gradient", "random")


def confidence_slice(
    models: Mapping[str, nn.Module],
    x: Tensor,
    y: int,
    eps: float,
    *,
    directions: str = "gradient",
    reference: tuple[str, str] | None = None,
    resolution: int = 21,
    seed: int = 0,
) -> dict:
    """The confidence ``p_m[y](x')`` of each model over a 2-D slice of B(x) (faithful KD's Fig. 1).

    ``x``: one image (C, H, W), uint8 or float in [0, 1]; ``y``: its true class. The slice is
    ``x' = P(x + eps (a u + b v))`` for ``a, b`` on ``resolution`` points of [-1, 1], with
    ``P`` the projection onto B(x) (clipped to ``[x - eps, x + eps]`` and to [0, 1]), so every
    point lies in the ball and the centre is the clean image. The directions are sign vectors
    (the corners of the l_inf ball):

    * ``"random"``: ``u`` and ``v`` independent random signs from a generator seeded with ``seed``;
    * ``"gradient"``: ``u`` = the sign of the gradient of ``p_T[y] - p_S[y]`` at ``x`` for
      ``reference = (teacher, student)`` (two keys of ``models``; default: the first two), the
      direction in which that student falls behind the teacher fastest (FGSM on the gap; a zero
      gradient entry takes a random sign), ``v`` a seeded random sign vector.

    Returns ``{"coords": [a values], "confidence": {label: (R, R) array}, "prediction": {label:
    (R, R) int array}, "image": (H, W) or (H, W, C) float array, "eps", "label", "directions",
    "reference"}``; row ``i`` of an array is ``b = coords[i]``, column ``j`` is ``a = coords[j]``.
    Models run in eval mode on the device of the first one; nothing is trained.
    """
    import numpy as np

    if directions not in SLICE_DIRECTIONS:
        raise ValueError(f"confidence_slice: directions must be one of {SLICE_DIRECTIONS}, got {directions!r}")
    if len(models) < 1:
        raise ValueError("confidence_slice: no models")
    if not (isinstance(resolution, int) and resolution >= 2):
        raise ValueError(f"confidence_slice: resolution must be an int >= 2, got {resolution!r}")
    if not 0.0 <= float(eps) <= 1.0:
        raise ValueError(f"confidence_slice: eps must be in [0, 1] (pixel units), got {eps}")
    labels = list(models)
    first = models[labels[0]]
    dev, dtype = _device(first)
    xb = attacks._unit(x[None], dev, dtype)
    c = torch.tensor([int(y)], device=dev)
    g = torch.Generator(device="cpu").manual_seed(int(seed))

    def signs() -> Tensor:
        return (torch.randint(0, 2, xb.shape, generator=g, dtype=torch.int64) * 2 - 1).to(dev, dtype)

    if directions == "gradient":
        t_label, s_label = reference if reference is not None else (labels[0], labels[min(1, len(labels) - 1)])
        for k in (t_label, s_label):
            if k not in models:
                raise ValueError(f"confidence_slice: reference {k!r} is not one of the models {labels}")
        teacher, student = models[t_label], models[s_label]
        with evaluating(teacher), evaluating(student):
            xg = xb.clone().requires_grad_(True)
            gap = _prob(teacher, xg, c) - _prob(student, xg, c)
            (grad,) = torch.autograd.grad(gap.sum(), xg)
        u = torch.sign(grad)
        u = torch.where(u == 0, signs(), u)
        reference = (t_label, s_label)
    else:
        u, reference = signs(), None
    v = signs()
    coords = torch.linspace(-1.0, 1.0, resolution, device=dev, dtype=dtype)
    bb, aa = torch.meshgrid(coords, coords, indexing="ij")
    pts = xb + eps * (aa.reshape(-1, 1, 1, 1) * u + bb.reshape(-1, 1, 1, 1) * v)
    pts = torch.minimum(torch.maximum(pts, xb - eps), xb + eps).clamp(0.0, 1.0)
    conf, pred = {}, {}
    with torch.no_grad():
        for label, model in models.items():
            with evaluating(model):
                p = model(pts).softmax(1)
            conf[label] = p[:, int(y)].reshape(resolution, resolution).double().cpu().numpy()
            pred[label] = p.argmax(1).reshape(resolution, resolution).cpu().numpy()
    img = xb[0].detach().cpu().float().numpy()
    img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
    return {
        "coords": [float(a) for a in coords.cpu()],
        "confidence": conf,
        "prediction": pred,
        "image": img,
        "eps": float(eps),
        "label": int(y),
        "directions": directions,
        "reference": reference,
    }

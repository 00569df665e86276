"""Evaluation metrics for knowledge-distillation experiments.

Every function here is pure: it takes torch tensors (and, for the model-based
helpers, an ``nn.Module``), returns plain Python values or a CPU tensor, and
keeps no global state.  Functions that have to touch global state (the
model's train/eval mode, torch's global RNG) restore it before returning.

Notation used in the docstrings: ``N`` samples, ``K`` classes, logits
``z_i in R^K``, labels ``y_i``, ``p_i = softmax(z_i)``,
``yhat_i = argmax_k z_ik`` and ``c_i = max_k p_ik`` (the confidence).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..inputs.runtime import evaluating, match_memory_format

__all__ = [
    "ATTACKS",
    "accuracy",
    "agreement",
    "ece",
    "kl_teacher_student",
    "nll",
    "predict_logits",
    "rank_correlation",
    "rank_histogram",
    "reliability",
    "retention",
    "robust_accuracy",
    "robust_correct",
    "robustness_curves",
]

#: Attack names accepted by :func:`robust_accuracy`.
ATTACKS: tuple[str, ...] = ("fgsm", "pgd")


# ---------------------------------------------------------------------------
# input validation
# ---------------------------------------------------------------------------


def _check_logits(logits: Tensor, name: str = "logits") -> None:
    if logits.dim() != 2:
        raise ValueError(f"{name} must have shape (N, K), got {tuple(logits.shape)}")
    if logits.shape[0] == 0:
        raise ValueError(f"{name} is empty (N = 0)")


def _check_labels(logits: Tensor, y: Tensor) -> None:
    _check_logits(logits)
    if y.dim() != 1 or y.shape[0] != logits.shape[0]:
        raise ValueError(f"y must have shape ({logits.shape[0]},), got {tuple(y.shape)}")


def _check_pair(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    _check_logits(a, name_a)
    _check_logits(b, name_b)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _ratio(num: int, den: int) -> float:
    return num / den if den > 0 else float("nan")


# ---------------------------------------------------------------------------
# prediction metrics
# ---------------------------------------------------------------------------


def accuracy(logits: Tensor, y: Tensor) -> float:
    """Top-1 accuracy in [0, 1].

    ``acc = (1/N) * sum_i 1[argmax_k z_ik == y_i]``
    """
    _check_labels(logits, y)
    pred = logits.argmax(dim=1)
    return (pred == y.to(pred.device)).double().mean().item()


def nll(logits: Tensor, y: Tensor) -> float:
    """Mean negative log-likelihood (cross-entropy, natural log).

    ``NLL = -(1/N) * sum_i log softmax(z_i)[y_i]``
    """
    _check_labels(logits, y)
    logp = F.log_softmax(logits.double(), dim=1)
    return F.nll_loss(logp, y.to(logp.device).long()).item()


def reliability(logits: Tensor, y: Tensor, n_bins: int = 15) -> dict[str, list[Any]]:
    """Reliability-diagram statistics over equal-width confidence bins.

    The unit interval is split into ``n_bins`` bins
    ``B_b = (b/M, (b+1)/M]`` for ``b = 0..M-1`` (``M = n_bins``); the first
    bin also contains 0, and a confidence lying exactly on an edge goes to
    the bin whose *upper* edge it equals.  Sample ``i`` falls into the bin
    containing ``c_i = max_k softmax(z_i)_k``.  Per bin::

        count_b = |B_b|
        conf_b  = (1/|B_b|) * sum_{i in B_b} c_i
        acc_b   = (1/|B_b|) * sum_{i in B_b} 1[yhat_i == y_i]

    ``conf_b`` and ``acc_b`` are ``nan`` for an empty bin.

    Returns a dict of plain Python lists (length ``n_bins``) with keys
    ``bin_lower``, ``bin_upper``, ``confidence``, ``accuracy``, ``count``.
    """
    _check_labels(logits, y)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    probs = F.softmax(logits.double(), dim=1)
    conf, pred = probs.max(dim=1)
    correct = (pred == y.to(pred.device)).double()

    lower = [b / n_bins for b in range(n_bins)]
    upper = [(b + 1) / n_bins for b in range(n_bins)]
    # bucketize(right=False) returns the first b with upper[b] >= conf, i.e.
    # conf in (upper[b-1], upper[b]]; conf == 0 maps to bin 0.
    edges = torch.tensor(upper, dtype=torch.float64, device=conf.device)
    idx = torch.bucketize(conf, edges, right=False).clamp_(max=n_bins - 1)

    count = torch.bincount(idx, minlength=n_bins)
    conf_sum = torch.zeros(n_bins, dtype=torch.float64, device=conf.device)
    conf_sum.index_add_(0, idx, conf)
    acc_sum = torch.zeros(n_bins, dtype=torch.float64, device=conf.device)
    acc_sum.index_add_(0, idx, correct)

    counts = [int(c) for c in count.tolist()]
    confidence = [s / c if c > 0 else float("nan") for s, c in zip(conf_sum.tolist(), counts)]
    acc = [s / c if c > 0 else float("nan") for s, c in zip(acc_sum.tolist(), counts)]
    return {
        "bin_lower": lower,
        "bin_upper": upper,
        "confidence": confidence,
        "accuracy": acc,
        "count": counts,
    }


def ece(logits: Tensor, y: Tensor, n_bins: int = 15) -> float:
    """Expected calibration error (Guo et al., 2017).

    ``ECE = sum_b (n_b / N) * |acc_b - conf_b|`` over the bins of
    :func:`reliability` (empty bins contribute 0).
    """
    rel = reliability(logits, y, n_bins=n_bins)
    n = sum(rel["count"])
    total = 0.0
    for n_b, acc_b, conf_b in zip(rel["count"], rel["accuracy"], rel["confidence"]):
        if n_b > 0:
            total += (n_b / n) * abs(acc_b - conf_b)
    return total


# ---------------------------------------------------------------------------
# teacher-student metrics
# ---------------------------------------------------------------------------


def agreement(student_logits: Tensor, teacher_logits: Tensor) -> float:
    """Top-1 agreement between student and teacher.

    ``agree = (1/N) * sum_i 1[argmax_k s_ik == argmax_k t_ik]``
    """
    _check_pair(student_logits, teacher_logits, "student_logits", "teacher_logits")
    s = student_logits.argmax(dim=1)
    t = teacher_logits.argmax(dim=1).to(s.device)
    return (s == t).double().mean().item()


def kl_teacher_student(teacher_logits: Tensor, student_logits: Tensor, tau: float = 1.0) -> float:
    """Mean KL divergence from teacher to student at temperature ``tau``.

    ``KL = (1/N) * sum_i sum_k p_ik (log p_ik - log q_ik)`` with
    ``p_i = softmax(t_i / tau)`` and ``q_i = softmax(s_i / tau)``, computed
    from ``log_softmax`` for numerical stability.  Unlike the distillation
    loss, the result is *not* multiplied by ``tau**2``.
    """
    _check_pair(teacher_logits, student_logits, "teacher_logits", "student_logits")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    log_p = F.log_softmax(teacher_logits.double() / tau, dim=1)
    log_q = F.log_softmax(student_logits.double().to(log_p.device) / tau, dim=1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    return kl.mean().item()


def retention(teacher_logits: Tensor, student_logits: Tensor, y: Tensor) -> dict[str, float | int]:
    """Knowledge-retention rates of a student (Mishra & Sundaram, CCKD,
    arXiv:2107.06993).

    With ``T_w`` / ``T_r`` the samples the teacher gets wrong / right and
    ``S_w`` / ``S_r`` likewise for the student::

        mu_S = |T_w ∩ S_r| / |T_w|   (student fixes teacher errors; higher is better)
        mu_F = |T_r ∩ S_w| / |T_r|   (student breaks teacher successes; lower is better)

    A zero denominator yields ``nan``.  Returns
    ``dict(mu_s=..., mu_f=..., n_teacher_wrong=..., n_teacher_right=...)``.
    """
    _check_pair(teacher_logits, student_logits, "teacher_logits", "student_logits")
    _check_labels(teacher_logits, y)
    y = y.to(teacher_logits.device)
    t_right = teacher_logits.argmax(dim=1) == y
    s_right = student_logits.to(teacher_logits.device).argmax(dim=1) == y
    n_t_right = int(t_right.sum().item())
    n_t_wrong = int((~t_right).sum().item())
    fixed = int((~t_right & s_right).sum().item())
    broken = int((t_right & ~s_right).sum().item())
    return {
        "mu_s": _ratio(fixed, n_t_wrong),
        "mu_f": _ratio(broken, n_t_right),
        "n_teacher_wrong": n_t_wrong,
        "n_teacher_right": n_t_right,
    }


#: :func:`rank_correlation` never holds more than this many (row, class, class) comparisons at once
_RANK_MAX_ELEMENTS = 2**22


def _average_ranks(x: Tensor) -> Tensor:
    """Ranks 1..K of each row of ``x`` (N, K), ascending, ties sharing their average rank (float64).

    ``r_ik = #{j : x_ij < x_ik} + (#{j : x_ij = x_ik} + 1) / 2``; without ties ``1 + #{j : x_ij < x_ik}``.
    """
    k = x.shape[1]
    chunk = max(1, _RANK_MAX_ELEMENTS // max(1, k * k))
    out = torch.empty(x.shape, dtype=torch.float64, device=x.device)
    for s in range(0, x.shape[0], chunk):
        xc = x[s : s + chunk]
        less = (xc[:, None, :] < xc[:, :, None]).sum(dim=2)
        equal = (xc[:, None, :] == xc[:, :, None]).sum(dim=2)
        out[s : s + chunk] = less.double() + (equal.double() + 1.0) / 2.0
    return out


def rank_correlation(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Spearman correlation between the student's and the teacher's class ranking, per sample.

    For sample ``i`` with logits ``s_i`` and ``t_i`` (K classes)::

        rho_i = Pearson(rank(s_i), rank(t_i))

    with average ranks for ties (the textbook Spearman coefficient, as
    ``scipy.stats.spearmanr``); softmax at any temperature keeps the ranking, so
    logits and probabilities give the same value. ``rho_i`` is in [-1, 1]: 1 for the
    same ranking of the classes, -1 for the reversed one. A row whose logits are all equal
    has no ranking: its ``rho_i`` is 0 (scipy gives NaN). Rows are compared in chunks, so
    the memory is bounded whatever N (O(K^2) work per row). Returns a CPU float64 tensor (N,).

    The measurement behind CMKD's motivation [paper]: KL-based KD "may implicitly change
    the inter-class relationships learned by the student".
    """
    _check_pair(student_logits, teacher_logits, "student_logits", "teacher_logits")
    rs = _average_ranks(student_logits.detach().cpu())
    rt = _average_ranks(teacher_logits.detach().cpu())
    rs = rs - rs.mean(dim=1, keepdim=True)
    rt = rt - rt.mean(dim=1, keepdim=True)
    den = rs.norm(dim=1) * rt.norm(dim=1)
    num = (rs * rt).sum(dim=1)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num)).clamp(-1.0, 1.0)


def rank_histogram(rho: Tensor, bins: int = 40) -> dict[str, list[float] | list[int]]:
    """Histogram of per-sample correlations (e.g. :func:`rank_correlation`) over ``bins`` equal bins of [-1, 1].

    Bin ``b`` is ``[edge_b, edge_{b+1})``, the last one closed (1.0 goes to it), as
    ``numpy.histogram``. Returns ``{"edges": [bins + 1 floats], "counts": [bins ints]}``.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    v = rho.detach().double().cpu().flatten()
    if v.numel() and (v.min() < -1 or v.max() > 1 or torch.isnan(v).any()):
        raise ValueError("rank_histogram: values must lie in [-1, 1]")
    edges = torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64)
    idx = torch.bucketize(v, edges, right=True).sub_(1).clamp_(0, bins - 1)
    counts = torch.bincount(idx, minlength=bins)
    return {"edges": [round(float(e), 10) for e in edges], "counts": [int(c) for c in counts]}


# ---------------------------------------------------------------------------
# model-based helpers
# ---------------------------------------------------------------------------


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _model_float_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _to_unit_float(x: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
    """uint8 images -> [0, 1] floats (``x / 255``); floats are cast as is."""
    if x.dtype == torch.uint8:
        return x.to(device).to(dtype).div_(255.0)
    if not x.is_floating_point():
        raise TypeError(f"expected uint8 or floating-point images, got {x.dtype}")
    return x.to(device=device, dtype=dtype)


def predict_logits(
    model: nn.Module,
    x_uint8_or_float: Tensor,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Logits of ``model`` on a stack of images, as a CPU float32 tensor.

    ``x`` is ``(N, C, H, W)`` uint8 (scaled by ``1/255``) or float in
    ``[0, 1]``; the model is expected to do its own normalisation.  Runs in
    eval mode under ``torch.no_grad`` in batches of ``batch_size`` on
    ``device`` (default: the device of the model's first parameter; the model
    must already live there).  The model's train/eval mode is restored.
    ``batch_size=None`` picks 128 on the CPU (cache-sized: an AlexNet-Half pass
    over 5k CIFAR images took 1.6 s at 128 and 2.6 s at 1024 on 2 cores) and
    1024 elsewhere.
    """
    dev = torch.device(device) if device is not None else _model_device(model)
    if batch_size is None:
        batch_size = 128 if dev.type == "cpu" else 1024
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dtype = _model_float_dtype(model)
    x = x_uint8_or_float
    outs: list[Tensor] = []
    with evaluating(model), torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = match_memory_format(model, _to_unit_float(x[start : start + batch_size], dev, dtype))
            outs.append(model(xb).detach().float().cpu())
    if not outs:
        raise ValueError("x is empty (N = 0)")
    return torch.cat(outs, dim=0)


def _foolbox() -> Any:
    """Import foolbox lazily (it is only needed for the attacks), hiding the
    DeprecationWarnings its own imports trigger in recent SciPy versions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import foolbox

    return foolbox


def _make_attack(attack: str, steps: int, rel_stepsize: float | None) -> Any:
    foolbox = _foolbox()
    name = attack.lower() if isinstance(attack, str) else attack
    if name == "fgsm":
        return foolbox.attacks.FGSM()
    if name == "pgd":
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if rel_stepsize is None:
            rel_stepsize = 2.5 / steps
        return foolbox.attacks.LinfPGD(steps=steps, rel_stepsize=rel_stepsize, random_start=True)
    raise ValueError(f"unknown attack {attack!r}; valid choices are " + ", ".join(repr(a) for a in ATTACKS))


@contextmanager
def _seeded_rng(seed: int) -> Iterator[None]:
    """Seed torch's global RNGs (CPU and, if present, every CUDA device) and
    restore their previous states on exit."""
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield


def robust_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: str,
    epsilons: Sequence[float],
    *,
    steps: int = 10,
    rel_stepsize: float | None = None,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Tensor:
    """Which images stay correctly classified under an L-inf attack: a bool tensor of shape
    ``(len(epsilons), N)``, ``True`` where foolbox's attack at that epsilon does not succeed.

    The per-image record behind :func:`robust_accuracy` (its row means are the robust accuracies,
    computed by the same attack calls in the same order, so the same numbers): what a paired
    test-set interval of two models' robust accuracies needs
    (:func:`kdutils.report.evidence.two_noise_interval`). Arguments as :func:`robust_accuracy`.
    """
    attack_obj = _make_attack(attack, steps, rel_stepsize)
    foolbox = _foolbox()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    eps = [float(e) for e in epsilons]
    if any(e < 0 or math.isnan(e) for e in eps):
        raise ValueError(f"epsilons must be >= 0, got {eps}")
    n = x.shape[0]
    if n == 0:
        raise ValueError("x is empty (N = 0)")
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},), got {tuple(y.shape)}")
    if not eps:
        return torch.zeros(0, n, dtype=torch.bool)

    dev = torch.device(device) if device is not None else _model_device(model)
    dtype = _model_float_dtype(model)
    parts = []
    with evaluating(model), _seeded_rng(seed):
        fmodel = foolbox.PyTorchModel(model, bounds=(0, 1), device=dev)
        for start in range(0, n, batch_size):
            xb = _to_unit_float(x[start : start + batch_size], dev, dtype)
            yb = y[start : start + batch_size].to(dev).long()
            _, _, success = attack_obj(fmodel, xb, yb, epsilons=eps)
            # success: bool tensor of shape (len(eps), batch)
            parts.append(~success.cpu().bool())
    return torch.cat(parts, dim=1)


def robust_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: str,
    epsilons: Sequence[float],
    **kw: Any,
) -> list[float]:
    """Robust top-1 accuracy under an L-inf attack at each epsilon.

    Uses foolbox 3 on ``PyTorchModel(model, bounds=(0, 1))``; epsilons are in
    pixel units of ``[0, 1]`` inputs (``x`` may be uint8, scaled by
    ``1/255``, or float in ``[0, 1]``).  ``attack`` is ``"fgsm"``
    (``FGSM()``) or ``"pgd"`` (``LinfPGD(steps, rel_stepsize,
    random_start=True)``; ``rel_stepsize`` defaults to ``2.5 / steps``, so
    the total step length is ``2.5 * eps`` as in Madry et al. 2018).

    For each epsilon::

        robust_acc(eps) = 1 - (1/N) * sum_i success_i(eps)

    where foolbox's ``success_i`` is true when the perturbed input
    ``x_i'`` with ``||x_i' - x_i||_inf <= eps`` is misclassified; a clean
    misclassification is therefore a success, and ``robust_acc(0)`` is the
    clean accuracy.

    Torch's global RNG is seeded with ``seed`` for the attack (PGD's random
    start) and its previous state is restored afterwards.  The model is put
    in eval mode (restored afterwards) and, as foolbox does, moved to
    ``device`` (default: the device of its first parameter). Keyword
    arguments (``steps``, ``rel_stepsize``, ``batch_size``, ``seed``,
    ``device``) as :func:`robust_correct`, whose per-image record this
    averages.
    """
    correct = robust_correct(model, x, y, attack, epsilons, **kw)
    n = correct.shape[1]
    return [1.0 - s / n for s in (~correct).sum(dim=1).tolist()]


def robustness_curves(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    epsilons: Sequence[float],
    attacks: Sequence[str] = ATTACKS,
    **kw: Any,
) -> dict[str, list[float]]:
    """Robust accuracy curves ``{attack: [robust_acc(eps) for eps in
    epsilons]}``; see :func:`robust_accuracy` for ``**kw``."""
    return {a: robust_accuracy(model, x, y, a, epsilons, **kw) for a in attacks}

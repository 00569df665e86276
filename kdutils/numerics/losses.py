"""Distillation losses as pure tensor functions, one value per sample.

Notation: ``z_s`` student logits (B, C), ``z_t`` teacher logits (B, C), ``y`` int64
labels (B,), ``tau`` the temperature. Every function returns a (B,) tensor; the
trainer reduces it (a weighted mean over the samples that take part), so a gate or a
per-sample weight never needs a loss of its own.

The correlation losses of DIST and CMKD (Pearson, soft ranks, Spearman, difficulty weights and
DIST's batch-level intra-class term) are in :mod:`kdutils.correlation`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(z_s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy with the hard label.

    ``l_i = -log softmax(z_s[i])[y_i]``.
    """
    return F.cross_entropy(z_s, y, reduction="none")


def soft_cross_entropy(z_s: torch.Tensor, target: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Per-sample cross-entropy against a soft target distribution.

    ``l_i = -sum_c target[i, c] log softmax(z_s[i] / tau)[c]``.
    """
    return -(target * F.log_softmax(z_s / tau, dim=1)).sum(dim=1)


def kd_kl(z_s: torch.Tensor, z_t: torch.Tensor, tau: float = 4.0, scale: bool = True) -> torch.Tensor:
    """Hinton et al. (2015, "Distilling the Knowledge in a Neural Network") soft term.

    ``l_i = tau^2 * KL(p_T || p_S)`` with ``p_T = softmax(z_t / tau)``,
    ``p_S = softmax(z_s / tau)``; the ``tau^2`` factor (``scale=True``) keeps the
    gradient's size independent of tau, as the paper recommends. The teacher's side
    carries no gradient.
    """
    log_p_s = F.log_softmax(z_s / tau, dim=1)
    log_p_t = F.log_softmax(z_t.detach() / tau, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    return kl * (tau * tau) if scale else kl


def kd_loss(
    z_s: torch.Tensor,
    z_t: torch.Tensor,
    y: torch.Tensor,
    tau: float = 4.0,
    ce_weight: float = 0.1,
    kd_weight: float = 0.9,
) -> torch.Tensor:
    """Hinton KD per sample: ``ce_weight * CE(y, z_s) + kd_weight * tau^2 KL(p_T || p_S)``.

    Defaults (tau 4, weights 0.1 / 0.9) are this project's KD baseline (cckd.md).
    """
    return ce_weight * cross_entropy(z_s, y) + kd_weight * kd_kl(z_s, z_t, tau)


# ---------------------------------------------------------------- confidence conditioned KD
# Mishra and Sundaram, "Confidence Conditioned Knowledge Distillation", arXiv 2107.06993 (2021).


def teacher_confidence(z_t: torch.Tensor, y: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """CCKD's per-sample weight ``lambda_i = softmax(z_t[i] / tau)[y_i]`` (detached), in [0, 1].

    [paper, Fig. 1 and Algorithm 1, lines 5 and 8] lambda = y . y_T with y_T = softmax(z_T / tau),
    the teacher's tempered probability on the true class: the methods pass their own tau by
    default. Read at tau = 1 it is the public re-implementation's choice (an ablation).
    """
    return F.softmax(z_t.detach() / tau, dim=1).gather(1, y[:, None]).squeeze(1)


def cckd_l_loss(
    z_s: torch.Tensor,
    z_t: torch.Tensor,
    y: torch.Tensor,
    lam: torch.Tensor,
    tau: float = 4.0,
    kd_scale: float | None = None,
) -> torch.Tensor:
    """CCKD-L, the sample-specific loss [paper, Fig. 1c and Algorithm 1]:

    ``l_i = lambda_i * kd_scale * KL(p_T || p_S) + (1 - lambda_i) * CE(y_i, z_S)``

    with ``p = softmax(z / tau)``. ``kd_scale`` [ours] defaults to Hinton's ``tau^2``; 1 keeps the
    lambda / (1 - lambda) balance of Fig. 1c literal. The CE term is on the untempered logits
    [ours; Algorithm 1 writes L_CE(y, y_S) with the tempered y_S]. lambda = 1 gives the KD term
    alone, lambda = 0 plain cross-entropy.
    """
    scale = tau * tau if kd_scale is None else kd_scale
    return lam * scale * kd_kl(z_s, z_t, tau, scale=False) + (1.0 - lam) * cross_entropy(z_s, y)


def cckd_t_target(z_t: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, tau: float = 4.0) -> torch.Tensor:
    """CCKD-T's sample-specific target [paper, eqs. 4-6]:

    ``t_i = lambda_i * softmax(z_t[i] / tau) + (1 - lambda_i) * onehot(y_i)``, renormalised to
    sum to 1 (it already does up to rounding). Detached.
    """
    p_t = F.softmax(z_t.detach() / tau, dim=1)
    onehot = F.one_hot(y, p_t.shape[1]).to(p_t.dtype)
    t = lam[:, None] * p_t + (1.0 - lam[:, None]) * onehot
    return t / t.sum(dim=1, keepdim=True)


def kl_to_target(z_s: torch.Tensor, target: torch.Tensor, tau: float = 4.0, scale: bool = True) -> torch.Tensor:
    """``tau^2 KL(target || softmax(z_s / tau))`` per sample, for any target distribution
    (zeros allowed: 0 log 0 = 0). With ``target = softmax(z_t / tau)`` this is :func:`kd_kl`."""
    log_p_s = F.log_softmax(z_s / tau, dim=1)
    kl = (torch.xlogy(target, target) - target * log_p_s).sum(dim=1)
    return kl * (tau * tau) if scale else kl


# ---------------------------------------------------------------- label revision
# Lan, Cheung, et al., "Improve Knowledge Distillation via Label Revision and Data Selection",
# arXiv 2404.03693 (2024); spec papers/label_revision.md. No official code; the public
# re-implementation of LR is GitHub zju-SWJ/RLD, mdistiller/distillers/REVISION.py.


def revision_beta(p_t: torch.Tensor, y: torch.Tensor, eta: float = 0.8) -> torch.Tensor:
    """LR's per-sample mixing weight [public, spec]: ``beta_i = eta / (p_T[i, max] - p_T[i, y_i] + 1)``.

    ``p_t`` (B, C) teacher probabilities. ``beta = eta`` where the teacher's top class is the label
    (p_T[max] = p_T[y]); smaller the more the teacher prefers a wrong class. Detached.
    """
    p_t = p_t.detach()
    gap = p_t.max(dim=1).values - p_t.gather(1, y[:, None]).squeeze(1)
    return eta / (gap + 1.0)


def revised_target(z_t: torch.Tensor, y: torch.Tensor, eta: float = 0.8, tau: float = 1.0) -> torch.Tensor:
    """LR's revised target [public, spec]: ``p~ = beta p_T + (1 - beta) onehot(y)``, with
    ``p_T = softmax(z_t / tau)`` and beta from :func:`revision_beta`. Detached, (B, C).

    A distribution (a convex mix of two). For 0 < eta < 1 the label is its top class: for a
    wrong teacher (argmax m != y) ``p~[y] > p~[m]`` exactly when ``beta (p_T[m] - p_T[y] + 1) < 1``,
    i.e. eta < 1; the teacher's order of the other classes is kept (one positive factor beta).
    ``tau = 1`` is the re-implementation's reading; the ``kl`` form revises at its KL temperature.
    """
    p_t = F.softmax(z_t.detach() / tau, dim=1)
    beta = revision_beta(p_t, y, eta)[:, None]
    onehot = F.one_hot(y, p_t.shape[1]).to(p_t.dtype)
    return beta * p_t + (1.0 - beta) * onehot


def teacher_wrong(z_t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the teacher's top class is not the label (LR's split of the batch)."""
    return z_t.detach().argmax(dim=1) != y


def lr_mse_loss(
    z_s: torch.Tensor,
    z_t: torch.Tensor,
    y: torch.Tensor,
    eta: float = 0.8,
    lambda1: float = 4.0,
    lambda2: float = 1.0,
) -> torch.Tensor:
    """LR's loss in the public re-implementation's ``mse`` form, per sample [public, spec]:

    * teacher right (argmax z_T = y): ``l_i = CE(z_S, y) + lambda1 mean_c (z_S - z_T)^2`` (logits);
    * teacher wrong: ``l_i = lambda2 mean_c (softmax(z_S) - p~)^2`` with p~ = :func:`revised_target`
      at tau = 1; no CE.

    The means over classes are ``F.mse_loss``'s element means. [ours] The batch loss is the
    trainer's mean of l_i over the batch; the re-implementation instead adds the mean over the
    right samples to the mean over the wrong ones (each group's terms scaled by B / n_group).
    """
    wrong = teacher_wrong(z_t, y)
    ce = cross_entropy(z_s, y)
    mse_logits = (z_s - z_t.detach()).pow(2).mean(dim=1)
    mse_revised = (F.softmax(z_s, dim=1) - revised_target(z_t, y, eta)).pow(2).mean(dim=1)
    return torch.where(wrong, lambda2 * mse_revised, ce + lambda1 * mse_logits)


def lr_kl_loss(
    z_s: torch.Tensor,
    z_t: torch.Tensor,
    y: torch.Tensor,
    eta: float = 0.8,
    tau: float = 4.0,
    ce_weight: float = 0.1,
    kd_weight: float = 0.9,
) -> torch.Tensor:
    """LR's ``kl`` form [ours, spec]: Hinton KD with p~ in place of p_T on the samples the
    teacher gets wrong, per sample

    ``l_i = ce_weight CE(y_i, z_S) + kd_weight tau^2 KL(t_i || softmax(z_S / tau))``,
    ``t_i = softmax(z_T / tau)`` where the teacher is right, ``t_i = p~_i`` (:func:`revised_target`
    at the same tau) where it is wrong. CE on every sample, as in KD.
    """
    p_t = F.softmax(z_t.detach() / tau, dim=1)
    target = torch.where(teacher_wrong(z_t, y)[:, None], revised_target(z_t, y, eta, tau), p_t)
    return ce_weight * cross_entropy(z_s, y) + kd_weight * kl_to_target(z_s, target, tau)


def revised_logits(z_t: torch.Tensor, y: torch.Tensor, eta: float = 0.8, tau: float = 1.0) -> torch.Tensor:
    """Teacher logits whose tempered softmax is LR's revised target where the teacher is wrong
    [ours]: ``tau log p~`` there (so ``softmax(. / tau) = p~``), ``z_t`` unchanged where it is right.

    How LR revises the targets of any method that reads teacher logits (KD, CCKD, DIST, CMKD):
    :class:`kdutils.methods.label_revision.LabelRevision` with ``inner``. p~ > 0 everywhere
    (a softmax mixed with a one-hot); a probability that underflowed to 0 is read as the smallest
    positive float, so the logits stay finite. Detached.
    """
    z_t = z_t.detach()
    p_rev = revised_target(z_t, y, eta, tau)
    z_rev = tau * torch.log(p_rev.clamp_min(torch.finfo(p_rev.dtype).tiny))  # a softmax may underflow to 0
    return torch.where(teacher_wrong(z_t, y)[:, None], z_rev.to(z_t.dtype), z_t)


# ---------------------------------------------------------------- robust and faithful distillation
# faithful.md: robust teachers (IBP training, PGD adversarial training), the adversarial
# distillation baselines ARD and RSLAD, and faithful distillation's gap term. The adversarial
# points and the interval bounds are computed by the methods (kdutils.attacks, kdutils.ibp);
# these functions only combine logits and probabilities.


def linear_ramp(progress: float, warmup: float, ramp: float) -> float:
    """The IBP schedule's ramp factor r(t) in [0, 1] at training progress ``t`` in [0, 1]:

    ``r(t) = 0`` for ``t < warmup``, ``min(1, (t - warmup) / ramp)`` after (1 at once when
    ``ramp = 0``). Gowal et al. 2018 [public]: a warm-up at eps = 0, then eps ramped linearly
    to eps_train (and kappa from 1 to kappa_final) over a ramp, then held.
    """
    if progress < warmup:
        return 0.0
    if ramp <= 0:
        return 1.0
    return min(1.0, (progress - warmup) / ramp)


def ibp_loss(z: torch.Tensor, z_worst: torch.Tensor, y: torch.Tensor, kappa: float) -> torch.Tensor:
    """IBP training (Gowal et al. 2018, eq. 7) [public]:

    ``l_i = kappa CE(z_i, y_i) + (1 - kappa) CE(z_worst_i, y_i)``

    with ``z`` the clean logits and ``z_worst = -lower(z_y - z_j)`` the worst-case logits over
    the eps-ball (:func:`kdutils.ibp.worst_case_logits`).
    """
    return kappa * cross_entropy(z, y) + (1.0 - kappa) * cross_entropy(z_worst, y)


def ard_loss(
    z_s_adv: torch.Tensor, z_s: torch.Tensor, z_t: torch.Tensor, y: torch.Tensor, tau: float = 30.0, alpha: float = 1.0
) -> torch.Tensor:
    """ARD (Goldblum et al. 2020, "Adversarially Robust Distillation") per sample:

    ``l_i = alpha tau^2 KL(softmax(z_t / tau) || softmax(z_s_adv / tau)) + (1 - alpha) CE(z_s_i, y_i)``

    ``z_s_adv`` the student on its PGD point, ``z_t`` the teacher on the clean input, ``z_s`` the
    student on the clean input. [public, ARD's ``main.py``: tau 30, alpha 1.0 by default; its
    ``nn.KLDivLoss()`` averages over batch and classes, a further factor 1/classes that we do
    not apply: the KL is summed over classes, as in :func:`kd_kl`.]
    """
    return alpha * kd_kl(z_s_adv, z_t, tau) + (1.0 - alpha) * cross_entropy(z_s, y)


def rslad_loss(
    z_s_adv: torch.Tensor, z_s: torch.Tensor, z_t: torch.Tensor, tau: float = 1.0, adv_weight: float = 5 / 6
) -> torch.Tensor:
    """RSLAD (Zi et al. 2021, "Revisiting Adversarial Robustness Distillation: Robust Soft Labels
    Make Student Better") per sample, the teacher's clean soft labels as the only target:

    ``l_i = 5/6 KL(p_T(x) || p_S(x_adv)) + 1/6 KL(p_T(x) || p_S(x))``, ``p = softmax(z / tau)``

    (``adv_weight`` = 5/6). faithful.md writes the pair as KL(S(x_adv) || T(x)); the public code
    [public, RSLAD's training scripts] computes ``-sum p_T log p_S`` (the KL from p_T up to p_T's
    entropy, which has no student gradient) at tau = 1 without a tau^2 factor, averaged over
    batch and classes (a factor 1/classes we do not apply). So: KL(p_T || p_S), summed over
    classes, no tau^2.
    """
    return adv_weight * kd_kl(z_s_adv, z_t, tau, scale=False) + (1.0 - adv_weight) * kd_kl(z_s, z_t, tau, scale=False)


def faithful_gap(
    pt_upper: torch.Tensor, ps_lower: torch.Tensor, ps_upper: torch.Tensor, pt_lower: torch.Tensor
) -> torch.Tensor:
    """Faithful distillation's gap term (faithful.md [ours]) per sample:

    ``relu(UB[p_T[c]] - LB[p_S[c]]) + relu(UB[p_S[c]] - LB[p_T[c]])``

    for the probabilities of class c (the true class) over the eps-ball: upper bounds of the
    two signed confidence gaps Delta+ (student under-confident) and Delta-. With IBP bounds the
    sum is an upper bound on ``max |p_T[c] - p_S[c]|`` over the ball; at eps = 0 it is
    ``|p_T[c](x) - p_S[c](x)|``. The PGD variant passes the probabilities at the PGD points of
    each sign instead (``UB[p_T] -> p_T(x+)``, ``LB[p_S] -> p_S(x+)``, ...), an estimate from below.
    """
    return torch.relu(pt_upper - ps_lower) + torch.relu(ps_upper - pt_lower)


def faithful_loss(
    z_s: torch.Tensor,
    z_t: torch.Tensor,
    y: torch.Tensor,
    gap: torch.Tensor,
    mu: float,
    tau: float = 4.0,
    ce_weight: float = 0.1,
    kd_weight: float = 0.9,
) -> torch.Tensor:
    """Faithful distillation (faithful.md [ours]): ``l_i = KD(z_s, z_t, y) + mu * gap_i`` with
    :func:`kd_loss` (this project's KD baseline) and ``gap`` from :func:`faithful_gap`."""
    return kd_loss(z_s, z_t, y, tau, ce_weight, kd_weight) + mu * gap

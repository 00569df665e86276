"""CMKD: correlation matching KD from a stronger teacher (Niu, Wang, Cai, Hou, arXiv 2410.06561).

No code and no numbers are public; the parts are the paper's [paper] (Pearson and Spearman
correlation losses, weighted per sample by difficulty, a differentiable sort for the ranks), the
exact forms this project's [ours] (``docs/papers/cmkd.md``). Losses in :mod:`kdutils.correlation`.

**On top of another method** ("CMKD works with other KD methods" [paper]): CMKD is a wrapper
whose ``inner`` method's per-sample loss takes the place of the cross-entropy. ``inner`` is
``"ce"`` by default (CMKD itself); ``{"name": "cmkd", "inner": "kd"}``, or the suffix form
``"kd+cmkd"`` (as ``"kd+sr"``), adds the CMKD terms to KD; ``"cckd_l+cmkd"`` to CCKD-L;
``"kd+cmkd+sr"`` gates the sum with self-regulation. The inner method's mask, weight (which
then applies to the whole per-sample loss), reduction and parts are kept; its batch term, if it
has one, is added to CMKD's. The inner method's parameters are part of the run key
(``params()["inner"]``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from ..core.errors import UnknownNameError
from ..numerics import correlation as corrloss
from .base import Batch, BatchTerm, Entry, Terms, Wrapper, create_method, register_method
from .dist import dist_intra

#: the difficulty measures, the weighting schemes and the correlation terms CMKD accepts
DIFFICULTIES = ("teacher_entropy", "teacher_miss", "student_entropy")
WEIGHTINGS = ("dynamic", "constant", "reversed")
CORRELATIONS = ("both", "pearson", "spearman")


def _normalised_entropy(z: torch.Tensor, tau: float) -> torch.Tensor:
    p = corrloss.tempered(z.detach(), tau)
    c = p.shape[1]
    if c < 2:
        return torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
    return (-torch.xlogy(p, p).sum(dim=1) / math.log(c)).clamp(0.0, 1.0)


def difficulty(
    z_t: torch.Tensor,
    y: torch.Tensor | None = None,
    kind: str = "teacher_entropy",
    *,
    z_s: torch.Tensor | None = None,
    tau: float = 1.0,
) -> torch.Tensor:
    """Per-sample difficulty ``d_i`` in [0, 1], detached [ours; CMKD weights by "sample difficulty" [paper]]:

    * ``"teacher_entropy"`` (default): ``H(p_T) / log C``, the teacher's normalised entropy;
    * ``"teacher_miss"``: ``1 - p_T[y]``, the teacher's probability off the true class;
    * ``"student_entropy"``: ``H(p_S) / log C`` (needs ``z_s``).

    ``p = softmax(z / tau)`` with ``tau`` = 1 by default (the models' own predictions). An
    unknown ``kind`` raises an error naming the valid ones.

    Usage: ``correlation_weights(difficulty(z_t))``; as a method, ``create_method("cmkd")``.
    """
    if kind == "teacher_entropy":
        return _normalised_entropy(z_t, tau)
    if kind == "teacher_miss":
        if y is None:
            raise ValueError("difficulty 'teacher_miss' needs the labels y")
        return (1.0 - corrloss.tempered(z_t.detach(), tau).gather(1, y[:, None]).squeeze(1)).clamp(0.0, 1.0)
    if kind == "student_entropy":
        if z_s is None:
            raise ValueError("difficulty 'student_entropy' needs the student logits z_s")
        return _normalised_entropy(z_s, tau)
    raise UnknownNameError("CMKD difficulty", kind, DIFFICULTIES)


def correlation_weights(d: torch.Tensor, scheme: str = "dynamic") -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_P, w_S)`` from the difficulty ``d`` (B,) [ours]: hard samples lean on the ranks.

    * ``"dynamic"`` (default): ``w_S = d``, ``w_P = 1 - d``;
    * ``"reversed"``: ``w_S = 1 - d``, ``w_P = d``;
    * ``"constant"``: ``w_S = w_P = 1/2`` (ablates the dynamic weighting).
    """
    d = d.detach()
    if scheme == "dynamic":
        return 1.0 - d, d
    if scheme == "reversed":
        return d, 1.0 - d
    if scheme == "constant":
        half = torch.full_like(d, 0.5)
        return half, half
    raise UnknownNameError("CMKD weights", scheme, WEIGHTINGS)


def _gated(term: BatchTerm | None, mask: torch.Tensor) -> torch.Tensor | None:
    """An inner method's batch term over ``mask``: a callable is called; a tensor only when every row takes part."""
    if term is None:
        return None
    if callable(term):
        return term(mask)
    if bool(mask.all()):
        return term
    raise ValueError(
        "the inner method's batch-level term is a tensor and cannot be gated to the rows that take part; "
        "return Terms(batch=lambda mask: ...) computing it over the masked rows"
    )


@register_method("cmkd")
@dataclass
class CMKD(Wrapper):
    """``l_i = inner_i + lam tau^2 (w_P,i Lp_i + w_S,i Ls_i)`` per sample, plus the batch term
    ``lam L_intra`` over the rows that take part [ours, the spec's total
    ``CE + lam tau^2 mean_i (w_P Lp_i + w_S Ls_i) + lam L_intra``, lam = 2 as DIST]:

    * ``Lp_i = 1 - rho(P_S[i], P_T[i])``: DIST's inter-class Pearson term [public];
    * ``Ls_i = 1 - rho(soft ranks of z_S[i] / tau, hard ranks of z_T[i])``: the Spearman term,
      soft rank with sharpness ``kappa`` (:func:`kdutils.correlation.spearman_distance`) [ours];
    * ``L_intra``: DIST's intra-class term (tau^2 included), ``intra=False`` drops it;
    * ``w_S = d_i``, ``w_P = 1 - d_i`` with the detached difficulty ``d_i`` in [0, 1]
      (``difficulty``: ``"teacher_entropy"`` H(p_T) / log C, default; ``"teacher_miss"``
      1 - p_T[y]; ``"student_entropy"``; read at ``difficulty_tau``, 1 by default) [ours].

    Ablations: ``correlation="pearson"`` or ``"spearman"`` keeps one part with weight 1 (then
    ``weights`` plays no role; ``correlation="pearson"`` with the defaults is DIST exactly);
    ``weights="constant"`` (1/2 each) or ``"reversed"`` (w_S = 1 - d); ``standardise=True``
    z-scores both models' logits before the softmax and the ranks (the difficulty reads the raw
    logits). ``inner``: the method whose per-sample loss replaces CE (module docstring).

    Parts (means in the history): ``pearson`` Lp, ``spearman`` Ls (when used), ``difficulty`` d,
    ``intra`` ``1 - mean_j rho_j`` over the whole batch (a diagnostic, before any gate; without
    tau^2), and the inner method's parts (``ce`` for the default).
    """

    leaderboard = (Entry("CMKD", "cmkd", source="[paper] Niu et al. 2024 (notebook 02)"),)

    inner: Any = "ce"
    tau: float = 4.0
    lam: float = 2.0
    correlation: str = "both"
    weights: str = "dynamic"
    intra: bool = True
    kappa: float = 1.0
    standardise: bool = False
    difficulty: str = "teacher_entropy"
    difficulty_tau: float = 1.0

    def __post_init__(self) -> None:
        if self.correlation not in CORRELATIONS:
            raise UnknownNameError("CMKD correlation", self.correlation, CORRELATIONS)
        if self.weights not in WEIGHTINGS:
            raise UnknownNameError("CMKD weights", self.weights, WEIGHTINGS)
        if self.difficulty not in DIFFICULTIES:
            raise UnknownNameError("CMKD difficulty", self.difficulty, DIFFICULTIES)
        if self.kappa <= 0:
            raise ValueError(f"CMKD kappa must be positive, got {self.kappa}")
        self.inner = create_method(self.inner)

    @property
    def needs_teacher(self) -> bool:  # type: ignore[override]
        return True

    def __call__(self, b: Batch) -> Terms:
        terms = self.inner(b)
        z_s, z_t = b.logits, b.teacher_logits
        d = difficulty(z_t, b.y, self.difficulty, z_s=z_s, tau=self.difficulty_tau)
        zs_c, zt_c = (corrloss.standardise(z_s), corrloss.standardise(z_t)) if self.standardise else (z_s, z_t)
        lp = corrloss.pearson_distance(zs_c, zt_c, self.tau)
        parts = {**terms.parts, "pearson": lp.detach(), "difficulty": d}
        if self.correlation == "pearson":
            corr = lp
        else:
            ls = corrloss.spearman_distance(zs_c, zt_c, self.tau, self.kappa)
            parts["spearman"] = ls.detach()
            if self.correlation == "spearman":
                corr = ls
            else:
                w_p, w_s = correlation_weights(d, self.weights)
                corr = w_p * lp + w_s * ls
        per = terms.per_sample + self.lam * self.tau * self.tau * corr

        inner_batch = terms.batch
        if self.intra:
            with torch.no_grad():
                parts["intra"] = dist_intra(zs_c, zt_c, self.tau) / (self.tau * self.tau)

        def batch(mask: torch.Tensor) -> torch.Tensor:
            out = _gated(inner_batch, mask)
            if self.intra:
                own = self.lam * dist_intra(zs_c[mask], zt_c[mask], self.tau)
                out = own if out is None else out + own
            return out if out is not None else per.new_zeros(())

        has_batch = self.intra or inner_batch is not None
        return dataclasses.replace(terms, per_sample=per, batch=batch if has_batch else None, parts=parts)

"""LR: label revision (Lan, Cheung, et al., arXiv 2404.03693, 2024; spec ``docs/papers/label_revision.md``).

Where the teacher is wrong, its target is revised towards the label before the student learns
from it: ``p~ = beta p_T + (1 - beta) y`` with ``beta = eta / (p_T[max] - p_T[y] + 1)``
(:func:`kdutils.revised_target`) [public: a consistent summary and the re-implementation
in GitHub zju-SWJ/RLD, ``mdistiller/distillers/REVISION.py``; the paper's exact loss is unknown].

One registered method, ``lr``, in two uses:

* **LR's own loss** (``inner=None``, the default), in one of two forms:

  - ``form="mse"`` [public, the re-implementation]: teacher right, ``CE + lambda1 MSE(z_S, z_T)``
    on logits; teacher wrong, ``lambda2 MSE(softmax(z_S), p~)``, no CE; lambda1 = 4,
    lambda2 = 1, eta = 0.8 (:func:`lr_mse_loss`); the batch's loss the mean over the right rows
    plus the mean over the wrong ones, as RLD averages them (``average="groups"``, :func:`group_weights`;
    ``average="batch"``: one mean over the batch [ours, an ablation]);
  - ``form="kl"`` [ours]: KD (``0.1 CE + 0.9 tau^2 KL`` at tau = 4) with p~ in place of p_T on
    the wrong samples (:func:`kdutils.lr_kl_loss`).

* **Revising another method's targets** (``inner`` a method spec; the suffix form ``"kd+lr"``
  is ``{"name": "lr", "inner": "kd"}``): the inner method runs on the batch with its teacher
  logits replaced, on the samples the teacher gets wrong, by ``tau log p~``
  (:func:`kdutils.revised_logits`), so every teacher distribution the inner method forms
  at its temperature tau is exactly p~ there; rows the teacher gets right are untouched. One
  mechanism for every method that reads ``Batch.teacher_logits``: ``"kd+lr"`` (the same loss as
  ``form="kl"`` up to rounding), ``"cckd_l+lr"`` / ``"cckd_t+lr"`` (CCKD's lambda is then read
  from p~ too: the revised teacher's confidence), ``"dist+lr"``, ``"kd+cmkd+lr"`` (Pearson on
  p~, ranks of p~, whose top is the label; difficulty from p~). p~ is formed at ``revise_tau``,
  by default the inner method's ``tau`` (1 when it has none) [ours]. ``+lr`` revises what is
  inside it: ``"kd+lr+cmkd"`` would revise KD's target but not CMKD's, so put ``+lr`` after the
  methods it revises and before a gate (``"kd+lr+sr"``). The inner method's mask, weight,
  reduction, batch term and parts are kept.

Parts (history means): ``lr_wrong`` (share of samples the teacher gets wrong), ``lr_beta``
(beta; eta where the teacher is right) and, for LR's own loss, ``lr`` (the per-sample loss).
The run key holds only the parameters in use: ``form`` with its weights without ``inner``,
``inner`` with ``eta`` and ``revise_tau`` with it (a parameter that does not apply is an error).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..core.errors import UnknownNameError
from ..numerics import losses
from .base import Batch, Entry, EpochEnd, Method, Terms, Wrapper, create_method, register_method

FORMS = ("mse", "kl")
#: how the ``mse`` form averages its batch: ``groups`` [public, RLD]: the mean over the rows the
#: teacher gets right plus the mean over those it gets wrong; ``batch`` [ours, an ablation]: one mean
#: per sample over the batch, which weighs the wrong rows' term by their share of the batch
AVERAGES = ("groups", "batch")
_OWN = {"mse": ("lambda1", "lambda2", "average"), "kl": ("tau", "ce_weight", "kd_weight")}


def group_weights(wrong: torch.Tensor) -> torch.Tensor:
    """(B,) weights that turn the trainer's mean over the batch into RLD's sum of two group means:
    ``B / n_right`` on the rows the teacher gets right, ``B / n_wrong`` on the others [public, RLD's
    ``REVISION.py``: each group's loss is averaged over its own rows]. A group absent from the batch
    adds nothing."""
    n = wrong.numel()
    n_wrong = wrong.sum()
    n_right = n - n_wrong
    w_wrong = n / n_wrong.clamp_min(1)
    w_right = n / n_right.clamp_min(1)
    return torch.where(wrong, w_wrong, w_right).to(torch.float32)


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

    The means over classes are ``F.mse_loss``'s element means. The batch's loss: as the
    re-implementation averages it, the mean over the right samples plus the mean over the wrong
    ones (the method weighs l_i by :func:`group_weights`, B / n_group); ``average="batch"`` [ours,
    an ablation] takes one mean over the batch instead.

    Usage: ``(group_weights(teacher_wrong(z_t, y)) * lr_mse_loss(z_s, z_t, y)).mean()``; as a method, ``create_method("lr", form="mse")``.
    """
    wrong = teacher_wrong(z_t, y)
    ce = losses.cross_entropy(z_s, y)
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

    Usage: ``lr_kl_loss(z_s, z_t, y, tau=4.0).mean()``; as a method, ``create_method("lr", form="kl")``.
    """
    p_t = F.softmax(z_t.detach() / tau, dim=1)
    target = torch.where(teacher_wrong(z_t, y)[:, None], revised_target(z_t, y, eta, tau), p_t)
    return ce_weight * losses.cross_entropy(z_s, y) + kd_weight * losses.kl_to_target(z_s, target, tau)


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


@register_method("lr")
@dataclass
class LabelRevision(Wrapper):
    """Label revision: LR's own loss (``inner=None``) or another method's targets revised (module docstring)."""

    leaderboard = (
        Entry(
            "KD+LR", {"name": "lr", "form": "kl"}, source="[paper] Lan et al. 2024: KD on revised targets (notebook 05)"
        ),
        Entry("RLD loss (MSE form)", {"name": "lr", "form": "mse"}, source="[public] RLD's code (notebook 05)"),
    )

    inner: Any = None
    form: str = "mse"
    eta: float = 0.8
    lambda1: float = 4.0
    lambda2: float = 1.0
    tau: float = 4.0
    ce_weight: float = 0.1
    kd_weight: float = 0.9
    revise_tau: float | None = None
    average: str = "groups"

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise UnknownNameError("LR form", self.form, FORMS)
        if self.average not in AVERAGES:
            raise UnknownNameError("LR average", self.average, AVERAGES)
        if not 0.0 < float(self.eta) < 1.0:
            raise ValueError(f"LR eta must be in (0, 1) (the label stays on top only then), got {self.eta!r}")
        if self.inner is not None:
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            unused = [k for k in ("form", *_OWN["mse"], *_OWN["kl"]) if getattr(self, k) != defaults[k]]
            if unused:
                raise ValueError(
                    f"LR parameters {unused} apply to LR's own loss (inner=None) only; with inner the "
                    "inner method's loss is used on revised targets (parameters: eta, revise_tau)"
                )
            self.inner = create_method(self.inner)
        elif self.revise_tau is not None:
            raise ValueError("LR revise_tau applies with inner=... only; LR's own forms fix their temperature")
        if self.revise_tau is not None and self.revise_tau <= 0:
            raise ValueError(f"LR revise_tau must be positive, got {self.revise_tau}")

    # ---------------------------------------------------------------- the Wrapper protocol, inner optional
    @property
    def needs_teacher(self) -> bool:  # type: ignore[override]
        return True

    @property
    def target_tau(self) -> float:
        """The temperature p~ is formed at for the inner method: ``revise_tau``, else its ``tau``, else 1."""
        if self.revise_tau is not None:
            return float(self.revise_tau)
        return float(getattr(self.inner, "tau", 1.0))

    def revised(self, b: Batch) -> Batch:
        """``b`` with its teacher logits revised on the rows the teacher gets wrong (for ``inner``)."""
        if b.teacher_logits is None:
            return b
        return dataclasses.replace(b, teacher_logits=revised_logits(b.teacher_logits, b.y, self.eta, self.target_tau))

    def passes(self) -> tuple[float, float]:
        return (0.0, 0.0) if self.inner is None else self.inner.passes()

    def forward(self, b: Batch) -> torch.Tensor:
        return Method.forward(self, b) if self.inner is None else self.inner.forward(self.revised(b))

    def on_epoch_end(self, end: EpochEnd) -> dict[str, float] | None:
        return None if self.inner is None else self.inner.on_epoch_end(end)

    def modules(self) -> dict[str, Any]:
        return {} if self.inner is None else self.inner.modules()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.inner is None else super().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.inner is None:
            Method.load_state_dict(self, state)
        else:
            super().load_state_dict(state)

    def params(self) -> dict[str, Any]:
        if self.inner is not None:
            return {"name": self.name, "inner": self.inner.params(), "eta": self.eta, "revise_tau": self.revise_tau}
        return {"name": self.name, "form": self.form, "eta": self.eta, **{k: getattr(self, k) for k in _OWN[self.form]}}

    # ---------------------------------------------------------------- the terms
    def __call__(self, b: Batch) -> Terms:
        z_t = b.teacher_logits
        wrong = teacher_wrong(z_t, b.y)
        if self.inner is not None:
            tau = self.target_tau
        else:
            tau = 1.0 if self.form == "mse" else self.tau
        beta = revision_beta(F.softmax(z_t.detach() / tau, dim=1), b.y, self.eta)
        parts = {"lr_wrong": wrong.float(), "lr_beta": beta}
        if self.inner is not None:
            terms = self.inner(self.revised(b))
            return dataclasses.replace(terms, parts={**terms.parts, **parts})
        if self.form == "mse":
            per = lr_mse_loss(b.logits, z_t, b.y, self.eta, self.lambda1, self.lambda2)
            if self.average == "groups":
                return Terms(per_sample=per, weight=group_weights(wrong), parts={**parts, "lr": per.detach()})
        else:
            per = lr_kl_loss(b.logits, z_t, b.y, self.eta, self.tau, self.ce_weight, self.kd_weight)
        return Terms(per_sample=per, parts={**parts, "lr": per.detach()})

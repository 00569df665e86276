"""The evaluation suite as a registry: named evaluations, each computed once and cached by itself.

An evaluation is a function ``fn(ctx) -> dict`` registered under a name::

    @register_evaluation("agreement", needs_teacher=True, config=which_test_images)
    def agreement(ctx: EvalContext) -> dict:
        z, zt = ctx.logits("test"), ctx.teacher_logits("test")
        return {"agreement": M.agreement(z, zt), "kl_teacher_student": M.kl_teacher_student(zt, z)}

``ctx`` (:class:`EvalContext`) holds the ``run``, its ``teacher`` (a run or None) and the
``exp``, the narrow view of the experiment (:class:`kdutils.store.RunData`: ``exp.logits(run, part)``,
``exp.split``, ``exp.settings``, ``exp.device``, ``exp.store``); an evaluation never sees more of it.

**Cache.** Each evaluation of each run is stored on its own, next to the run, as
``<run>/eval-<name>-<hash>.json`` (written atomically; the file also records the
evaluation's version and configuration). The hash covers the evaluation's name, its
``version`` and its own configuration: ``config(settings)`` (e.g. the test subset, the
attack protocol) plus the teacher's key when it ``needs_teacher``. So adding an
evaluation adds one file per run and never recomputes or invalidates the others;
changing the attack settings changes only the robustness key. Bump ``version`` when a
function changes what it returns. A cached file that cannot be read is reported
(a warning), deleted and recomputed, never trusted.

**Which ones run.** ``exp.evaluate(run, teacher)`` runs the default set: every
registered evaluation whose teacher need is met (``robustness`` only with
``robustness=True``; an evaluation registered with ``default=False`` only on request).
``exp.evaluate(run, teacher, only=["accuracy", ...])`` runs exactly those (an unknown
name names the valid ones; one that needs a teacher without one is an error).
``force=True`` recomputes the requested ones. The result is one flat dict, merged in
registration order; ``kd.scalar_metrics(ev)`` keeps its numbers.

**Registered here** (the same functions of :mod:`kdutils.metrics` as the notebooks' numbers):

* ``accuracy``: accuracy, nll, ece (15 bins), val_accuracy, reliability (the diagram's bins)
* ``predictions``: ``test_predictions``, the predicted class per test image as compact text
  (:func:`kdutils.report.evidence.decode_predictions` reads it; a few kB per run)
* ``data_usage``: sample_epochs, data_usage, seconds_per_epoch (read from the run)
* ``agreement`` (teacher): agreement, kl_teacher_student on the test set
* ``retention`` (teacher): mu_s/mu_f on the training and the test set
* ``retention_images`` (teacher, on request): the per-image records behind them (which of the
  teacher's mistakes the student fixes, which of its successes it breaks), for paired claims on mu_S
* ``rank_agreement`` (teacher): the per-test-sample Spearman correlation of the student's and
  the teacher's class rankings (:func:`kdutils.metrics.rank_correlation`, CMKD's motivating
  measurement): ``rank_spearman_mean``, ``rank_spearman_median`` and ``rank_spearman_hist``
  (its histogram over [-1, 1], :data:`RANK_BINS` bins, for the distribution plot)
* ``robustness``: FGSM and PGD curves, ``robustness`` (attack -> list over epsilons) and
  ``robust_<attack>@<eps>``; every attack setting is in :func:`attack_protocol`, which
  notebooks print next to the results (:func:`describe_attack_protocol`).
* ``robust_images`` (on request): which attacked images stay correct, per attack and epsilon
  (the per-image record behind ``robustness``; :func:`robust_images_at` reads one), what a
  claim's paired two-noise interval on robust accuracy needs.
* ``certified`` (on request, ``default=False``): certified accuracy by interval bound
  propagation (:func:`kdutils.ibp.certified_accuracy`) over the epsilon grid, ``certified``
  (the curve) and ``certified@<eps>``; settings in :func:`certification_protocol`. Only for
  models IBP can bound (an ``nn.Sequential`` of the layers of :mod:`kdutils.ibp`; else its
  error names the supported layers).
* ``pgd_robust`` (on request): robust accuracy under kdutils' own PGD
  (:func:`kdutils.attacks.pgd_accuracy`, the attack the training methods use), ``pgd_robust``
  and ``pgd_robust@<eps>``; settings in :func:`own_attack_protocol`. foolbox's
  ``robustness`` stays the independent evaluator.
* faithfulness (on request, teacher; :mod:`kdutils.faithfulness`, faithful.md [ours]), at
  ``settings.faithful_eps`` on the first ``attack_samples`` test images, over the points teacher
  and student both classify correctly (``*_teacher_correct``: the teacher-correct points);
  settings in :func:`faithfulness_protocol` (:func:`describe_faithfulness_protocol` prints them):

  - ``disagreement``: ``disagreement_rate`` (a disagreement found in B(x) by either attack),
    ``disagreement_rate_student_attack``, ``disagreement_rate_teacher_attack``,
    ``disagreement_rate_teacher_correct``, ``disagreement_points``, ``disagreement_eps``;
  - ``confidence_gap`` (PGD on the gap, both signs; lower bounds): ``gap_plus_mean``,
    ``gap_minus_mean``, ``gap_mean`` (of max(Delta+, Delta-)), ``gap_mean_teacher_correct``,
    ``gap_hist`` (over [0, 1]), ``gap_faithful`` ({deltas, share}) and ``gap_faithful@<delta>``
    (share of delta-faithful points as far as PGD can tell: an upper estimate), ``gap_values``
    (per point), ``gap_points``, ``gap_eps``;
  - ``certified_gap`` (IBP; upper bounds): ``certified_gap_plus_mean``, ``certified_gap_minus_mean``,
    ``certified_gap_mean``, ``certified_gap_mean_teacher_correct``, ``certified_gap_hist``,
    ``certified_faithful`` and ``certified_faithful@<delta>`` (certified delta-faithful share: a
    lower bound), ``certified_agreement`` (share where IBP proves both keep the true class:
    certified absence of disagreement), ``certified_gap_values``, ``certified_gap_points``,
    ``certified_gap_eps``. Both models must be IBP-boundable.
  - ``crown_gap``: the same by CROWN (:mod:`kdutils.crown`, never looser than IBP), keys with the
    prefix ``crown`` (``crown_faithful@<delta>``, ``crown_agreement``, ...); ``crown_certified``:
    certified accuracy by CROWN beside ``certified``.
  - **student-independent keys, which the claims use** (faithful.md: the teacher-correct points,
    the same for every student; a point where the student errs counts as unfaithful, gap 1):
    ``gap_mean_tc`` and ``gap_faithful_tc@<delta>`` (PGD), ``certified_gap_mean_tc`` and
    ``certified_gap_faithful_tc@<delta>`` (IBP), ``crown_gap_mean_tc`` and
    ``crown_gap_faithful_tc@<delta>`` (CROWN); ``disagreement_rate_teacher_correct`` already
    counts a student's error (a disagreement at the clean point). The both-correct keys above
    stay as exploration.
"""

from __future__ import annotations

import itertools
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

import torch

from ..core import events
from ..core.registry import Registry
from ..numerics import attacks, ibp
from ..numerics import metrics as M
from ..training.store import config_key
from . import faithfulness

if TYPE_CHECKING:  # pragma: no cover
    from ..training.profiles import Settings
    from ..training.store import Run, RunData

__all__ = [
    "EVALUATIONS",
    "EvalContext",
    "Evaluation",
    "register_evaluation",
    "evaluation_names",
    "evaluation_key",
    "run_evaluations",
    "which_test_images",
    "attack_protocol",
    "describe_attack_protocol",
    "certification_protocol",
    "own_attack_protocol",
    "faithfulness_protocol",
    "describe_faithfulness_protocol",
    "FAITHFUL_DELTAS",
    "format_epsilon",
    "at_eps",
    "at_delta",
    "robust_key",
]


@dataclass
class EvalContext:
    """What an evaluation sees: the run, its teacher (or None) and the experiment."""

    run: "Run"
    teacher: "Run | None"
    exp: "RunData"

    @property
    def settings(self) -> "Settings":
        return self.exp.settings

    @property
    def split(self):
        return self.exp.split

    def logits(self, part: str = "test") -> torch.Tensor:
        """The run's logits on ``train``, ``val`` or ``test`` (shared with every other evaluation)."""
        return self.exp.logits(self.run, part)

    def teacher_logits(self, part: str = "test") -> torch.Tensor:
        if self.teacher is None:
            raise ValueError("this evaluation needs a teacher run")
        return self.exp.logits(self.teacher, part)


_order = itertools.count()


@dataclass
class Evaluation:
    """A registered evaluation (see the module docstring)."""

    name: str
    fn: Callable[[EvalContext], dict[str, Any]]
    version: str = "1"
    needs_teacher: bool = False
    config: Callable[["Settings"], dict] | None = None
    default: bool = True
    order: int = field(default_factory=lambda: next(_order))

    def config_for(self, settings: "Settings", teacher: "Run | None") -> dict:
        """Everything this evaluation's result depends on besides the run itself."""
        cfg = dict(self.config(settings)) if self.config is not None else {}
        if self.needs_teacher:
            cfg["teacher"] = teacher.key if teacher is not None else None
        return cfg


class _EvaluationRegistry(Registry[Evaluation]):
    """A :class:`Registry` that also lists in registration order and can forget a name."""

    def ordered(self) -> list[Evaluation]:
        return sorted(self._items.values(), key=lambda e: e.order)

    def unregister(self, name: str) -> Evaluation:
        spec = self.get(name)  # unknown -> UnknownNameError naming the valid ones
        del self._items[name]
        return spec


EVALUATIONS: _EvaluationRegistry = _EvaluationRegistry("evaluation")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def register_evaluation(
    name: str,
    *,
    version: str = "1",
    needs_teacher: bool = False,
    config: Callable[["Settings"], dict] | None = None,
    default: bool = True,
) -> Callable[[Callable[[EvalContext], dict]], Callable[[EvalContext], dict]]:
    """Decorator: register ``fn(ctx) -> dict`` as the evaluation ``name`` (see the module docstring).

    ``config(settings)`` returns the settings the result depends on (part of the cache key);
    ``default=False`` keeps an expensive evaluation out of the default set.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"evaluation name {name!r}: use lower-case letters, digits and '_' (it names a file)")

    def deco(fn: Callable[[EvalContext], dict]) -> Callable[[EvalContext], dict]:
        EVALUATIONS.register(name)(Evaluation(name, fn, str(version), needs_teacher, config, default))
        return fn

    return deco


def evaluation_names() -> list[str]:
    return EVALUATIONS.names()


def evaluation_key(spec: Evaluation, settings: "Settings", teacher: "Run | None") -> str:
    """16 hex digits: hash of (name, version, the evaluation's own configuration, code version)."""
    return config_key({"evaluation": spec.name, "version": spec.version, "config": spec.config_for(settings, teacher)})


def _select(only: Iterable[str] | None, teacher: "Run | None", robustness: bool) -> list[Evaluation]:
    if only is None:
        return [
            e
            for e in EVALUATIONS.ordered()
            if e.default and (teacher is not None or not e.needs_teacher) and (robustness or e.name != "robustness")
        ]
    if isinstance(only, str):
        only = [only]
    names = list(dict.fromkeys(only))
    specs = [EVALUATIONS.get(n) for n in names]  # unknown -> error naming the valid ones, before any work
    if teacher is None:
        need = [e.name for e in specs if e.needs_teacher]
        if need:
            raise ValueError(f"evaluation(s) {', '.join(need)} need a teacher run: pass teacher=exp.teacher()")
    return sorted(specs, key=lambda e: e.order)


def run_evaluations(
    exp: "RunData",
    run: "Run",
    teacher: "Run | None" = None,
    *,
    only: Iterable[str] | None = None,
    robustness: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """What :meth:`Experiment.evaluate` does: each requested evaluation from its cache or computed."""
    specs = _select(only, teacher, robustness)
    ctx = EvalContext(run, teacher, exp)
    out: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for spec in specs:
        cfg = spec.config_for(exp.settings, teacher)
        file_key = f"{spec.name}-{evaluation_key(spec, exp.settings, teacher)}"
        result = None
        if not force:
            cached = exp.store.load_eval(run.key, file_key)
            if cached is not None:
                if isinstance(cached, dict) and isinstance(cached.get("result"), dict):
                    result = cached["result"]
                else:
                    warnings.warn(f"run {run.key}: cached evaluation {file_key} has no result; it will be recomputed")
        if result is None:
            t0 = time.perf_counter()
            result = spec.fn(ctx)
            events.emit(f"  evaluated {spec.name} of run {run.key} in {time.perf_counter() - t0:.1f} s")
            if not isinstance(result, dict):
                raise TypeError(f"evaluation {spec.name!r} returned {type(result).__name__}, not a dict")
            exp.store.save_eval(
                run.key, file_key, {"evaluation": spec.name, "version": spec.version, "config": cfg, "result": result}
            )
        for k, v in result.items():
            if k in owner:
                raise ValueError(f"evaluations {owner[k]!r} and {spec.name!r} both return {k!r}")
            owner[k] = spec.name
            out[k] = v
    return out


# ---------------------------------------------------------------- configurations


def which_test_images(settings: "Settings") -> dict:
    """What an evaluation on the test split depends on besides the run: which test images."""
    return {"test_subset": settings.test_subset}


#: fixed parts of the attack protocol (see :func:`kdutils.metrics.robust_accuracy`)
_ATTACK_SEED = 0
_ATTACK_BATCH = 256
_PGD_TOTAL_STEP = 2.5  # total step length 2.5 * eps, as in Madry et al. 2018


def attack_protocol(settings: "Settings") -> dict:
    """Every setting of the robustness evaluation (its cache configuration), labelled.

    The attacks run on the first ``n`` images of the test split (after any test subset; all
    of them if there are fewer), in pixel space of [0, 1] images, L-inf, with foolbox.
    FGSM is one step of size eps without random start; PGD is ``steps`` steps of
    ``rel_stepsize * eps`` from a uniform random start in the eps-ball, one run
    (``restarts: 0``). Torch's RNG is seeded with ``seed`` for the whole attack; images go in
    batches of ``batch_size`` (which changes PGD's random start draws).
    """
    steps = int(settings.pgd_steps)
    if steps < 1:
        raise ValueError(f"pgd_steps must be >= 1, got {settings.pgd_steps}")
    return {
        "library": "foolbox",
        "norm": "linf",
        "bounds": [0.0, 1.0],
        "images": "first n of the test split (after test_subset)",
        "test_subset": settings.test_subset,
        "n": int(settings.attack_samples),
        "epsilons": [float(e) for e in settings.epsilons],
        "attacks": ["fgsm", "pgd"],
        "fgsm": {"steps": 1, "rel_stepsize": 1.0, "random_start": False},
        "pgd": {"steps": steps, "rel_stepsize": _PGD_TOTAL_STEP / steps, "random_start": True, "restarts": 0},
        "seed": _ATTACK_SEED,
        "batch_size": _ATTACK_BATCH,
    }


def format_epsilon(e: float, grid: Iterable[float] | None = None) -> str:
    """The one label of an attack budget: ``"4/255"`` when ``e`` (and every value of ``grid``) lies on
    the 8-bit pixel lattice (CIFAR), else 4 digits (``"0.1"``)."""
    pts = [float(x) for x in (grid if grid is not None else [e])] + [float(e)]
    if e > 0 and all(abs(x * 255 - round(x * 255)) < 1e-6 for x in pts):
        return f"{round(e * 255)}/255"
    return f"{e:.4g}"


def at_eps(name: str, eps: float) -> str:
    """The results key of a metric at an attack budget: ``certified@0.1``, ``pgd_robust@0.007843``."""
    return f"{name}@{eps:.4g}"


def robust_key(attack: str, eps: float) -> str:
    """The results key of the robust accuracy under ``attack`` (fgsm, pgd) at ``eps``: ``robust_fgsm@0.1``."""
    return at_eps(f"robust_{attack}", eps)


def at_delta(name: str, delta: float) -> str:
    """The results key of a faithfulness share at ``delta``: ``certified_faithful@0.1``."""
    return f"{name}@{delta:g}"


def describe_attack_protocol(settings: "Settings") -> str:
    """One line to print next to robustness results."""
    p = attack_protocol(settings)
    pgd = p["pgd"]
    subset = f" of a {p['test_subset']}-image test subset" if p["test_subset"] is not None else ""
    eps = ", ".join(format_epsilon(e, p["epsilons"]) for e in p["epsilons"])
    restarts = f"{pgd['restarts']} random restarts" if pgd["restarts"] else "no restarts"
    return (
        f"L-inf attacks (foolbox) on the first {p['n']} test images{subset}, pixels in [0, 1], "
        f"eps in {{{eps}}}: FGSM (one step of eps); PGD ({pgd['steps']} steps of "
        f"{pgd['rel_stepsize']:.3g}*eps, random start, {restarts}); seed {p['seed']}"
    )


# ---------------------------------------------------------------- the suite


@register_evaluation("accuracy", config=which_test_images)
def _accuracy(ctx: EvalContext) -> dict[str, Any]:
    sp = ctx.split
    z, y = ctx.logits("test"), sp.test_y
    return {
        "accuracy": M.accuracy(z, y),
        "nll": M.nll(z, y),
        "ece": M.ece(z, y),
        "val_accuracy": M.accuracy(ctx.logits("val"), sp.val_y) if len(sp.val_y) else float("nan"),
        "reliability": M.reliability(z, y),
    }


@register_evaluation("predictions", config=which_test_images)
def _predictions(ctx: EvalContext) -> dict[str, Any]:
    """The predicted class of every test image, as compact text (:func:`kdutils.io.encode_predictions`):
    what paired test-set statistics need (:func:`kdutils.report.evidence.two_noise_interval`)."""
    from ..core.io import encode_predictions

    return {"test_predictions": encode_predictions(ctx.logits("test").argmax(1).cpu().numpy())}


@register_evaluation("data_usage")
def _data_usage(ctx: EvalContext) -> dict[str, Any]:
    run = ctx.run
    return {
        "sample_epochs": run.sample_epochs,
        # the one definition of data usage: sample-epochs relative to KD on the whole training
        # split (every sample, every epoch = 1; a run on a pruned subset uses less)
        "data_usage": run.sample_epochs / max(1, len(ctx.split.train_y) * run.config["recipe"]["epochs"]),
        "seconds_per_epoch": run.seconds_per_epoch,
    }


@register_evaluation("agreement", needs_teacher=True, config=which_test_images)
def _agreement(ctx: EvalContext) -> dict[str, Any]:
    z, zt = ctx.logits("test"), ctx.teacher_logits("test")
    return {"agreement": M.agreement(z, zt), "kl_teacher_student": M.kl_teacher_student(zt, z)}


@register_evaluation("retention", needs_teacher=True, config=which_test_images)
def _retention(ctx: EvalContext) -> dict[str, Any]:
    sp, out = ctx.split, {}
    for part, y in (("test", sp.test_y), ("train", sp.train_y)):
        r = M.retention(ctx.teacher_logits(part), ctx.logits(part), y)
        out[f"mu_s_{part}"], out[f"mu_f_{part}"] = r["mu_s"], r["mu_f"]
    return out


@register_evaluation("retention_images", needs_teacher=True, config=which_test_images, default=False)
def _retention_images(ctx: EvalContext) -> dict[str, Any]:
    """The per-image records behind ``retention`` (on request): for ``mu_s_<part>`` whether the student
    gets each image the teacher gets wrong right, for ``mu_f_<part>`` whether it gets each image the
    teacher gets right wrong (images in split order; encoded 0/1, :func:`kdutils.io.encode_predictions`).
    Two students of one teacher are scored on the same images, so a claim comparing their mu_S gets a
    paired interval over seeds and images (:meth:`kdutils.notebook.NotebookContext.paired`)."""
    from ..core.io import encode_predictions

    sp, out = ctx.split, {}
    for part, y in (("test", sp.test_y), ("train", sp.train_y)):
        y = y.cpu()
        t_right = ctx.teacher_logits(part).cpu().argmax(1) == y
        s_right = ctx.logits(part).cpu().argmax(1) == y
        out[f"mu_s_{part}"] = encode_predictions(s_right[~t_right].numpy().astype("uint8"))
        out[f"mu_f_{part}"] = encode_predictions((~s_right[t_right]).numpy().astype("uint8"))
    return {"retention_images": out}


#: bins of the rank-agreement histogram over [-1, 1] (width 0.05)
RANK_BINS = 40


def _rank_config(settings: "Settings") -> dict:
    return {**which_test_images(settings), "bins": RANK_BINS}


@register_evaluation("rank_agreement", needs_teacher=True, config=_rank_config)
def _rank_agreement(ctx: EvalContext) -> dict[str, Any]:
    rho = M.rank_correlation(ctx.logits("test"), ctx.teacher_logits("test"))
    return {
        "rank_spearman_mean": float(rho.mean()),
        "rank_spearman_median": float(rho.quantile(0.5)),
        "rank_spearman_hist": M.rank_histogram(rho, RANK_BINS),
    }


@register_evaluation("robustness", config=attack_protocol)
def _robustness(ctx: EvalContext) -> dict[str, Any]:
    p, sp = attack_protocol(ctx.settings), ctx.split
    n = min(p["n"], len(sp.test_y))
    curves = M.robustness_curves(
        ctx.run.model,
        sp.test_x[:n],
        sp.test_y[:n],
        p["epsilons"],
        attacks=tuple(p["attacks"]),
        steps=p["pgd"]["steps"],
        rel_stepsize=p["pgd"]["rel_stepsize"],
        batch_size=p["batch_size"],
        seed=p["seed"],
        device=ctx.exp.device,
    )
    eps = list(ctx.settings.epsilons)
    out: dict[str, Any] = {"robustness": {"epsilons": eps, **curves}}
    for attack, accs in curves.items():
        for e, acc in zip(eps, accs):
            out[robust_key(attack, e)] = acc
    return out


@register_evaluation("robust_images", config=attack_protocol, default=False)
def _robust_images(ctx: EvalContext) -> dict[str, Any]:
    """Which attacked images each attack leaves correct, per epsilon (on request): the per-image record
    behind ``robustness``'s curve (the same attack calls, so the same numbers), as
    ``{"epsilons": [...], attack: [encoded 0/1 per image, one per epsilon]}``
    (:func:`kdutils.io.encode_predictions` of 0/1). A claim on a robust accuracy asks for it
    (:meth:`kdutils.notebook.NotebookContext.values`), so its interval covers the attacked images'
    sampling, paired on the same images. Kept apart from ``robustness`` so that adding it left every
    stored curve valid: only the runs a claim compares compute it."""
    from ..core.io import encode_predictions

    p, sp = attack_protocol(ctx.settings), ctx.split
    n = min(p["n"], len(sp.test_y))
    eps = list(ctx.settings.epsilons)
    out: dict[str, Any] = {"epsilons": eps}
    for attack in p["attacks"]:
        correct = M.robust_correct(
            ctx.run.model,
            sp.test_x[:n],
            sp.test_y[:n],
            attack,
            p["epsilons"],
            steps=p["pgd"]["steps"],
            rel_stepsize=p["pgd"]["rel_stepsize"],
            batch_size=p["batch_size"],
            seed=p["seed"],
            device=ctx.exp.device,
        )
        out[attack] = [encode_predictions(row.numpy().astype("uint8")) for row in correct]
    return {"robust_images": out}


def robust_images_at(ev: dict, key: str) -> str | None:
    """The encoded 0/1 per-image record behind the robust accuracy ``key`` (``robust_fgsm@0.1``) in an
    evaluation dict holding ``robust_images`` (:func:`kdutils.io.decode_predictions` reads it); None
    when there is none or ``key`` is not a robust accuracy on its grid."""
    rec = ev.get("robust_images")
    m = re.fullmatch(r"robust_(\w+)@(.+)", key)
    if rec is None or m is None or m.group(1) not in rec:
        return None
    texts = {robust_key(m.group(1), e): t for e, t in zip(rec["epsilons"], rec[m.group(1)])}
    return texts.get(key)


def certification_protocol(settings: "Settings") -> dict:
    """Every setting of the ``certified`` evaluation (its cache configuration), labelled."""
    return {
        "method": "interval bound propagation (kdutils.ibp)",
        "bounds": "margins z_y - z_j by elision of the last linear layer (Gowal et al. 2018)",
        "box": "l_inf ball clipped to [0, 1]",
        "images": "first n of the test split (after test_subset)",
        "test_subset": settings.test_subset,
        "n": int(settings.attack_samples),
        "epsilons": [float(e) for e in settings.epsilons],
        "batch_size": _ATTACK_BATCH,
    }


def own_attack_protocol(settings: "Settings") -> dict:
    """Every setting of the ``pgd_robust`` evaluation (kdutils' PGD), labelled."""
    p = attack_protocol(settings)
    return {
        "library": "kdutils.attacks",
        "norm": "linf",
        "objective": "cross-entropy on the label",
        "bounds": [0.0, 1.0],
        "images": p["images"],
        "test_subset": p["test_subset"],
        "n": p["n"],
        "epsilons": p["epsilons"],
        "pgd": {**p["pgd"], "generator": "torch.Generator seeded with seed, one per epsilon"},
        "seed": _ATTACK_SEED,
        "batch_size": _ATTACK_BATCH,
    }


def _curve(name: str, eps: list[float], accs: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {name: {"epsilons": eps, "accuracy": accs}}
    for e, acc in zip(eps, accs):
        out[at_eps(name, e)] = acc
    return out


@register_evaluation("certified", config=certification_protocol, default=False)
def _certified(ctx: EvalContext) -> dict[str, Any]:
    p, sp = certification_protocol(ctx.settings), ctx.split
    n = min(p["n"], len(sp.test_y))
    x, y = sp.test_x[:n], sp.test_y[:n]
    accs = [ibp.certified_accuracy(ctx.run.model, x, y, e, batch_size=p["batch_size"]) for e in p["epsilons"]]
    return _curve("certified", list(ctx.settings.epsilons), accs)


def validation_certification_protocol(settings: "Settings") -> dict:
    """Every setting of the ``val_certified`` evaluation (its cache configuration), labelled."""
    return {
        "method": "interval bound propagation (kdutils.ibp)",
        "box": "l_inf ball clipped to [0, 1]",
        "images": "every image of the validation split (after val_subset)",
        "val_subset": settings.val_subset,
        "eps": float(settings.faithful_eps),
        "batch_size": _ATTACK_BATCH,
    }


@register_evaluation("val_certified", config=validation_certification_protocol, default=False)
def _val_certified(ctx: EvalContext) -> dict[str, Any]:
    """IBP-certified accuracy on the **validation** split at the notebook's eps (``faithful_eps``):
    what notebook 04 chooses its teacher's architecture by (never the test set).
    ``val_certified`` and ``val_n`` (the images it counts)."""
    p, sp = validation_certification_protocol(ctx.settings), ctx.split
    n = len(sp.val_y)
    if n == 0:
        return {"val_certified": float("nan"), "val_n": 0}
    acc = ibp.certified_accuracy(ctx.run.model, sp.val_x, sp.val_y, p["eps"], batch_size=p["batch_size"])
    return {"val_certified": acc, "val_n": n}


@register_evaluation(
    "crown_certified", config=lambda st: {**certification_protocol(st), "verifier": "crown"}, default=False
)
def _crown_certified(ctx: EvalContext) -> dict[str, Any]:
    """Certified accuracy by CROWN (:mod:`kdutils.crown`) on the same images and epsilons as
    ``certified`` (IBP): ``crown_certified`` (the curve) and ``crown_certified@<eps>``."""
    from ..numerics.crown import crown_margin_bounds

    p, sp = certification_protocol(ctx.settings), ctx.split
    n = min(p["n"], len(sp.test_y))
    x, y = sp.test_x[:n], sp.test_y[:n]
    accs = [
        ibp.certified_accuracy(ctx.run.model, x, y, e, batch_size=p["batch_size"], margin_fn=crown_margin_bounds)
        for e in p["epsilons"]
    ]
    return _curve("crown_certified", list(ctx.settings.epsilons), accs)


@register_evaluation("pgd_robust", config=own_attack_protocol, default=False)
def _pgd_robust(ctx: EvalContext) -> dict[str, Any]:
    p, sp = own_attack_protocol(ctx.settings), ctx.split
    n = min(p["n"], len(sp.test_y))
    accs = attacks.pgd_accuracy(
        ctx.run.model,
        sp.test_x[:n],
        sp.test_y[:n],
        p["epsilons"],
        steps=p["pgd"]["steps"],
        rel_stepsize=p["pgd"]["rel_stepsize"],
        batch_size=p["batch_size"],
        seed=p["seed"],
    )
    return _curve("pgd_robust", list(ctx.settings.epsilons), accs)


# ---------------------------------------------------------------- faithfulness (faithful.md [ours])

#: the grid of delta for the share of delta-faithful points [ours]
FAITHFUL_DELTAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
#: bins of the gap histograms over [0, 1]
GAP_BINS = 20


def faithfulness_protocol(settings: "Settings") -> dict:
    """Every setting of the ``disagreement``, ``confidence_gap`` and ``certified_gap``
    evaluations (their cache configuration), labelled."""
    steps = int(settings.pgd_steps)
    if steps < 1:
        raise ValueError(f"pgd_steps must be >= 1, got {settings.pgd_steps}")
    eps = float(settings.faithful_eps)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"faithful_eps must be in [0, 1] (pixel units), got {settings.faithful_eps}")
    return {
        "source": "faithful.md [ours]",
        "norm": "linf",
        "bounds": [0.0, 1.0],
        "eps": eps,
        "images": "first n of the test split (after test_subset)",
        "test_subset": settings.test_subset,
        "n": int(settings.attack_samples),
        "points": "teacher and student both correct on the clean image (and teacher correct)",
        "class": "the true class",
        "pgd": {
            "library": "kdutils.attacks",
            "steps": steps,
            "rel_stepsize": _PGD_TOTAL_STEP / steps,
            "random_start": True,
            "restarts": 0,
            "generator": "torch.Generator seeded with seed",
        },
        "disagreement": "CW-margin PGD on the student (away from the teacher's class) and on the teacher "
        "(away from the student's class); every iterate checked",
        "gap": "PGD on sign * (p_T[c] - p_S[c]), sign +1 and -1, best iterate, clean point included",
        "certified": "interval bound propagation, margins by elision of the last linear layer",
        "deltas": list(FAITHFUL_DELTAS),
        "hist_bins": GAP_BINS,
        "seed": _ATTACK_SEED,
        "batch_size": _ATTACK_BATCH,
    }


def describe_faithfulness_protocol(settings: "Settings") -> str:
    """One line to print next to the faithfulness results."""
    p = faithfulness_protocol(settings)
    subset = f" of a {p['test_subset']}-image test subset" if p["test_subset"] is not None else ""
    return (
        f"faithfulness at eps {format_epsilon(p['eps'])} (L-inf, pixels in [0, 1]) on the first {p['n']} "
        f"test images{subset} that teacher and student both classify correctly, class c = the true class: "
        f"disagreement and gap by kdutils PGD ({p['pgd']['steps']} steps of {p['pgd']['rel_stepsize']:.3g}*eps, "
        f"random start, seed {p['seed']}), certified gap by IBP; delta grid {p['deltas']}"
    )


def _faithful_points(ctx: EvalContext):
    """(protocol, x, y, both-correct mask, teacher-correct mask) of the teacher-correct points."""
    if ctx.teacher is None:
        raise ValueError("this evaluation needs a teacher run")
    p, sp = faithfulness_protocol(ctx.settings), ctx.split
    n = min(p["n"], len(sp.test_y))
    x, y = sp.test_x[:n], sp.test_y[:n]
    kt, ks = faithfulness.predictions(ctx.teacher.model, ctx.run.model, x, y, p["batch_size"])
    t_ok = kt == y
    return p, x[t_ok], y[t_ok], (ks == y)[t_ok]


def _mean(v: torch.Tensor) -> float:
    return float(v.double().mean()) if v.numel() else float("nan")


def _shares(prefix: str, gap: torch.Tensor, deltas: list[float]) -> dict[str, Any]:
    share = faithfulness.faithful_share(gap, deltas)
    out: dict[str, Any] = {prefix: {"deltas": deltas, "share": share}}
    for d, v in zip(deltas, share):
        out[at_delta(prefix, d)] = v
    return out


@register_evaluation("disagreement", needs_teacher=True, config=faithfulness_protocol, default=False)
def _disagreement(ctx: EvalContext) -> dict[str, Any]:
    p, x, y, both = _faithful_points(ctx)
    s_hit, t_hit = faithfulness.local_disagreement(
        ctx.teacher.model,
        ctx.run.model,
        x,
        y,
        p["eps"],
        steps=p["pgd"]["steps"],
        step_size=p["pgd"]["rel_stepsize"] * p["eps"],
        seed=p["seed"],
        batch_size=p["batch_size"],
    )
    hit = s_hit | t_hit
    return {
        "disagreement_rate": _mean(hit[both]),
        "disagreement_rate_student_attack": _mean(s_hit[both]),
        "disagreement_rate_teacher_attack": _mean(t_hit[both]),
        "disagreement_rate_teacher_correct": _mean(hit),
        "disagreement_points": int(both.sum()),
        "disagreement_eps": p["eps"],
    }


@register_evaluation("confidence_gap", version="2", needs_teacher=True, config=faithfulness_protocol, default=False)
def _confidence_gap(ctx: EvalContext) -> dict[str, Any]:
    p, x, y, both = _faithful_points(ctx)
    plus, minus = faithfulness.empirical_gap(
        ctx.teacher.model,
        ctx.run.model,
        x,
        y,
        p["eps"],
        steps=p["pgd"]["steps"],
        step_size=p["pgd"]["rel_stepsize"] * p["eps"],
        seed=p["seed"],
        batch_size=p["batch_size"],
    )
    gap = torch.maximum(plus, minus)
    return {
        **_student_independent("gap", gap.clamp(0.0, 1.0), both, p["deltas"]),
        "gap_plus_mean": _mean(plus[both]),
        "gap_minus_mean": _mean(minus[both]),
        "gap_mean": _mean(gap[both]),
        "gap_mean_teacher_correct": _mean(gap),
        "gap_hist": faithfulness.gap_histogram(gap[both], p["hist_bins"]),
        **_shares("gap_faithful", gap[both], p["deltas"]),
        "gap_values": [float(v) for v in gap[both]],
        "gap_points": int(both.sum()),
        "gap_eps": p["eps"],
    }


def _student_independent(prefix: str, gap: torch.Tensor, both: torch.Tensor, deltas: list[float]) -> dict[str, Any]:
    """The claims' reading over every teacher-correct point (the same points for every student,
    faithful.md): a point where the student errs counts as unfaithful (gap 1, the largest)."""
    gap_tc = torch.where(both, gap, torch.ones_like(gap))
    out: dict[str, Any] = {f"{prefix}_mean_tc": _mean(gap_tc)}
    for d, v in zip(deltas, faithfulness.faithful_share(gap_tc, deltas)):
        out[at_delta(f"{prefix}_faithful_tc", d)] = v
    return out


def _certified_result(ctx: EvalContext, verifier: str, prefix: str) -> dict[str, Any]:
    p, x, y, both = _faithful_points(ctx)
    plus, minus, agree = faithfulness.certified_gap(
        ctx.teacher.model, ctx.run.model, x, y, p["eps"], batch_size=p["batch_size"], verifier=verifier
    )
    gap = torch.maximum(plus, minus).clamp(0.0, 1.0)
    return {
        f"{prefix}_gap_plus_mean": _mean(plus[both]),
        f"{prefix}_gap_minus_mean": _mean(minus[both]),
        f"{prefix}_gap_mean": _mean(gap[both]),
        f"{prefix}_gap_mean_teacher_correct": _mean(gap),
        f"{prefix}_gap_hist": faithfulness.gap_histogram(gap[both], p["hist_bins"]),
        **_shares(f"{prefix}_faithful", gap[both], p["deltas"]),
        **_student_independent(f"{prefix}_gap", gap, both, p["deltas"]),
        f"{prefix}_agreement": _mean(agree[both]),
        f"{prefix}_agreement_tc": _mean(agree),
        f"{prefix}_gap_values": [float(v) for v in gap[both]],
        f"{prefix}_gap_points": int(both.sum()),
        f"{prefix}_gap_points_tc": int(both.numel()),
        f"{prefix}_gap_eps": p["eps"],
    }


@register_evaluation("certified_gap", version="2", needs_teacher=True, config=faithfulness_protocol, default=False)
def _certified_gap(ctx: EvalContext) -> dict[str, Any]:
    return _certified_result(ctx, "ibp", "certified")


def crown_protocol(settings: "Settings") -> dict:
    """The faithfulness protocol with CROWN as the verifier (its cache configuration)."""
    from ..numerics.crown import MAX_WORK

    p = faithfulness_protocol(settings)
    p["certified"] = (
        f"CROWN (Zhang et al. 2018), margins e_c - e_j; pre-activation bounds by CROWN where a layer's units "
        f"times the largest activation behind it are at most {MAX_WORK}, by IBP above; intersected with IBP's"
    )
    return p


@register_evaluation("crown_gap", needs_teacher=True, config=crown_protocol, default=False)
def _crown_gap(ctx: EvalContext) -> dict[str, Any]:
    """The certified gap by CROWN: the keys of ``certified_gap`` with the prefix ``crown``."""
    return _certified_result(ctx, "crown", "crown")

"""The paper notebooks' claim rules, as named functions on the statistics of :mod:`kdutils.results`.

Every rule follows the team's ``docs/papers/README.md`` ("How every claims table decides"): one
comparison named in advance, paired by seed, a two-sided t interval at ``level`` (90 % by
default, so each one-sided decision is a 95 % test), *holds* / *does not hold* when the
interval is on one side of the threshold, *inconclusive* when it straddles it, *not testable*
with fewer than two seeds. "At least as good" is non-inferiority with a margin of a third of
the student-alone-to-teacher gap at that dataset and profile (:func:`kdutils.report.evidence.scaled_margin`,
[ours]; 1 point when a caller gives none), the verdict at half and twice the margin beside it.
With per-image results on both sides (accuracy in the notebooks) the interval covers the
test-set noise as well as the seeds (:mod:`kdutils.report.evidence`). No threshold here is met by construction: every rule can fail (tests/report/test_claim_rules.py
shows each one failing on constructed numbers).

A rule returns a :class:`Checked`: the combined :class:`~kdutils.results.Verdict` and its
parts, with the text for the claims table (:meth:`Checked.measured`, :meth:`Checked.row`).

Rules

* :func:`non_inferior_each`: each named comparison non-inferior (CCKD's generalisation; the
  self-regulated paper's "like state-of-the-art KD").
* :func:`data_efficiency`: the ONE data-efficiency rule of notebooks 01 and 03: the method's
  sample-epochs relative to KD's, the interval's upper end below ``1 - saving`` (default a
  saving of at least 10 % [ours]). :func:`data_efficient_each` applies it to several methods;
  :func:`data_efficient_and_non_inferior` adds non-inferiority to a reference (CCKD-T+SR vs
  CCKD-T).
* :func:`retention_above`: mu_S on the training set above 0.5.
* :func:`robust_margin`: the margin over a reference under one named attack and epsilon,
  holding when the interval's lower end reaches the paper's number (:func:`robust_setting`
  names the epsilon and the number per dataset).
* :func:`significance_pruning`: [ours] dropping the least significant k % beats dropping a
  random k % at every k (claim_better per k, all must hold).
* :func:`better_each`: each named comparison better (superiority, interval above ``by``); CMKD
  against KD and DIST, KD+CMKD against KD, CMKD's rank agreement against KD's.
* :func:`lower_each`: each named comparison lower (a smaller gap, paired by seed); faithful KD's
  "narrows the gap". :func:`above_each`: each named quantity's mean over seeds above a threshold
  (one-sample t; KD's disagreement rate above 0). :func:`every`: several checked rules at once,
  all must hold.
* :func:`steeper`: one stronger-teacher curve steeper than another (the per-seed slopes of
  :func:`kdutils.results.curve_slopes`, paired by seed).
* :func:`only_at`: a claim about one dataset at one profile (e.g. "state of the art on
  CIFAR-100"), *not testable* elsewhere: a computed verdict, never a typed one; :func:`skipped`
  when the experiment behind a claim was switched off.
* :func:`convergence`: whether the students' validation accuracy still rose at the end.

Exploration (the best of many comparisons) goes through :func:`kdutils.results.best_of_many`
and never decides a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .results import (
    DEFAULT_LEVEL,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_TESTABLE,
    Verdict,
    _test_name,
    _with_images,
    claim_all,
    claim_better,
    claim_mean_above,
    claim_mean_below,
    claim_non_inferior,
    claim_row,
    curve_slopes,
)

__all__ = [
    "Findings",
    "findings",
    "NON_INFERIORITY_MARGIN",
    "DATA_SAVING",
    "RETENTION_THRESHOLD",
    "ROBUST_CLAIMS",
    "Checked",
    "all_of",
    "non_inferior_each",
    "data_efficiency",
    "data_efficient_each",
    "data_efficient_and_non_inferior",
    "retention_above",
    "robust_setting",
    "robust_margin",
    "significance_pruning",
    "convergence",
    "better_each",
    "steeper",
    "only_at",
    "skipped",
    "lower_each",
    "above_each",
    "every",
]

#: non-inferiority margin, raw units (1 point of accuracy) [ours, docs/papers/README.md]
NON_INFERIORITY_MARGIN = 0.01
#: "uses significantly fewer samples": a saving of at least 10 % of KD's sample-epochs [ours]
DATA_SAVING = 0.10
#: "does not retain most of the teacher's mistakes": mu_S above one half
RETENTION_THRESHOLD = 0.5
#: CCKD's robustness claim per dataset: (epsilon named in advance [ours], the paper's margin in
#: points [paper, abstract]); other datasets (digits at smoke) use MNIST's
ROBUST_CLAIMS: dict[str, tuple[float, float]] = {
    "mnist": (0.1, 3.0),
    "fashion_mnist": (0.1, 3.0),
    "cifar10": (4 / 255, 6.0),
}
_ROBUST_DEFAULT = (0.1, 3.0)


@dataclass(frozen=True)
class Checked:
    """A claim's combined verdict and the verdicts of its parts (``{name: Verdict}``)."""

    verdict: Verdict
    parts: Mapping[str, Verdict] = field(default_factory=dict)
    #: the "measured" text when the numbers alone do not say it (:func:`only_at` elsewhere: nothing
    #: measured; :func:`retention_above`: how many images the share is on)
    note: str = ""
    #: a non-inferiority claim's verdict at half and at twice its margin
    sensitivity: str = ""

    @property
    def seed_only(self) -> str:
        """The seed-only intervals of the parts whose deciding interval also covers test-set noise."""
        parts = self.parts or {"": self.verdict}
        cells = [(name, v.describe_seed_only()) for name, v in parts.items()]
        cells = [(n, c) for n, c in cells if c]
        if len(cells) == 1 and len(parts) == 1:
            return cells[0][1]
        return "; ".join(f"{n}: {c}" for n, c in cells)

    @property
    def measured(self) -> str:
        """The numbers behind the verdict: each part's estimate and interval (and verdict, with several)."""
        if self.note:
            return self.note
        if len(self.parts) <= 1:
            return self.verdict.describe()
        return "; ".join(f"{name}: {v.describe()} ({v.verdict})" for name, v in self.parts.items())

    def row(
        self,
        claim: str,
        source: str,
        paper: str,
        *,
        dataset: str,
        profile: str,
        converged: str | None = None,
        measured: str | None = None,
    ) -> dict:
        """One row of :func:`kdutils.results.claims_frame`."""
        return claim_row(
            claim,
            source,
            paper,
            self.verdict,
            dataset=dataset,
            profile=profile,
            measured=self.measured if measured is None else measured,
            converged=converged,
            seed_only=self.seed_only,
            sensitivity=self.sensitivity,
        )

    def __str__(self) -> str:
        return f"{self.verdict.verdict}: {self.measured}"


def all_of(parts: Mapping[str, Verdict], rule: str) -> Checked:
    """Every part must hold (:func:`kdutils.results.claim_all`); the parts stay for the table."""
    parts = dict(parts)
    return Checked(claim_all(list(parts.values()), rule), parts)


def _saving(v: Verdict) -> str:
    """The saving a data-usage verdict measured: 1 - (mean usage relative to KD), in percent."""
    return f"{1 - v.estimate:.1%}" if math.isfinite(v.estimate) else "n/a"


def _pct(level: float) -> str:
    return f"{level * 100:g} %"


def _points(x: float) -> str:
    return f"{x * 100:g} point" + ("" if x * 100 == 1 else "s")


# --------------------------------------------------------------------------- accuracy


def _margin(margin) -> tuple[float, str]:
    """A margin given as a number (raw units) or a :class:`kdutils.report.evidence.Margin`: its value and its text."""
    value = float(getattr(margin, "value", margin))
    text = margin.describe() if hasattr(margin, "describe") else _points(value)
    return value, text


def _noise(pairs) -> str:
    """The interval's name in a rule's text (:func:`kdutils.results._test_name`): test images too when
    every pair carries them."""
    pairs = list(pairs)
    return _test_name(*pairs[0]) if pairs and all(_with_images(a, b) for a, b in pairs) else "paired t"


def non_inferior_each(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    margin=NON_INFERIORITY_MARGIN,
    level: float = DEFAULT_LEVEL,
) -> Checked:
    """Each ``name: (a, b)`` non-inferior (``a`` at least ``b`` minus ``margin``, paired by seed); all must hold.

    Names read like "CCKD-L vs KD". Per part: the paired interval of ``a - b`` at ``level``
    above ``-margin`` holds, below it does not. ``margin``: raw units, or a
    :class:`kdutils.report.evidence.Margin` (the notebooks pass :meth:`NotebookContext.margin`, a third of
    the student-alone-to-teacher gap); the table shows the verdict at half and twice the margin too.
    """
    if not pairs:
        raise ValueError("non_inferior_each needs at least one comparison")
    value, text = _margin(margin)

    def decide(m: float) -> Checked:
        parts = {
            name: claim_non_inferior(a, b, margin=m, level=level, label=name.replace(" vs ", " - "))
            for name, (a, b) in pairs.items()
        }
        rule = (
            f"each of {', '.join(pairs)} non-inferior: {_noise(pairs.values())}, {_pct(level)} interval of the "
            f"accuracy difference above minus the margin, {text} [ours]; all must hold"
        )
        return all_of(parts, rule)

    checked = decide(value)
    return Checked(checked.verdict, checked.parts, sensitivity=_sensitivity(decide, value))


def _sensitivity(decide, margin: float) -> str:
    """The verdict at half and at twice the margin (:func:`kdutils.evidence.sensitivity`), for the claims table."""
    from .evidence import sensitivity

    return "; ".join(f"{k}: {v}" for k, v in sensitivity(lambda m: decide(m).verdict.verdict, margin).items())


def better_each(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    by: float = 0.0,
    level: float = DEFAULT_LEVEL,
    what: str = "accuracy",
    scale: float = 100.0,
    unit: str = " points",
) -> Checked:
    """Each ``name: (a, b)`` better than ``by`` (``a - b`` paired by seed); all must hold.

    Names read like "CMKD vs KD". Per part :func:`kdutils.results.claim_better`: the paired t
    interval of ``a - b`` at ``level`` above ``by`` holds, below it does not. ``what`` names the
    quantity in the rule; ``scale`` / ``unit`` shape the text (``scale=1, unit=""`` for a
    correlation).
    """
    if not pairs:
        raise ValueError("better_each needs at least one comparison")
    parts = {
        name: claim_better(a, b, by=by, level=level, label=name.replace(" vs ", " - "), scale=scale, unit=unit)
        for name, (a, b) in pairs.items()
    }
    rule = (
        f"each of {', '.join(pairs)} better: {_noise(pairs.values())}, {_pct(level)} interval of the {what} difference "
        f"above {by * scale:g}{unit}; all must hold"
    )
    return all_of(parts, rule)


def lower_each(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    by: float = 0.0,
    level: float = DEFAULT_LEVEL,
    what: str = "gap",
    scale: float = 1.0,
    unit: str = "",
) -> Checked:
    """Each ``name: (a, b)`` lower than ``b`` by more than ``by`` (``b - a`` paired by seed); all must hold.

    Names read like "faithful vs KD" (the faithful student's gap below KD's). Per part
    :func:`kdutils.results.claim_better` with ``higher_is_better=False``: the paired t interval
    of ``b - a`` at ``level`` (over seeds and images when both sides carry per-image records) above
    ``by`` holds, below it does not.
    """
    if not pairs:
        raise ValueError("lower_each needs at least one comparison")
    parts = {
        name: claim_better(
            a, b, by=by, level=level, higher_is_better=False, label=name.replace(" vs ", " - "), scale=scale, unit=unit
        )
        for name, (a, b) in pairs.items()
    }
    rule = (
        f"each of {', '.join(pairs)} lower: {_noise(pairs.values())}, {_pct(level)} interval of the {what} reduction "
        f"above {by * scale:g}{unit}; all must hold"
    )
    return all_of(parts, rule)


def above_each(
    values: Mapping[str, Sequence[float]],
    threshold: float,
    *,
    level: float = DEFAULT_LEVEL,
    what: str = "mean",
    scale: float = 1.0,
    unit: str = "",
    n_images: int | None = None,
) -> Checked:
    """Each ``name: values per seed`` with its mean above ``threshold``; all must hold.

    Per part :func:`kdutils.results.claim_mean_above`: the one-sample t interval (two-sided at
    ``level``) above ``threshold`` holds, below it does not, *not testable* with one seed. A
    rate that is 0 on every seed does not hold (its interval is the point 0). ``n_images``: each
    value is a mean over a fixed set of that many images of a per-image value in [0, 1], whose sampling
    the interval counts (:func:`kdutils.results.share_interval`; a rate of 0 then keeps a width).
    """
    if not values:
        raise ValueError("above_each needs at least one quantity")
    parts = {
        name: claim_mean_above(v, threshold, level=level, label=name, scale=scale, unit=unit, n_images=n_images)
        for name, v in values.items()
    }
    over = "seeds" if n_images is None else f"seeds and the {n_images} images"
    rule = (
        f"each of {', '.join(values)}: one-sample t over {over}, {_pct(level)} interval of the {what} above "
        f"{threshold * scale:g}{unit}; all must hold"
    )
    return all_of(parts, rule)


def every(checks: Mapping[str, Checked]) -> Checked:
    """Several checked rules as one claim (all must hold): their parts side by side, the rules joined by AND."""
    if not checks:
        raise ValueError("every needs at least one rule")
    parts = {
        f"{name}: {part}" if len(c.parts) > 1 else name: v
        for name, c in checks.items()
        for part, v in (c.parts.items() or {name: c.verdict}.items())
    }
    rule = " AND ".join(f"({name}) {c.verdict.rule}" for name, c in checks.items())
    return all_of(parts, rule)


def steeper(
    x: Sequence[float],
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    *,
    name_a: str = "a",
    name_b: str = "b",
    level: float = DEFAULT_LEVEL,
) -> Checked:
    """Is curve ``a`` steeper than curve ``b``? Their per-seed slopes, paired by seed.

    ``x``: one value per point (each teacher's accuracy); ``a[k]`` and ``b[k]``: the two
    methods' values per seed at point ``k`` (:func:`kdutils.results.curve_slopes`). Holds when
    the paired t interval (two-sided at ``level``) of ``slope_a - slope_b`` lies above 0, does
    not hold when it lies below 0; *not testable* with one seed. A slope is in points of the
    student per point of the teacher.
    """
    sa, sb = curve_slopes(x, a), curve_slopes(x, b)
    label = f"slope({name_a}) - slope({name_b})"
    v = claim_better(sa, sb, by=0.0, level=level, label=label, scale=1.0, unit=" (points per teacher point)")
    return Checked(v, {label: v})


def skipped(reason: str, *, claim: str = "the claim") -> Checked:
    """*not testable*: the experiment behind ``claim`` did not run (``reason``, e.g. a notebook parameter)."""
    v = Verdict(NOT_TESTABLE, math.nan, math.nan, math.nan, DEFAULT_LEVEL, 0, math.nan, f"not run: {reason}")
    return Checked(v, {}, note=f"not measured: {reason}")


def only_at(
    checked: Checked | None, *, profile: str, dataset: str, where: Iterable[tuple[str, str]], claim: str = "the claim"
) -> Checked:
    """``checked`` where ``(profile, dataset)`` is one of ``where``; elsewhere *not testable*.

    For a claim about one dataset and protocol (CMKD's "state of the art on CIFAR-100"): a
    faster profile or another dataset cannot test it, and the table says so with a computed
    verdict. ``checked`` may be None where it is not testable (nothing to compute).
    """
    where = [tuple(w) for w in where]
    if (profile, dataset) in where and checked is not None:
        return checked
    at = " or ".join(f"{d} at the {p} profile" for p, d in where)
    rule = f"testable only on {at}"
    v = Verdict(NOT_TESTABLE, math.nan, math.nan, math.nan, DEFAULT_LEVEL, 0, math.nan, rule)
    return Checked(v, {}, note=f"not measured: {claim} is about {at}; this run is {dataset} at the {profile} profile")


# --------------------------------------------------------------------------- data usage


def data_efficiency(
    usage_method: Sequence[float],
    usage_ref: float | Sequence[float] = 1.0,
    saving: float = DATA_SAVING,
    *,
    level: float = DEFAULT_LEVEL,
    label: str = "the method",
) -> Verdict:
    """The one data-efficiency rule: the method uses at least ``saving`` fewer sample-epochs than KD.

    ``usage_method``: per seed, the sample-epochs that took part in a backward pass relative
    to KD's on the whole training split (``data_usage`` of the evaluation suite); ``usage_ref``:
    KD's own (1.0 by definition, or a list per seed to divide by, paired). Holds when the
    upper end of the t interval (two-sided at ``level``) of the ratio is below ``1 - saving``;
    does not hold when its lower end is above it. Not testable with one seed.
    """
    if not 0.0 < saving < 1.0:
        raise ValueError(f"saving must be in (0, 1), got {saving}")
    u = np.asarray(list(usage_method), dtype=float)
    ref = np.asarray(usage_ref if isinstance(usage_ref, Iterable) else [usage_ref] * len(u), dtype=float)
    if len(ref) != len(u):
        raise ValueError(f"usage_ref has {len(ref)} values for {len(u)} seeds of the method")
    if (ref <= 0).any():
        raise ValueError("usage_ref must be positive")
    return claim_mean_below(
        u / ref, 1.0 - saving, level=level, label=f"{label}'s sample-epochs relative to KD", scale=100.0, unit=" %"
    )


def data_efficient_each(
    usages: Mapping[str, Sequence[float]],
    usage_ref: float | Sequence[float] = 1.0,
    saving: float = DATA_SAVING,
    *,
    level: float = DEFAULT_LEVEL,
) -> Checked:
    """:func:`data_efficiency` for each ``name: usage per seed``; all must hold."""
    if not usages:
        raise ValueError("data_efficient_each needs at least one method")
    parts = {}
    for name, u in usages.items():
        v = data_efficiency(u, usage_ref, saving, level=level, label=name)
        parts[f"{name} (saves {_saving(v)})"] = v
    rule = (
        f"each of {', '.join(usages)} uses at most {1 - saving:.0%} of KD's sample-epochs (a saving of "
        f"at least {saving:.0%} [ours]): one-sample t, upper end of the {_pct(level)} interval below "
        f"{1 - saving:.0%}; all must hold"
    )
    return all_of(parts, rule)


def data_efficient_and_non_inferior(
    usage: Sequence[float],
    acc: Sequence[float],
    acc_ref: Sequence[float],
    *,
    name: str = "the method",
    ref_name: str = "the reference",
    saving: float = DATA_SAVING,
    margin=NON_INFERIORITY_MARGIN,
    level: float = DEFAULT_LEVEL,
) -> Checked:
    """Data efficient (:func:`data_efficiency`) AND non-inferior in accuracy to ``ref_name`` (paired
    by seed); ``margin`` as in :func:`non_inferior_each`."""
    eff = data_efficiency(usage, 1.0, saving, level=level, label=name)
    value, text = _margin(margin)

    def decide(m: float) -> Checked:
        parts = {
            f"{name}'s sample-epochs relative to KD (saves {_saving(eff)})": eff,
            f"{name} vs {ref_name}": claim_non_inferior(
                acc, acc_ref, margin=m, level=level, label=f"{name} - {ref_name}"
            ),
        }
        rule = (
            f"{name} uses at most {1 - saving:.0%} of KD's sample-epochs (upper end of the {_pct(level)} interval) "
            f"AND is non-inferior to {ref_name} ({_noise([(acc, acc_ref)])}, {_pct(level)} interval above minus "
            f"the margin, {text} [ours])"
        )
        return all_of(parts, rule)

    checked = decide(value)
    return Checked(checked.verdict, checked.parts, sensitivity=_sensitivity(decide, value))


# --------------------------------------------------------------------------- retention


def retention_above(
    mu_s: Sequence[float],
    threshold: float = RETENTION_THRESHOLD,
    *,
    level: float = DEFAULT_LEVEL,
    label: str = "mu_S (training set)",
    n_images: int | None = None,
) -> Checked:
    """mu_S (share of the teacher's mistakes the student gets right) above ``threshold``, over seeds.

    ``n_images``: how many training images the teacher gets wrong (:meth:`NotebookContext.teacher_mistakes`);
    with it the interval covers the sampling of those images as well as the seeds
    (:func:`kdutils.results.share_interval`), so a verdict on ten images is as wide as ten images make it,
    and the measured text says how many."""
    v = claim_mean_above(mu_s, threshold, level=level, label=label, scale=1.0, unit="", n_images=n_images)
    if n_images is None:
        return Checked(v, {label: v})
    return Checked(v, {label: v}, note=f"{v.describe()}, on the {n_images} training images the teacher gets wrong")


# --------------------------------------------------------------------------- robustness


def robust_setting(dataset: str, epsilons: Sequence[float]) -> tuple[float, float]:
    """(epsilon, paper's margin in points) of the robustness claim on ``dataset``.

    The epsilon named in advance (:data:`ROBUST_CLAIMS`: 0.1 on MNIST / Fashion-MNIST, 4/255 on
    CIFAR-10; 0.1 and 3 points elsewhere) is replaced by the nearest value of the measured
    grid ``epsilons`` (ties: the smaller).
    """
    eps, points = ROBUST_CLAIMS.get(dataset, _ROBUST_DEFAULT)
    grid = sorted(float(e) for e in epsilons if e > 0)
    if not grid:
        raise ValueError(f"no epsilon > 0 in the grid {list(epsilons)}")
    return min(grid, key=lambda e: (abs(e - eps), e)), points


def robust_margin(
    a: Sequence[float],
    b: Sequence[float],
    *,
    points: float,
    level: float = DEFAULT_LEVEL,
    label: str = "a - b",
) -> Checked:
    """Is ``a``'s robust accuracy above ``b``'s by at least ``points`` (the paper's number), paired by seed?

    Holds when the lower end of the paired t interval (two-sided at ``level``) of ``a - b``
    reaches ``points / 100``; does not hold when its upper end stays below. With the per-image records
    (:class:`kdutils.report.evidence.SeedValues` from :meth:`kdutils.notebook.NotebookContext.paired`:
    which attacked images each seed's model keeps) the interval covers the attacked images' sampling
    too, paired on the same images (:func:`kdutils.report.evidence.two_noise_interval`); plain lists
    keep the seed-only paired t.
    """
    v = claim_better(a, b, by=points / 100.0, level=level, label=label)
    return Checked(v, {label: v})


# --------------------------------------------------------------------------- significance


def significance_pruning(
    least: Mapping[float, Sequence[float]], random: Mapping[float, Sequence[float]], *, level: float = DEFAULT_LEVEL
) -> Checked:
    """[ours] At every k, the student without the least significant k % beats the one without a random k %.

    ``least[k]`` and ``random[k]``: accuracy per seed, paired by seed (seed s drops random draw
    s, so the interval covers seeds and random draws at once). Per k :func:`claim_better`
    (interval of least - random above 0); all must hold.
    """
    if not least or set(least) != set(random):
        raise ValueError(
            f"significance_pruning: the same fractions on both sides, got {sorted(least)} and {sorted(random)}"
        )
    parts = {
        f"k = {k:.0%}": claim_better(least[k], random[k], level=level, label=f"least significant - random, k = {k:.0%}")
        for k in sorted(least)
    }
    noise = _noise((least[k], random[k]) for k in sorted(least))
    rule = (
        f"at every k, accuracy without the least significant k % minus accuracy without a random k %: "
        f"{noise} (seed s = random draw s), {_pct(level)} interval above 0; all must hold"
    )
    return all_of(parts, rule)


# --------------------------------------------------------------------------- convergence


def convergence(
    histories: Iterable[Sequence[Mapping]], *, key: str = "val_acc", tail: float = 0.2, tol: float = 0.003
) -> str:
    """Did the runs converge? The mean gain of ``key`` over the last ``tail`` share of the epochs.

    The rule (issue 11): a plateau when the validation accuracy gained less than ``tol``
    (0.3 points) over the last 20 % of the epochs (at least one epoch), averaged over the runs;
    ``"no (val acc +1.3 points over the last 4 of 20 epochs)"`` otherwise. A claims table shows
    it next to every verdict: a verdict on students still learning says more about the epochs
    than about the paper.
    """
    gains, spans = [], set()
    for h in histories:
        vals = [float(r[key]) for r in h if r.get(key) is not None and math.isfinite(float(r[key]))]
        if len(vals) < 2:
            continue
        last = min(len(vals) - 1, max(1, round(tail * len(vals))))
        gains.append(vals[-1] - vals[-1 - last])
        spans.add((last, len(vals)))
    if not gains:
        return f"unknown (no {key} over two epochs)"
    g = float(np.mean(gains))
    last, total = max(spans, key=lambda s: s[1])
    text = f"{key.replace('_', ' ')} {g * 100:+.1f} points over the last {last} of {total} epochs"
    return f"no ({text})" if g >= tol else f"plateau ({text})"


class Findings(str):
    """Markdown text that a notebook shows rendered (``_repr_markdown_``) and prints as itself."""

    def _repr_markdown_(self) -> str:
        return str(self)


#: what each verdict says, in words a reader can act on (the thresholds are the rules', in the table)
_IN_WORDS = {
    HOLDS: "**holds**: every interval of its rule lies on the claim's side of the threshold",
    FAILS: "**does not hold**: an interval of its rule lies wholly on the other side of the threshold",
    INCONCLUSIVE: "**inconclusive**: an interval of its rule contains the threshold, so these seeds cannot decide it",
}


def findings(table, *, decided_only: bool = False) -> Findings:
    """ "What we found": one sentence per row of a claims table (:func:`kdutils.results.claims_frame`),
    generated from its verdict and its measured interval, never typed: the claim, where it was
    decided (dataset, profile), the verdict in words and the numbers behind it. ``decided_only``: the
    rows that hold or do not hold, with a count of the others (06's long table)."""
    rows = [r._asdict() for r in table.itertuples(index=False)] if len(table) else []
    shown = [r for r in rows if r.get("verdict") in (HOLDS, FAILS)] if decided_only else rows
    lines = ["**What we found** (generated from the claims table, not typed):", ""]
    for d in shown:
        verdict = str(d.get("verdict", ""))
        said = _IN_WORDS.get(verdict, f"**{verdict}**" if verdict else "no verdict")
        where = ", ".join(str(d[k]) for k in ("dataset", "profile") if d.get(k))
        measured = str(d.get("measured", "")).strip()
        if measured and not measured.startswith("not measured"):
            measured = f"measured {measured}"
        lines.append(f"- {d['claim']} ({where}): {said}" + (f"; {measured}." if measured else "."))
    rest = len(rows) - len(shown)
    if not shown:
        lines.append(
            f"- no claim holds or fails here: {'all ' if rest else ''}{rest} rows inconclusive or not testable."
        )
    elif rest:
        lines.append(f"- the other {rest} rows are inconclusive or not testable (the claims table has them).")
    return Findings("\n".join(lines))

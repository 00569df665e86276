"""Exercises for a course: predict, then run, then check.

Each paper module lists its notebook's exercises (``EXERCISES``, a few :class:`Exercise`); the
notebook's last cells show them (:func:`show`) and let a student check an answer against what the
run measured (:func:`check`), e.g.::

    kd.exercises.check(paper.EXERCISES, "00.1", answer="holds", ctx=ctx, table=claims)

Every exercise states its expected outcome for the instructor (shown with the prompt, under
"instructor"), and where the answer can be compared with a computed number, a checker says what is
right or wrong: a predicted verdict against the claims table, a predicted direction (higher / lower)
against the means over seeds, a name against the run's best. Checkers read the run, never a typed
answer key, so they stay right at every profile and dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .claims import Findings
from .results import FAILS, HOLDS, INCONCLUSIVE

#: a checker: (answer, ctx, table) -> (right or not, what the run says); None when it cannot tell
Checker = Callable[[Any, Any, Any], tuple[bool | None, str]]


@dataclass(frozen=True)
class Exercise:
    """``key`` ("00.1"), what to do and predict (``prompt``), the outcome an instructor should expect
    (``expected``), how long it takes (``minutes`` on 2 cores at ``profile``) and an optional ``checker``."""

    key: str
    prompt: str
    expected: str
    profile: str = "smoke"
    minutes: int = 2
    checker: Checker | None = None


def show(exercises: Sequence[Exercise]) -> Findings:
    """The exercises as Markdown: each prompt, its profile and time, whether it has a checker, and the
    instructor's expected outcome."""
    lines = ["**Exercises** (predict first, then run; `kd.exercises.check` compares an answer with the run):", ""]
    for e in exercises:
        how = "checked by `kd.exercises.check`" if e.checker else "discuss"
        lines.append(f"{e.key}. {e.prompt} *({e.profile}, about {e.minutes} min on 2 cores; {how})*")
        lines.append(f"   - *instructor:* {e.expected}")
    return Findings("\n".join(lines))


def check(
    exercises: Sequence[Exercise], key: str, answer: Any = None, *, ctx: Any = None, table: Any = None
) -> Findings:
    """Compare ``answer`` with what the run measured, for exercise ``key``: "right", "not quite" (with
    the measured value), or why it cannot be checked (no checker, no answer yet)."""
    by_key = {e.key: e for e in exercises}
    if key not in by_key:
        from ..core.errors import UnknownNameError

        raise UnknownNameError("exercise", key, by_key)
    e = by_key[key]
    if e.checker is None:
        return Findings(
            f"{key}: no checker for this one: compare with your neighbour, then read the instructor's note."
        )
    if answer is None:
        return Findings(f"{key}: no answer given yet: call `kd.exercises.check(..., {key!r}, answer=...)`.")
    right, said = e.checker(answer, ctx, table)
    if right is None:
        return Findings(f"{key}: cannot tell from this run: {said}")
    return Findings(f"{key}: {'right' if right else 'not quite'}: {said}")


# ---------------------------------------------------------------- checkers
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)


def predict_verdict(claim: str, dataset: str | None = None) -> Checker:
    """The answer is the verdict of the first claims-table row whose claim contains ``claim`` (on
    ``dataset``, else the first dataset's)."""

    def checker(answer, ctx, table):
        if answer not in VERDICTS:
            return None, f"answer one of {', '.join(VERDICTS)}"
        if table is None:
            return None, "pass table= (the claims table)"
        rows = table[table.claim.str.contains(claim, regex=False)]
        if dataset is not None:
            rows = rows[rows.dataset.str.startswith(dataset)]
        if rows.empty:
            return None, f"no claim containing {claim!r} in this table"
        r = rows.iloc[0]
        return answer == r.verdict, f"the run says *{r.verdict}* ({r.measured})"

    return checker


def predict_number_in_claim(claim: str, pattern: str) -> Checker:
    """The answer is a number that the first claims-table row containing ``claim`` names in its text
    (``pattern``'s first group, e.g. the temperature picked on validation: ``r"tau = ([0-9.]+)"``)."""
    import re

    def checker(answer, ctx, table):
        try:
            value = float(answer)
        except (TypeError, ValueError):
            return None, "answer a number"
        if table is None:
            return None, "pass table= (the claims table)"
        rows = table[table.claim.str.contains(claim, regex=False)]
        m = re.search(pattern, rows.iloc[0].claim) if not rows.empty else None
        if m is None:
            return None, f"no claim containing {claim!r} names it in this table"
        return value == float(m.group(1)), f"the run's claim says {m.group(0)}"

    return checker


def predict_direction(a: str, b: str, metric: str = "accuracy") -> Checker:
    """The answer is ``"higher"`` or ``"lower"``: ``a``'s mean ``metric`` over seeds against ``b``'s
    (first dataset of the context)."""

    def checker(answer, ctx, table):
        if answer not in ("higher", "lower"):
            return None, "answer 'higher' or 'lower'"
        if ctx is None:
            return None, "pass ctx= (the notebook's context)"
        ds = ctx.datasets[0]
        try:
            va, vb = ctx.values(ds, a, metric), ctx.values(ds, b, metric)
        except (KeyError, ValueError) as exc:
            return None, f"{exc}"
        if not va or not vb:
            return None, f"no {metric} for {a!r} or {b!r} in this run"
        ma, mb = sum(va) / len(va), sum(vb) / len(vb)
        if ma == mb:
            return None, f"{a} and {b} tie on {metric} ({ma:.4f})"
        truth = "higher" if ma > mb else "lower"
        return answer == truth, f"{a} {ma:.4f} vs {b} {mb:.4f} ({metric}, mean over {len(va)} seeds): {truth}"

    return checker


def predict_best(labels: Callable[[Any], Sequence[str]], metric: str = "accuracy") -> Checker:
    """The answer is the label with the highest mean ``metric`` among ``labels(ctx)``."""

    def checker(answer, ctx, table):
        if ctx is None:
            return None, "pass ctx= (the notebook's context)"
        ds = ctx.datasets[0]
        means = {}
        for lb in labels(ctx):
            v = ctx.values(ds, lb, metric) if any(k[:2] == (ds, lb) for k in ctx.evals) else []
            if v:
                means[lb] = sum(v) / len(v)
        if not means:
            return None, f"no {metric} in this run"
        best = max(means, key=means.get)
        return answer == best, f"the best on {metric} is {best} ({means[best]:.4f})"

    return checker


def registered(name: str) -> Checker:
    """The answer is a method name: right once it is registered (its file added to kdutils/methods)."""

    def checker(answer, ctx, table):
        from ..methods import METHODS

        ok = answer == name and name in METHODS
        return (
            ok,
            f"{name!r} is {'' if name in METHODS else 'not yet '}registered (restart the kernel after adding the file)",
        )

    return checker


__all__ = [
    "Exercise",
    "show",
    "check",
    "predict_verdict",
    "predict_number_in_claim",
    "predict_direction",
    "predict_best",
    "registered",
]

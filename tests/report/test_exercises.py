"""Exercises (issue 35.4): every notebook has a few, each with the instructor's expected outcome, and
their checkers compare an answer with what a run measured, never with a typed key."""

from __future__ import annotations

import pandas as pd
import pytest

import kdutils as kd
from kdutils.papers import PAPERS
from kdutils.report import exercises as X


@pytest.mark.parametrize("notebook", sorted(PAPERS))
def test_every_notebook_has_three_to_five_exercises_for_a_course(notebook):
    ex = PAPERS[notebook].EXERCISES
    assert 3 <= len(ex) <= 5
    assert len({e.key for e in ex}) == len(ex) and all(e.key.startswith(notebook[:2] + ".") for e in ex)
    assert all(e.expected and e.profile in ("smoke", "quick") and e.minutes <= 5 for e in ex)
    assert any(e.checker is not None for e in ex), "at least one exercise that a checker can judge"
    shown = X.show(ex)
    assert shown._repr_markdown_().count("*instructor:*") == len(ex)


class _Ctx:
    datasets = ["digits"]
    evals = {("digits", "KD", 0): {}, ("digits", "DIST", 0): {}}

    def values(self, ds, label, metric="accuracy"):
        return {"KD": [0.80, 0.82], "DIST": [0.85, 0.86]}[label]


TABLE = pd.DataFrame(
    {
        "claim": ["KD at tau = 4 beats the student alone", "something else"],
        "dataset": ["digits", "digits"],
        "measured": ["+1.00 [+0.20, +1.80]", "-"],
        "verdict": ["holds", "inconclusive"],
    }
)


def test_checkers_read_the_run():
    ex = [
        X.Exercise("9.1", "p", "e", checker=X.predict_verdict("tau = 4")),
        X.Exercise("9.2", "p", "e", checker=X.predict_direction("DIST", "KD")),
        X.Exercise("9.3", "p", "e", checker=X.predict_best(lambda ctx: ["KD", "DIST"])),
        X.Exercise("9.4", "p", "e"),
        X.Exercise("9.5", "p", "e", checker=X.registered("kd")),
    ]
    assert X.check(ex, "9.1", "holds", table=TABLE).startswith("9.1: right: the run says *holds* (+1.00")
    assert X.check(ex, "9.1", "inconclusive", table=TABLE).startswith("9.1: not quite")
    assert "answer one of holds" in X.check(ex, "9.1", "yes", table=TABLE)
    assert "pass table=" in X.check(ex, "9.1", "holds")
    assert X.check(ex, "9.2", "higher", ctx=_Ctx()).startswith("9.2: right: DIST 0.8550 vs KD 0.8100")
    assert X.check(ex, "9.2", "lower", ctx=_Ctx()).startswith("9.2: not quite")
    assert X.check(ex, "9.3", "DIST", ctx=_Ctx()).startswith("9.3: right: the best on accuracy is DIST")
    assert "no checker" in X.check(ex, "9.4", "anything")
    assert "no answer given yet" in X.check(ex, "9.2")
    assert X.check(ex, "9.5", "kd").startswith("9.5: right")
    tau = [X.Exercise("9.6", "p", "e", checker=X.predict_number_in_claim("tau =", r"tau = ([0-9.]+)"))]
    assert X.check(tau, "9.6", 4, table=TABLE).startswith("9.6: right: the run's claim says tau = 4")
    assert X.check(tau, "9.6", "2.0", table=TABLE).startswith("9.6: not quite")
    assert "answer a number" in X.check(tau, "9.6", "four", table=TABLE)
    with pytest.raises(kd.KDError, match="9.1"):
        X.check(ex, "9.9", "holds")


def test_the_notebooks_exercise_checkers_name_claims_their_tables_have():
    """A verdict checker names a claim of its notebook's committed claims table (where one exists)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "results"
    for notebook, module in PAPERS.items():
        tables = sorted((root / notebook).glob("*/*.claims.csv"))
        if not tables:
            continue
        table = pd.read_csv(tables[0], keep_default_na=False)
        for e in module.EXERCISES:
            if e.checker is not None and e.checker.__qualname__.startswith("predict_verdict"):
                out = X.check(module.EXERCISES, e.key, "holds", table=table)
                assert "no claim containing" not in out, (notebook, e.key, out)

"""Per-image records behind 04's student-independent faithfulness keys: rebuilt from the stored gaps
and both models' test predictions (no attack or bound recomputed), paired on the teacher-correct
points, published and rechecked from the files (issue 32.3)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import kdutils as kd
from kdutils.evaluations import at_delta

ONLY = ["accuracy", "confidence_gap", "crown_gap"]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faithful-records")
    c = kd.NotebookContext(
        "99_test",
        profile="smoke",
        seeds=2,
        progress=False,
        output_dir=tmp / "out",
        figures_dir=tmp / "fig",
        overrides={"teacher_epochs": 1, "student_epochs": 1, "train_subset": 320, "attack_samples": 40, "pgd_steps": 2},
    )
    teacher = c.teacher("digits", method={"name": "ibp", "warmup": 0.0}, model="ibp_small", robustness=False)
    methods = {"KD": "kd", "faithful": {"name": "faithful", "warmup": 0.0}}
    c.students("digits", methods, teacher, robustness=False, only=ONLY, model="ibp_small")
    return c


@pytest.mark.parametrize(
    "metric",
    ["gap_mean_tc", at_delta("gap_faithful_tc", 0.1), at_delta("crown_gap_faithful_tc", 0.1), "crown_gap_mean_tc"],
)
def test_faithfulness_keys_carry_one_record_per_teacher_correct_point(ctx, metric):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt records must give back every recorded value
        a, b = ctx.paired("digits", "faithful", "KD", metric)
    exp = ctx["digits"]
    teacher = ctx.runs["digits", "teacher", 0]
    y = exp.split.test_y[:40]
    n_tc = int((exp.logits(teacher, "test")[:40].argmax(1) == y).sum())
    assert a.correct.shape == b.correct.shape == (2, n_tc)
    assert a.correct.mean(axis=1) == pytest.approx(list(a), abs=1e-9)
    assert b.correct.mean(axis=1) == pytest.approx(list(b), abs=1e-9)
    assert ((a.correct >= 0) & (a.correct <= 1)).all()
    if "@" in metric:
        assert set(np.unique(a.correct)) <= {0.0, 1.0}
    wrong = exp.logits(ctx.runs["digits", "KD", 0], "test")[:40].argmax(1) != y
    if "mean" in metric:  # a point the student gets wrong counts as gap 1
        t_ok = exp.logits(teacher, "test")[:40].argmax(1) == y
        assert (b.correct[0][wrong[t_ok].numpy()] == 1.0).all()


def test_a_record_that_does_not_give_back_its_value_falls_back_to_seed_only(ctx):
    ev = ctx.evals["digits", "KD", 1]
    kept = ev["gap_values"]
    ev["gap_values"] = kept[:-1]  # one point short: the record cannot be rebuilt
    try:
        with pytest.warns(UserWarning, match="could not be rebuilt"):
            a, b = ctx.paired("digits", "faithful", "KD", "gap_mean_tc")
        assert getattr(b, "correct", None) is None and getattr(a, "correct", None) is not None
    finally:
        ev["gap_values"] = kept


def test_the_published_records_recheck_to_the_claims_interval(ctx, tmp_path, monkeypatch):
    from kdutils.report import published as P
    from kdutils.report.results import claim_better, claims_frame

    metric = "gap_mean_tc"
    a, b = ctx.paired("digits", "faithful", "KD", metric)
    v = claim_better(a, b, higher_is_better=False)
    assert "seeds and test images" in v.rule
    folder = tmp_path / "99_test" / "smoke"
    monkeypatch.setattr(type(ctx), "published_results_dir", lambda self: folder)
    ctx.save_results(claims_frame([]))
    p = P.find(tmp_path, "99_test", "smoke", "digits")
    assert P.images(p)["KD", 0, metric].dtype == np.float64  # the gap per point, not 0/1
    redo = P.recheck(p, "KD", "faithful", metric)  # lower is better: KD - faithful
    assert redo["two_noise"].low == pytest.approx(v.low, abs=1e-5)
    assert redo["two_noise"].high == pytest.approx(v.high, abs=1e-5)

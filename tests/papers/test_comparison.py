"""Notebook 06's rows, blocks, verdicts and figures (kdutils.papers.comparison), without training."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import kdutils as kd
from kdutils.experiments import costs
from kdutils.methods import METHODS
from kdutils.methods.base import Entry, Method, Terms
from kdutils.papers import comparison as C
from kdutils.report import plots


def test_every_registered_method_has_a_row_or_a_reason():
    labels = {e.label for e in C.entries()}
    for name in METHODS.names():
        cls = METHODS.get(name)
        if cls.not_comparable:
            assert name in C.left_out()
        else:
            declared = [e.label for e in cls.leaderboard] if cls.leaderboard is not None else [name]
            assert set(declared) <= labels, name
    assert [e.label for e in C.entries()][:2] == [C.ALONE, C.REFERENCE]
    assert len(labels) == len(C.entries())


def test_each_block_has_its_own_reference_rows_and_the_interval_block_its_pair():
    standard, interval = C.arms("standard"), C.arms("interval")
    assert list(standard)[:2] == ["student alone", "KD"]
    assert list(interval)[:2] == ["student alone | IBP pair", "KD | IBP pair"]
    assert C.reference("interval") == "KD | IBP pair" and C.reference("standard") == "KD"
    assert {"faithful (IBP) | IBP pair", "IBP (no teacher) | IBP pair"} <= set(interval)
    assert not set(standard) & set(interval)
    st = kd.configure("smoke")
    runs = C.plan(st)
    models = {r.label: r.model for r in runs if r.role == "student"}
    assert models["KD | IBP pair"] == C.INTERVAL_MODEL and models["KD"] == st.student_model
    teachers = {r.label: r.teacher.label if r.teacher else None for r in runs if r.role == "student"}
    assert teachers["regulated"] == C.SR_TEACHER and teachers["KD"] == C.TEACHER
    assert teachers["KD | IBP pair"] == C.INTERVAL_TEACHER and teachers["student alone"] is None


def test_the_interval_block_trains_on_a_10k_subset_at_quick_only():
    quick = kd.configure("quick", "fashion_mnist", **C.sizes("quick", "fashion_mnist"))
    runs = C.plan(quick)
    share = {r.label: r.rows_share for r in runs}
    n = costs.train_rows(quick)
    assert share["teacher | IBP pair"] == share["faithful (IBP) | IBP pair"] == pytest.approx(10000 / n)
    assert share["KD"] == share["teacher"] == share["faithful (PGD)"] == 1.0
    assert C.interval_selection(quick).identity() == {"name": "keep_random", "count": 10000, "seed": 0}
    for profile in ("smoke", "full", "paper"):
        st = kd.configure(profile, "fashion_mnist")
        assert C.interval_selection(st) is None and all(r.rows_share == 1.0 for r in C.plan(st))


def test_adversarial_rows_train_at_the_datasets_epsilon_with_the_profiles_steps():
    st = kd.configure("smoke", "digits", faithful_eps=0.05, train_pgd_steps=3)
    frame = C.entries_frame()
    assert set(frame.block) == {"standard", "interval"}
    spec = dict(C.arms()["RSLAD"][0].method_spec(st))
    assert spec["eps"] == 0.05 and spec["steps"] == 3
    assert C.robust_eps(st) == 0.05 and C.robust_eps(kd.configure("smoke", faithful_eps=0.07)) in st.epsilons


@dataclass
class _Toy(Method):
    tau: float = 2.0

    def __call__(self, b):  # pragma: no cover - never trained here
        return Terms(per_sample=b.logits.sum(1))


def _register(monkeypatch, name, cls):
    monkeypatch.setitem(METHODS._items, name, cls)
    cls.name = name


def test_a_method_that_declares_itself_not_comparable_is_listed_with_its_reason(monkeypatch):
    toy = type("NotHere", (_Toy,), {"not_comparable": "needs a second teacher no pair here has"})
    toy = dataclass(toy)
    _register(monkeypatch, "toy_not_here", toy)
    assert "toy_not_here" not in C.arms()
    assert C.left_out()["toy_not_here"] == "needs a second teacher no pair here has"
    row = C.entries_frame().set_index("label").loc["toy_not_here"]
    assert row.block == "left out" and "second teacher" in row.source


def test_declared_rows_are_checked(monkeypatch):
    toy = dataclass(type("Dup", (_Toy,), {"leaderboard": (Entry("KD", "kd"),)}))
    _register(monkeypatch, "toy_dup", toy)
    with pytest.raises(ValueError, match="labelled 'KD'"):
        C.entries()
    toy2 = dataclass(type("Needy", (_Toy,), {"leaderboard": (Entry("needy", "kd", needs=("a GPU",)),)}))
    monkeypatch.delitem(METHODS._items, "toy_dup")
    _register(monkeypatch, "toy_needy", toy2)
    with pytest.raises(kd.KDError, match="sr teacher"):
        C.entries()
    with pytest.raises(kd.KDError, match="standard"):
        Entry("x", "kd", block="gpu")


def test_pareto_front_keeps_the_points_nothing_beats_on_cost_and_accuracy():
    cost = [1.0, 2.0, 3.0, 1.5, 4.0, math.nan]
    acc = [0.80, 0.85, 0.84, 0.79, 0.90, 0.99]
    assert plots.pareto_front(cost, acc) == [0, 1, 4]
    assert plots.pareto_front([1, 1], [0.5, 0.6]) == [1]  # the same cost: the more accurate only
    fig = plots.method_scatter(
        pd.Series(cost[:5], index=list("abcde")), pd.Series(acc[:5], index=list("abcde")),
        xlabel="cost", ylabel="accuracy", pareto=True,
    )  # fmt: skip
    ax = fig.axes[0]
    assert ax.get_legend() is not None and "Pareto front" in [t.get_text() for t in ax.get_legend().get_texts()]
    colors = [tuple(np.round(c.get_facecolor()[0][:3], 4)) for c in ax.collections[:5]]
    assert colors[0] == tuple(np.round(plots.color_of("a"), 4)) and len(set(colors)) == 5


def test_the_verdict_grid_reads_better_worse_and_inconclusive():
    rows = pd.DataFrame(
        {
            "claim": ["DIST beats KD on accuracy", "DIST beats KD on calibration", "CMKD beats KD on accuracy"],
            "dataset": ["mnist"] * 3,
            "verdict": ["holds", "does not hold", "inconclusive"],
        }
    )
    grid = C.verdict_grid(rows)
    assert grid.loc[("mnist", "DIST"), "accuracy"] == "better"
    assert grid.loc[("mnist", "DIST"), "calibration"] == "worse"
    assert grid.loc[("mnist", "CMKD"), "accuracy"] == "inconclusive"
    assert list(grid.columns) == ["accuracy", "calibration"]


def test_the_interval_blocks_teacher_and_students_train_on_its_rows(tmp_path, monkeypatch):
    """With a subset for the interval block (as at quick), its teacher and every one of its students
    carry the same rows in their run keys; the standard block's runs carry none."""
    monkeypatch.setitem(C.INTERVAL_ROWS, "smoke", 200)
    interval = C.arms("interval")
    keep = {k: interval[k] for k in ("KD | IBP pair", "IBP (no teacher) | IBP pair")}
    standard = {"KD": C.arms("standard")["KD"]}
    monkeypatch.setattr(C, "arms", lambda block=None: {**standard, **keep} if block is None else None)
    ctx = kd.NotebookContext(
        "06_test",
        profile="smoke",
        seeds=1,
        output_dir=tmp_path,
        figures_dir=tmp_path,
        verbose=False,
        progress=False,
        sizes=C.sizes,
        overrides={"dry_run": True},
        store=kd.RunStore(tmp_path / "runs"),
    )
    C.train(ctx)
    rows = {"name": "keep_random", "count": 200, "seed": 0}
    for label in ("teacher | IBP pair", *keep):
        assert ctx.runs["digits", label, 0].config["train_rows"] == rows, label
    assert "train_rows" not in ctx.runs["digits", "KD", 0].config
    assert "train_rows" not in ctx.runs["digits", "teacher", 0].config


def test_the_rule_says_which_comparisons_cover_the_images():
    import numpy as np

    from kdutils.papers.comparison import _with_images_text
    from kdutils.report.evidence import SeedValues

    img = SeedValues([0.5, 0.5], np.ones((2, 4)))
    both = {"A": (img, img), "B": (img, img)}
    assert _with_images_text(both) == " with the images' sampling"
    assert _with_images_text({"A": ([0.5, 0.5], [0.4, 0.4])}) == ""
    mixed = _with_images_text({**both, "C": (img, [0.4, 0.4])})
    assert "for 2 of the 3 methods" in mixed and "another teacher" in mixed

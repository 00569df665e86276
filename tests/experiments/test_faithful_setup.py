"""Notebook 04's set-up (kdutils.experiments.faithful_setup): eps per dataset, sizes as configure overrides, variant seeds."""

from __future__ import annotations

import pytest

import kdutils as kd
from kdutils.errors import UnknownNameError


def _smoke_context(tmp_path, overrides: dict):
    """Notebook 04's context at smoke on a private store, with its own sizes and ``overrides``."""
    from kdutils import faithful_setup

    return kd.NotebookContext(
        "04_test",
        profile="smoke",
        output_dir=tmp_path,
        figures_dir=tmp_path,
        verbose=False,
        progress=False,
        sizes=faithful_setup.sizes,
        overrides=overrides,
        store=kd.RunStore(tmp_path / "runs"),
    )


def test_faithful_eps_follows_the_dataset():
    assert kd.configure("quick", "cifar10").faithful_eps == pytest.approx(2 / 255)
    assert kd.configure("quick", "mnist").faithful_eps == 0.1
    assert kd.configure("quick", "mnist", faithful_eps=0.05).faithful_eps == 0.05


def test_faithful_setup_sizes_are_configure_overrides():
    from kdutils import faithful_setup

    for profile in kd.PROFILES:
        for ds in ("digits", "mnist", "fashion_mnist", "cifar10"):
            st = kd.configure(profile, ds, **faithful_setup.sizes(profile, ds))  # every key is a valid override
            assert st.teacher_model.startswith("ibp_") and st.student_model.startswith("ibp_")
            assert st.faithful_eps in st.epsilons, "the certified / PGD curves must include the notebook's eps"
    assert kd.configure("quick", "mnist", **faithful_setup.sizes("quick", "mnist")).train_subset == 10000
    assert faithful_setup.sizes("paper", "cifar10")["faithful_eps"] == pytest.approx(2 / 255)
    assert faithful_setup.sizes("smoke", "digits")["faithful_eps"] == 0.05
    assert faithful_setup.default_datasets("quick") == ["mnist"] and faithful_setup.default_datasets("smoke") == []
    assert faithful_setup.ramps("quick") == (0.1, 0.5)
    with pytest.raises(UnknownNameError):
        faithful_setup.sizes("fast", "mnist")


def test_faithful_setup_variant_seeds():
    from kdutils import faithful_setup

    assert faithful_setup.variant_seeds("quick", (0, 1, 2)) == (0,)
    assert faithful_setup.variant_seeds("smoke", (0, 1)) == (0, 1)
    assert faithful_setup.variant_seeds("quick", (0, 1, 2), 2) == (0, 1)
    assert faithful_setup.variant_seeds("paper", (3, 4), 9) == (3, 4)


def test_notebook_context_sizes_then_overrides(tmp_path):
    from kdutils import faithful_setup
    from kdutils.profiles import merged_sizes as _merged

    merged = _merged(faithful_setup.sizes, "smoke", "digits", {"epochs": 1, "teacher_model": "ibp_medium"})
    assert merged["teacher_model"] == "ibp_medium" and "student_epochs" not in merged and merged["epochs"] == 1
    assert _merged(None, "smoke", "digits", {"lr": 0.1}) == {"lr": 0.1}
    ctx = _smoke_context(tmp_path, {"epochs": 2})
    st = ctx.settings("digits")
    assert (st.teacher_model, st.faithful_eps, st.train_pgd_steps) == ("ibp_small", 0.05, 2)
    assert st.student_recipe.epochs == 2 and st.teacher_recipe.epochs == 8


def test_choose_teacher_is_the_one_standard_error_rule():
    from kdutils.faithful_setup import choose_teacher

    # MNIST-like: the medium CNN 8 of 1,000 validation images ahead, inside one standard error (0.015)
    m, why = choose_teacher([("ibp_small", 0.622, 1000), ("ibp_medium", 0.630, 1000)])
    assert m == "ibp_small" and "within one standard error" in why
    # a clear lead (5 points, over 3 standard errors) wins
    assert choose_teacher([("ibp_small", 0.58, 1000), ("ibp_medium", 0.63, 1000)])[0] == "ibp_medium"
    # the simplest first wins outright when it is the best
    m, why = choose_teacher([("ibp_small", 0.449, 1000), ("ibp_medium", 0.415, 1000)])
    assert m == "ibp_small" and "highest" in why
    # the threshold is the best one's standard error: just outside it loses, on fewer images it wins
    se = (0.63 * 0.37 / 1000) ** 0.5
    assert choose_teacher([("a", 0.63 - se - 0.001, 1000), ("b", 0.63, 1000)])[0] == "b"
    assert choose_teacher([("a", 0.63 - se - 0.001, 100), ("b", 0.63, 100)])[0] == "a"
    assert choose_teacher([("only", 0.2, 10)])[0] == "only"
    with pytest.raises(ValueError, match="at least one"):
        choose_teacher([])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        choose_teacher([("a", 1.5, 10)])


def test_teacher_candidates_lead_with_the_profiles_or_the_users_model():
    from kdutils import faithful_setup

    assert faithful_setup.teacher_candidates("quick", "mnist") == ("ibp_small", "ibp_medium")
    assert faithful_setup.teacher_candidates("smoke", "digits") == ("ibp_small",)
    assert faithful_setup.teacher_candidates("quick", "mnist", "ibp_large") == ("ibp_large", "ibp_small", "ibp_medium")
    for profile in kd.PROFILES:  # the profile's teacher is its first candidate
        for ds in ("digits", "mnist", "cifar10"):
            assert faithful_setup.sizes(profile, ds)["teacher_model"] == faithful_setup.TEACHER_CANDIDATES[profile][0]
    with pytest.raises(UnknownNameError):
        faithful_setup.teacher_candidates("fast", "mnist")


def test_notebook_04_chooses_its_teacher_on_validation_and_trains_that_one(tmp_path, monkeypatch):
    """Two candidates at smoke (dry run): both trained and scored on validation, the rule's pick is the
    teacher every student distils from (the same run), and the plan lists both."""
    from kdutils import faithful_setup
    from kdutils.papers import faithful as paper

    monkeypatch.setitem(faithful_setup.TEACHER_CANDIDATES, "smoke", ("ibp_small", "ibp_medium"))
    ctx = _smoke_context(tmp_path, {"dry_run": True})
    table = paper.choose_teachers(ctx)
    assert list(table.index.get_level_values("candidate")) == ["ibp_small", "ibp_medium"]
    assert (table["chosen (one-SE rule)"] == "yes").sum() == 1
    pick, _ = paper.chosen(ctx, "digits")
    ev = {m: ctx.evals["digits", paper.candidate_label(m), 0] for m in ("ibp_small", "ibp_medium")}
    scores = [(m, ev[m]["val_certified"], ev[m]["val_n"]) for m in ev]
    assert pick == faithful_setup.choose_teacher(scores)[0]
    assert all("accuracy" in e and "certified@0.05" not in e for e in ev.values()), "candidates: no test-set bound"
    paper.train_teachers(ctx)
    assert ctx.runs["digits", "teacher", 0].key == ctx.runs["digits", paper.candidate_label(pick), 0].key
    labels = [r.label for r in paper.plan(ctx.settings("digits"))]
    assert labels[:2] == ["teacher", paper.candidate_label("ibp_medium")]

"""Notebook 04's set-up (kdutils.experiments.faithful_setup): eps per dataset, sizes as configure overrides, variant seeds."""

from __future__ import annotations

import pytest

import kdutils as kd
from kdutils.errors import UnknownNameError


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
    ctx = kd.NotebookContext(
        "04_test",
        profile="smoke",
        output_dir=tmp_path,
        figures_dir=tmp_path,
        verbose=False,
        sizes=faithful_setup.sizes,
        overrides={"epochs": 2},
        store=kd.RunStore(tmp_path / "runs"),
    )
    st = ctx.settings("digits")
    assert (st.teacher_model, st.faithful_eps, st.train_pgd_steps) == ("ibp_small", 0.05, 2)
    assert st.student_recipe.epochs == 2 and st.teacher_recipe.epochs == 8

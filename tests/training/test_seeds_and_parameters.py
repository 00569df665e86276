"""Seeds and notebook parameters: a bad value stops at once, naming the parameter, what it
accepts and the value given (issue 10)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import kdutils as kd

SEEDS_ALLOWED = re.escape(
    "expected an int n >= 1 (seeds 0..n-1), 0 for the profile's default, "
    "or a non-empty list of distinct non-negative ints such as [0, 1, 2]"
)
BAD_SEEDS = [[], -1, [0, -1], [1, 1], 1.5, "3", True, [0.5], [True]]


# ---------------------------------------------------------------- seeds
@pytest.mark.parametrize("seeds", BAD_SEEDS, ids=repr)
def test_configure_rejects_bad_seeds_naming_what_is_allowed(seeds):
    with pytest.raises(kd.ParameterError, match=r"^parameter seeds = .*: " + SEEDS_ALLOWED + "$"):
        kd.configure("smoke", seeds=seeds)


@pytest.mark.parametrize("seeds", BAD_SEEDS, ids=repr)
def test_notebook_context_rejects_bad_seeds(seeds, tmp_path):
    with pytest.raises(kd.ParameterError, match=r"^parameter seeds = .*: " + SEEDS_ALLOWED + "$"):
        kd.NotebookContext("99_test", profile="smoke", seeds=seeds, output_dir=tmp_path, figures_dir=tmp_path)


def test_the_seeds_that_are_allowed():
    assert kd.configure("smoke").seeds == (0, 1)  # the profile's default
    assert kd.configure("smoke", seeds=0).seeds == (0, 1)
    assert kd.configure("smoke", seeds=3).seeds == (0, 1, 2)
    assert kd.configure("smoke", seeds=[4, 2]).seeds == (4, 2)
    assert kd.configure("smoke", seeds=(np.int64(5),)).seeds == (5,)
    assert kd.configure("smoke", seeds=np.int64(1)).seeds == (0,)


def test_a_negative_seed_stops_a_run_too(store):
    exp = kd.Experiment(kd.configure("smoke", progress=False, device="cpu"), store)
    with pytest.raises(kd.ParameterError, match=r"parameter seed = -1 \(int\): expected a non-negative int"):
        exp.student("ce", seed=-1)
    assert store.keys() == []


# ---------------------------------------------------------------- notebook parameters
@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("temperatures", "abc", "a non-empty list of positive numbers, e.g. [1.0, 2.0, 4.0]"),
        ("temperatures", [], "a non-empty list of positive numbers"),
        ("temperatures", [1.0, -2.0], "a non-empty list of positive numbers"),
        ("prune_fractions", [0.1, 1.0], "a list of numbers in [0, 1)"),
        ("prune_fractions", "0.1", "a list of numbers in [0, 1)"),
        ("weighting", "min", "one of the significance weightings 'max', 'epochs', 'sqrt'"),
        ("fixed_threshold_teacher", "yes", "True, False or 'auto'"),
        ("lr_form", "MSE", "one of LR's loss forms 'mse', 'kl'"),
        ("scorer", "random", "one of the data-selection scorers 'confidence', 'correct', 'influence'"),
        ("keep", 0, "a number in (0, 1]"),
        ("keep", True, "a number in (0, 1]"),
        ("keep_sweep", [0.5, 1.0], "a list of numbers in (0, 1)"),
        ("sweep_seeds", -1, "an int >= 0"),
        ("sweep_seeds", 1.0, "an int >= 0"),
        ("ablations", "no", "True or False"),
        ("force", "False", "True or False"),
        ("progress", 1, "True or False"),
        ("datasets", "mnist", "a list of dataset names such as ['mnist'] ("),
        ("datasets", ["mnsit"], "a list of dataset names such as ['mnist'] ("),
        ("dataset", "mnsit", "a dataset name ("),
        ("profile", "fast", "one of 'smoke', 'quick', 'full', 'paper'"),
        ("overrides", "epochs=5", "a dict of kdutils.configure overrides, e.g. {'epochs': 5}"),
        ("output_dir", 3, "a folder path"),
        ("figures_dir", None, "a folder path"),
        ("device", "gpu", "one of auto, cpu, cuda, cuda:N, mps"),
    ],
)
def test_check_parameters_names_the_parameter_the_type_and_the_value(name, value, expected):
    with pytest.raises(kd.ParameterError) as info:
        kd.check_parameters(**{name: value})
    msg = str(info.value)
    assert msg.startswith(f"parameter {name} = {value!r} ({type(value).__name__}): expected "), msg
    assert expected in msg and "\n" not in msg


def test_check_parameters_seeds_and_overrides():
    with pytest.raises(kd.ParameterError, match=r"^parameter seeds = \[\] \(list\): " + SEEDS_ALLOWED):
        kd.check_parameters(seeds=[])
    with pytest.raises(kd.UnknownNameError, match=r"unknown override 'epoch'; valid choices: .*epochs"):
        kd.check_parameters(overrides={"epoch": 3})


def test_check_parameters_accepts_good_values_and_asks_for_a_rule_for_new_names():
    kd.check_parameters(
        profile="smoke",
        dataset="",
        datasets=["digits", "image_folder:/somewhere"],
        seeds=[0, 2],
        device="cuda:1",
        temperatures=[1, 2.5],
        prune_fractions=[],
        weighting="sqrt",
        fixed_threshold_teacher="auto",
        lr_form="kl",
        scorer="correct",
        keep=1,
        keep_sweep=[],
        sweep_seeds=0,
        ablations=False,
        overrides={"epochs": 2},
        output_dir="",
        figures_dir=Path("x"),
        force=True,
        progress=False,
    )
    with pytest.raises(TypeError, match="no rule for parameter 'width'"):
        kd.check_parameters(width=3)
    kd.check_parameters(rules={"width": ("a positive int", lambda v: isinstance(v, int) and v > 0)}, width=3)
    with pytest.raises(kd.ParameterError, match=r"parameter width = 0 \(int\): expected a positive int"):
        kd.check_parameters(rules={"width": ("a positive int", lambda v: isinstance(v, int) and v > 0)}, width=0)


def test_notebook_context_wants_a_list_of_datasets(tmp_path):
    with pytest.raises(
        kd.ParameterError,
        match=r"parameter datasets = 'digits' \(str\): expected a list of dataset names such as \['mnist'\]",
    ):
        kd.NotebookContext("99_test", profile="smoke", datasets="digits", output_dir=tmp_path, figures_dir=tmp_path)


def test_is_count_is_the_one_first_n_rule():
    from kdutils.parameters import check_parameters
    from kdutils.profiles import is_count

    assert all(is_count(v) for v in (0, 3, np.int64(2)))
    assert not any(is_count(v) for v in (-1, 1.0, True, "2", None))
    for name in ("max_pairs", "series_teachers", "ablation_seeds", "sweep_seeds", "pgd_variant_seeds"):
        with pytest.raises(kd.ParameterError, match="int >= 0|non-negative int"):
            check_parameters(**{name: -1})


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            {"epsilons": [-0.1, 0.1]},
            "epsilons = \\[-0.1, 0.1\\] \\(list\\): expected a non-empty list of attack budgets",
        ),
        ({"epsilons": []}, "epsilons = \\[\\]"),
        (
            {"executor": "threads"},
            "executor = 'threads' \\(str\\): expected one of 'auto', 'processes', 'ray', 'serial'",
        ),
        ({"pgd_steps": -3}, "pgd_steps = -3 \\(int\\): expected an int >= 1"),
        ({"attack_samples": 0}, "attack_samples = 0 \\(int\\): expected an int >= 1"),
        ({"train_pgd_steps": 0}, "train_pgd_steps = 0"),
        ({"faithful_eps": 2}, "faithful_eps = 2"),
        ({"test_subset": 0}, "test_subset = 0"),
        ({"val_fraction": 1.0}, "val_fraction = 1.0"),
    ],
)
def test_every_override_is_checked_before_anything_loads(tmp_path, monkeypatch, override, expected):
    """A bad size or choice in ``overrides`` stops the set-up cell, not an evaluation after training."""
    import kdutils.experiment

    monkeypatch.setenv("KD_RUNS_ROOT", str(tmp_path / "runs"))
    loaded = []
    monkeypatch.setattr(kdutils.experiment, "load_dataset", lambda *a, **k: loaded.append(a))
    with pytest.raises(kd.ParameterError, match=f"parameter {expected}"):
        kd.NotebookContext(
            "99_test",
            profile="smoke",
            progress=False,
            overrides=override,
            output_dir=tmp_path / "out",
            figures_dir=tmp_path / "fig",
        )
    assert not loaded and not (tmp_path / "runs").exists()
    with pytest.raises(Exception):  # the same context with a sound override does reach the data (patched out)
        kd.NotebookContext(
            "99_test",
            profile="smoke",
            progress=False,
            overrides={"pgd_steps": 2},
            output_dir=tmp_path / "out",
            figures_dir=tmp_path / "fig",
        )
    assert loaded

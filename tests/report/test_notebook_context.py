"""The notebook context (kdutils.notebook) at the smoke profile: set-up, runs, frames, output."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import kdutils as kd  # noqa: E402
from kdutils.notebook import format_epsilon, margins  # noqa: E402

METHODS = {"student alone": "ce", "KD": "kd", "KD+SR": "kd+sr"}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nb")
    small = {
        "teacher_epochs": 2,
        "student_epochs": 2,
        "epsilons": (0.0, 0.1, 0.2),
        "attack_samples": 32,
        "pgd_steps": 2,
    }
    c = kd.NotebookContext(
        "99_test",
        profile="smoke",
        seeds=2,
        progress=False,
        output_dir=tmp / "out",
        figures_dir=tmp / "fig",
        overrides=small,
    )
    with c.timing("digits"):
        teacher = c.teacher("digits")
        c.students("digits", METHODS, teacher, robustness=["KD", "KD+SR"])
    return c


def test_setup_prints_one_line_per_dataset(tmp_path, capsys):
    c = kd.NotebookContext("99_test", profile="smoke", seeds=[3], output_dir=tmp_path, figures_dir=tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("digits: lenet5 -> lenet5_half, seeds [3], teacher 8 epochs, students 6 epochs, train ")
    assert "10% stratified hold-out of the training set" in out[0]
    assert out[1].startswith("device: cpu | run store:")
    assert c.datasets == ["digits"] and c.seeds("digits") == (3,) and c.where("digits") == "digits"
    assert c.results.notebook == "99_test" and c.results.profile == "smoke"
    quiet = kd.NotebookContext("99_test", profile="smoke", verbose=False, output_dir=tmp_path, figures_dir=tmp_path)
    assert capsys.readouterr().out == "" and quiet.seeds("digits") == (0, 1)  # the profile's seeds
    with pytest.raises(KeyError, match="datasets"):
        c["mnist"]


def test_default_folders_follow_the_profile_and_notebook():
    c = kd.NotebookContext("99_test", profile="smoke", verbose=False)
    assert c.out == kd.project_root() / "outputs" / "smoke" / "99_test"
    # only quick (the gallery's profile) writes figures/<notebook>; smoke never touches the committed ones
    assert c.figures == kd.project_root() / "outputs" / "smoke" / "figures" / "99_test"


def test_unknown_override_names_the_valid_ones(tmp_path):
    with pytest.raises(kd.UnknownNameError, match="ablation_teachers"):
        kd.NotebookContext("99_test", profile="smoke", overrides={"epoch": 3}, verbose=False)


def test_runs_evals_and_results(ctx):
    assert set(ctx.runs) == {("digits", "teacher", 0), *(("digits", m, s) for m in METHODS for s in (0, 1))}
    df = ctx.frame
    assert set(df.method) == {"teacher", *METHODS}
    assert set(df[df.method == "KD"].seed) == {0, 1}
    assert "robust_fgsm@0.1" in set(df[df.method == "KD"].metric)
    assert "robust_fgsm@0.1" not in set(df[df.method == "student alone"].metric)
    assert ctx.seconds["digits"] > 0
    assert ctx.values("digits", "KD") == [ctx.evals["digits", "KD", s]["accuracy"] for s in (0, 1)]
    a, b = ctx.paired("digits", "KD+SR", "KD", "data_usage")
    assert len(a) == len(b) == 2 and b == [1.0, 1.0] and all(x < 1 for x in a)
    with pytest.raises(KeyError, match="labels"):
        ctx.values("digits", "nope")


def test_student_records_only_the_metrics_asked_for(ctx):
    teacher = ctx.runs["digits", "teacher", 0]
    ctx.student(
        "digits",
        "KD minus random 0.5",
        "kd",
        seed=0,
        teacher=teacher,
        robustness=False,
        selection=kd.DropRandom(0.5, seed=0),
        metrics=("accuracy", "data_usage"),
    )
    d = ctx.frame
    rows = d[d.method == "KD minus random 0.5"]
    assert sorted(rows.metric) == ["accuracy", "data_usage"]
    assert float(rows[rows.metric == "data_usage"].value.iloc[0]) == pytest.approx(0.5, abs=0.01)


def test_robustness_frame_long_format(ctx):
    rob = ctx.robustness_frame(["KD", "KD+SR"])
    assert list(rob.columns) == ["dataset", "method", "seed", "attack", "epsilon", "value"]
    eps = ctx.settings("digits").epsilons
    assert len(rob) == 2 * 2 * 2 * len(eps)  # methods x seeds x attacks x epsilons
    assert list(pd.unique(rob.method)) == ["KD", "KD+SR"]
    assert rob.value.between(0, 1).all()
    ev = ctx.evals["digits", "KD", 1]
    got = rob[(rob.method == "KD") & (rob.seed == 1) & (rob.attack == "pgd")].value.tolist()
    assert got == ev["robustness"]["pgd"]
    assert ctx.robustness_frame(["student alone"]).empty  # evaluated without robustness


def test_margins_are_paired_by_seed(ctx):
    rob = ctx.robustness_frame(["KD", "KD+SR"])
    m = ctx.margins(rob, "KD")
    assert set(m.method) == {"KD+SR"} and len(m) == len(rob) / 2
    row = m[(m.seed == 1) & (m.attack == "fgsm")].iloc[2]
    e = row.epsilon
    sel = (rob.seed == 1) & (rob.attack == "fgsm") & (rob.epsilon == e)
    expected = 100 * (rob[sel & (rob.method == "KD+SR")].value.iloc[0] - rob[sel & (rob.method == "KD")].value.iloc[0])
    assert row.value == pytest.approx(expected)
    with pytest.raises(ValueError, match="reference"):
        margins(rob, "CCKD-T")


def test_margins_on_constructed_numbers():
    f = pd.DataFrame(
        {
            "dataset": "d",
            "method": ["KD", "KD", "A", "A", "B"],
            "seed": [0, 1, 0, 1, 0],
            "value": [0.5, 0.6, 0.55, 0.58, 0.9],
        }
    )
    m = margins(f, "KD", keys=("dataset",))
    assert m.value.round(6).tolist() == [5.0, -2.0, 40.0]


def test_comparison_pairs_for_best_of_many(ctx):
    rob = ctx.robustness_frame(["KD", "KD+SR"])
    pairs = ctx.comparison_pairs(rob[rob.epsilon > 0], "KD")
    n_eps = sum(e > 0 for e in ctx.settings("digits").epsilons)
    assert len(pairs) == 2 * n_eps
    a, b = pairs["KD+SR, FGSM, eps 0.1"]
    assert len(a) == len(b) == 2
    table = kd.best_of_many(pairs)
    assert len(table) == len(pairs) and "p_holm" in table.columns


def test_usage_and_metric_frames(ctx):
    u = ctx.usage_frame(["KD", "KD+SR"])
    assert list(u.columns) == ["dataset", "method", "seed", "epoch", "value"]
    assert len(u) == 2 * 2 * 2  # methods x seeds x epochs
    assert (u[u.method == "KD"].value == 1.0).all() and (u[u.method == "KD+SR"].value < 1.0).any()
    w = ctx.metric_frame(["accuracy", "data_usage"], list(METHODS))
    assert list(w.columns) == ["dataset", "method", "seed", "accuracy", "data_usage"] and len(w) == 6


def test_save_figure_results_and_environment(ctx, capsys):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = ctx.save_figure(fig, "accuracy_digits")
    assert path == ctx.figures / "accuracy_digits.png" and path.stat().st_size > 0
    res = ctx.save_results()
    assert res == ctx.out / "results.csv" and "rows" in capsys.readouterr().out
    assert len(kd.read_results(res)) == len(ctx.results)
    env = ctx.environment_frame()
    v = env["value"]
    assert {"python", "torch", "notebook wall time (s)", "runs trained now", "runs reused"} <= set(env.index)
    assert "digits: training + evaluation (s)" in env.index and "digits: teacher s/epoch" in env.index
    assert "digits: student s/epoch (mean)" in env.index
    assert v["runs trained now"] + v["runs reused"] == len({r.key for r in ctx.runs.values()})
    n_runs = len({r.key for r in ctx.runs.values()})  # every run of the fixture trained here, on this CPU
    counts = [int(part.split(": ")[1]) for part in v["CPU runs by intra-op threads"].split(", ")]
    assert sum(counts) == n_runs and v["CPU runs trained on another kind of CPU"] == 0


def test_format_epsilon():
    assert format_epsilon(4 / 255, [0, 1 / 255, 4 / 255, 8 / 255]) == "4/255"
    assert format_epsilon(0.2, [0, 0.05, 0.1, 0.2]) == "0.2"
    assert format_epsilon(0.1) == "0.1"


def test_tidy_arms_differences_and_convergence(ctx):
    arms = [("KD", {"how": "a", "k": 0.0}), ("KD", {"how": "b", "k": 0.0}), ("KD+SR", {"how": "a", "k": 0.5})]
    t = ctx.tidy(arms, "accuracy")
    assert list(t.columns) == ["dataset", "how", "k", "seed", "value"] and len(t) == 6
    assert t[(t.how == "b")].value.tolist() == ctx.values("digits", "KD")
    diff = ctx.differences({"KD+SR": "KD", "student alone": "KD"})
    assert set(diff.comparison) == {"KD+SR - KD", "student alone - KD"} and set(diff.dataset) == {"digits"}
    a, b = ctx.paired("digits", "KD+SR", "KD")
    row = diff[diff.comparison == "KD+SR - KD"].iloc[0]
    assert row.estimate == pytest.approx(100 * (sum(a) - sum(b)) / 2)
    conv = ctx.convergence("digits")
    assert conv.startswith(("no (", "plateau (")) and "of 2 epochs" in conv


def test_best_of_many_per_dataset_never_more_than_asked(ctx):
    rob = ctx.robustness_frame(["KD", "KD+SR"])
    t = ctx.best_of_many(rob[rob.epsilon > 0], "KD", top=3)
    assert len(t) == 3 and list(t.columns[:2]) == ["dataset", "comparison"] and (t.family == 4).all()
    assert t.estimate.is_monotonic_decreasing


def test_metric_frame_with_runs(ctx):
    w = ctx.metric_frame(["accuracy"], ["teacher", "KD"], with_runs=True)
    assert list(w.columns) == ["dataset", "method", "seed", "accuracy", "key", "reused"]
    assert w.method.tolist() == ["teacher", "KD", "KD"]
    assert w.key.iloc[0] == ctx.runs["digits", "teacher", 0].key


def test_ablation_teachers_is_a_profile_size():
    """Notebook 03's fixed-threshold teacher follows a size of the profile, never a dataset test in the notebook."""
    assert kd.configure("quick", "cifar10").ablation_teachers is False
    assert kd.configure("quick", "mnist").ablation_teachers is True
    assert (
        kd.configure("smoke").ablation_teachers is True and kd.configure("paper", "cifar10").ablation_teachers is True
    )
    assert kd.configure("quick", "cifar10", ablation_teachers=True).ablation_teachers is True


def test_an_image_folder_names_its_figures_by_a_safe_stem(tmp_path):
    """``image_folder:PATH`` is a valid dataset; its figures are named from the folder's last part,
    not the path (which would stop a notebook at its first figure, after training)."""
    import numpy as np
    from PIL import Image

    from kdutils.data import dataset_stem

    folder = tmp_path / "My Pets.v2"
    for part in ("train", "test"):
        for c in ("ant", "cat"):
            (folder / part / c).mkdir(parents=True)
            for i in range(12):
                Image.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(folder / part / c / f"{i}.png")
    assert dataset_stem(f"image_folder:{folder}/") == "folder_my-pets-v2"
    assert dataset_stem("image_folder:/") == "folder_root" and dataset_stem("mnist") == "mnist"
    c = kd.NotebookContext(
        "99_test",
        profile="smoke",
        datasets=["digits", f"image_folder:{folder}"],
        progress=False,
        output_dir=tmp_path / "out",
        figures_dir=tmp_path / "fig",
    )
    for ds in c.datasets:
        fig, ax = plt.subplots()
        path = c.save_figure(fig, f"accuracy_{ds}", show=False)
        plt.close(fig)
        assert path.name == f"accuracy_{dataset_stem(ds)}.png" and path.exists()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"parameters": {"temperatures": "abc"}}, "temperatures"),
        ({"datasets": ["mnist", "no_such_set"]}, "datasets"),
        ({"seeds": -1}, "seeds"),
        ({"device": "tpu"}, "device"),
        ({"overrides": {"epochz": 3}}, "epochz"),
        ({"progress": "yes"}, "progress"),
    ],
)
def test_the_context_checks_every_parameter_before_anything_loads(kwargs, name, monkeypatch, tmp_path):
    """One place checks a notebook's parameters, the common ones and its own, before any data loads."""
    import kdutils.experiments.experiment as experiment

    monkeypatch.setattr(experiment.Experiment, "__init__", lambda *a, **k: pytest.fail("an experiment was built"))
    with pytest.raises((kd.ParameterError, kd.errors.UnknownNameError)) as err:
        kd.NotebookContext("99_test", profile="smoke", output_dir=tmp_path, verbose=False, **kwargs)
    assert name in str(err.value)


def test_the_papers_default_datasets_apply_when_none_are_named(tmp_path):
    ctx = kd.NotebookContext(
        "99_test", profile="smoke", output_dir=tmp_path, verbose=False, default_datasets=lambda profile: ["digits"]
    )
    assert ctx.datasets == ["digits"]


def test_accuracy_values_carry_which_test_images_each_seed_got_right(ctx):
    a, b = ctx.paired("digits", "KD+SR", "KD")
    n_test = len(ctx["digits"].split.test_y)
    assert a.correct.shape == b.correct.shape == (2, n_test)
    assert a.correct.mean(axis=1) == pytest.approx(list(a))
    usage, _ = ctx.paired("digits", "KD+SR", "KD", "data_usage")
    assert getattr(usage, "correct", None) is None  # no per-image record behind data usage


def test_mu_s_values_carry_which_teacher_mistakes_each_seed_fixes(ctx, monkeypatch):
    """mu_S of two students of one teacher is measured on the same training images, so their
    comparison is paired over seeds and those images; against different teachers it stays seed-only."""
    a, b = ctx.paired("digits", "KD", "student alone", "mu_s_train")
    n = ctx.teacher_mistakes("digits")
    assert n > 0 and a.correct.shape == b.correct.shape == (2, n)
    assert a.correct.mean(axis=1) == pytest.approx(list(a), abs=1e-12)
    assert ("digits", "student alone", 1, "mu_s_train") in ctx.results.images
    f, _ = ctx.paired("digits", "KD", "student alone", "mu_f_test")
    assert f.correct.shape[1] == int(
        (ctx.evals["digits", "teacher", 0]["accuracy"]) * len(ctx["digits"].split.test_y) + 0.5
    )
    monkeypatch.setattr(type(ctx), "_eval_teacher", lambda self, ds, label, seed: label)
    a2, _ = ctx.paired("digits", "KD", "student alone", "mu_s_train")
    assert getattr(a2, "correct", None) is None and a2 == list(a)


@pytest.mark.parametrize("metric", ["agreement", "rank_spearman_mean"])
def test_teacher_agreement_values_carry_one_value_per_test_image(ctx, metric):
    """Fidelity to the teacher (06's family, 02's rank claim) pairs on the test images too, rebuilt from
    both models' stored logits; ECE is no mean of per-image values and stays seed-only."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = ctx.paired("digits", "KD", "student alone", metric)
    assert a.correct.shape == b.correct.shape == (2, len(ctx["digits"].split.test_y))
    assert a.correct.mean(axis=1) == pytest.approx(list(a), abs=1e-6)
    assert (a.correct.min() >= -1) and (a.correct.max() <= 1)
    ece, _ = ctx.paired("digits", "KD", "student alone", "ece")
    assert getattr(ece, "correct", None) is None


def test_robust_accuracy_values_carry_which_attacked_images_each_seed_keeps(ctx, tmp_path, monkeypatch):
    """A robust-accuracy claim gets the attacked images' sampling in its interval (issue 32.3): the
    per-image record is computed on first use, gives back each seed's value, changes the rule's
    interval, and is published so ``report``'s recheck redoes the same interval from the files."""
    from kdutils.evaluations import robust_key
    from kdutils.report import published as P
    from kdutils.report.results import claim_better, claims_frame

    key = robust_key("pgd", ctx.settings("digits").epsilons[1])
    a, b = ctx.paired("digits", "KD+SR", "KD", key)
    n = min(ctx.settings("digits").attack_samples, len(ctx["digits"].split.test_y))
    assert a.correct.shape == b.correct.shape == (2, n)
    assert a.correct.mean(axis=1) == pytest.approx(list(a), abs=1e-12)
    v = claim_better(a, b)
    assert "seeds and test images" in v.rule
    assert claim_better(list(a), list(b)).rule != v.rule  # plain lists: the seed-only paired t
    assert {("digits", "KD", s, key) for s in (0, 1)} <= set(ctx.results.images)
    with pytest.raises(KeyError, match="robustness=True"):
        ctx.paired("digits", "KD+SR", "student alone", key)  # evaluated without robustness: no such value
    folder = tmp_path / "99_test" / "smoke"
    monkeypatch.setattr(type(ctx), "published_results_dir", lambda self: folder)
    ctx.save_results(claims_frame([]))
    redo = P.recheck(P.find(tmp_path, "99_test", "smoke", "digits"), "KD+SR", "KD", key)
    assert redo["two_noise"].low == pytest.approx(v.low, abs=1e-5)
    assert redo["two_noise"].high == pytest.approx(v.high, abs=1e-5)


def test_the_2x_epochs_check_runs_where_asked_and_can_fail(ctx, monkeypatch):
    from kdutils.report import notebook as N

    text = ctx.convergence("digits", longer=["KD"])
    assert text.endswith("2x-epochs check at full only") and "KD (2x epochs)" not in ctx.frame.method.values
    monkeypatch.setattr(N, "LONGER_CHECK_PROFILES", ("smoke",))
    text = ctx.convergence("digits", longer=["KD", "student alone"])
    gain = ctx.evals["digits", "KD (2x epochs)", 0]["accuracy"] - ctx.evals["digits", "KD", 0]["accuracy"]
    assert text.startswith("yes: " if abs(gain) < N.LONGER_TOL else "no: ")
    assert f"KD {gain * 100:+.2f}" in text
    longer = ctx.runs["digits", "KD (2x epochs)", 0]
    assert longer.config["recipe"]["epochs"] == 2 * ctx.runs["digits", "KD", 0].config["recipe"]["epochs"]
    monkeypatch.setattr(N, "LONGER_TOL", 0.0)  # nothing is within 0 points: the check fails
    assert ctx.convergence("digits", longer=["KD"]).startswith("no: ")


def test_save_results_publishes_rows_predictions_labels_and_claims(ctx, tmp_path, monkeypatch):
    from kdutils.report import published as P
    from kdutils.report.results import claim_better, claim_row, claims_frame

    assert ctx.published_results_dir() is None  # figures outside the gallery: nothing committed
    folder = tmp_path / "99_test" / "smoke"
    monkeypatch.setattr(type(ctx), "published_results_dir", lambda self: folder)
    v = claim_better(*ctx.paired("digits", "KD+SR", "KD"))
    claims = claims_frame([claim_row("c", "[ours]", "-", v, dataset=ctx.where("digits"), profile="smoke")])
    ctx.save_results(claims)
    p = P.find(tmp_path, "99_test", "smoke", "digits")
    assert P.predictions(p)[P.LABELS, -1].tolist() == ctx["digits"].split.test_y.tolist()
    redo = P.recheck(p, "KD+SR", "KD")
    assert redo["two_noise"].low == pytest.approx(v.low, abs=1e-5) and "seeds and test images" in v.rule
    assert "| c |" in P.claims_table(p)
    prov = p.provenance
    assert prov["notebook"] == "99_test" and prov["seeds"] == {"digits": [0, 1]} and prov["torch"]
    assert prov["runs_training_s"] > 0 and prov["runs_trained_now"] + prov["runs_reused"] == len(
        {r.key for r in ctx.runs.values()}
    )


def test_every_saved_figure_carries_the_dataset_profile_epochs_and_seeds(ctx, tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ctx.save_figure(fig, "demo_digits", show=False)
    (cap,) = [t.get_text() for t in fig.texts if t.get_gid() == "kd-caption"]
    assert cap.startswith("digits (8x8, scikit-learn) · lenet5 -> lenet5_half · smoke profile, students 2 epochs")
    assert cap.endswith("seeds 0-1")
    ctx.save_figure(fig, "demo_digits", show=False)  # saved twice: still one caption
    assert len([t for t in fig.texts if t.get_gid() == "kd-caption"]) == 1
    fig2, _ = plt.subplots()
    ctx.save_figure(fig2, "overview", show=False)
    assert [t.get_text() for t in fig2.texts] == ["99_test · smoke profile"]
    plt.close("all")


def test_only_the_gallery_profiles_publish_results():
    """smoke and paper never write results/ (a smoke batch in a clone leaves it clean), quick and full
    do when their figures go to the gallery."""
    for profile, publishes in (("smoke", False), ("paper", False), ("quick", True), ("full", True)):
        c = kd.NotebookContext("99_test", profile=profile, datasets=["digits"], verbose=False)
        assert (c.published_results_dir() is not None) is publishes, profile
        if publishes:
            assert c.published_results_dir() == kd.project_root() / "results" / "99_test" / profile


def test_a_group_has_one_bar_over_its_runs_and_their_evaluations(ctx, monkeypatch):
    """Issue 33: one bar per group, "<dataset>: runs k/N", counting each run as it is read back
    and evaluated (the part that ran with no progress at all), named by the run's label."""
    import io

    import tqdm

    import kdutils.inputs.runtime as runtime

    bars = []

    def recording(*args, **kw):
        kw["file"] = io.StringIO()
        bars.append(tqdm.tqdm(*args, **{**kw, "mininterval": 0}))
        return bars[-1]

    monkeypatch.setattr(runtime, "progress_bar", recording)
    monkeypatch.setattr(ctx["digits"], "progress", True)
    teacher = ctx.teacher("digits")
    ctx.students("digits", METHODS, teacher, robustness=["KD", "KD+SR"])
    group = [b for b in bars if b.desc.startswith("digits") and b.desc.endswith(": runs")]
    assert len(group) == 1 and group[0].total == len(METHODS) * 2 and group[0].n == group[0].total
    text = group[0].fp.getvalue()
    assert (
        "digits (8x8, scikit-learn): runs" in text
        and "KD+SR s1" in text
        and f"{group[0].total}/{group[0].total}" in text
    )

"""Tests for kdutils.plots (small synthetic data, Agg backend)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from kdutils import plots  # noqa: E402
from kdutils.methods.label_revision import revised_target
from kdutils.metrics import reliability  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _seed_df(methods=("kd", "dkd", "student"), seeds=(0, 1, 2), base=0.9, rng=0):
    g = np.random.default_rng(rng)
    rows = [
        {"method": m, "seed": s, "value": base + 0.005 * i + 0.002 * g.standard_normal()}
        for i, m in enumerate(methods)
        for s in seeds
    ]
    return pd.DataFrame(rows)


def _sweep_df(seeds=(0, 1), xs=(1.0, 2.0, 4.0, 8.0), x="tau"):
    g = np.random.default_rng(1)
    return pd.DataFrame(
        [
            {"method": m, "seed": s, x: t, "value": 0.8 + 0.01 * j + 0.005 * g.standard_normal()}
            for j, m in enumerate(("kd", "dkd"))
            for s in seeds
            for t in xs
        ]
    )


def _robust_df(seeds=(0, 1), attacks=("fgsm", "pgd")):
    eps = (0.0, 2 / 255, 4 / 255, 8 / 255)
    return pd.DataFrame(
        [
            {
                "method": m,
                "seed": s,
                "attack": a,
                "epsilon": e,
                "value": max(0.0, 0.9 - (3 + k + j) * e * 10 + 0.01 * s),
            }
            for j, m in enumerate(("kd", "student"))
            for s in seeds
            for k, a in enumerate(attacks)
            for e in eps
        ]
    )


# ---------------------------------------------------------------------------
# style / save_figure
# ---------------------------------------------------------------------------


def test_style_runs():
    plots.style()
    fig = plots.bar_with_spread(_seed_df())
    assert isinstance(fig, Figure)
    matplotlib.rcdefaults()
    matplotlib.use("Agg")


def test_save_figure_writes_png(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = plots.save_figure(fig, tmp_path / "sub" / "dir", "kd_vs-dkd_01")
    assert path == tmp_path / "sub" / "dir" / "kd_vs-dkd_01.png"
    assert path.is_file() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # overwriting at the same stable path works
    assert plots.save_figure(fig, tmp_path / "sub" / "dir", "kd_vs-dkd_01") == path


@pytest.mark.parametrize("bad", ["Bad", "with space", "a.png", "", "x/y", "ü", "a.b"])
def test_save_figure_rejects_bad_name(tmp_path, bad):
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match=r"\[a-z0-9_-\]\+"):
        plots.save_figure(fig, tmp_path, bad)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------
# image_grid
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_image_grid_one_row_per_class(channels):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (30, channels, 8, 8), generator=g, dtype=torch.uint8)
    y = torch.arange(30) % 3
    classes = ["cat", "dog", "ship"]
    fig = plots.image_grid(x, y, classes, per_class=4, title="samples")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3 * 4
    grid = np.array(fig.axes).reshape(3, 4)
    assert [ax.get_ylabel() for ax in grid[:, 0]] == classes
    # each row holds that class's first images in order
    first_dog = x[y == 1][0]
    img = grid[1, 0].get_images()[0].get_array()
    expected = first_dog[0].numpy() if channels == 1 else first_dog.permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(np.asarray(img), expected)
    if channels == 1:
        assert grid[0, 0].get_images()[0].get_cmap().name == "gray"
    assert fig._suptitle.get_text() == "samples"


def test_image_grid_class_with_few_images():
    x = torch.zeros((5, 1, 4, 4), dtype=torch.uint8)
    y = torch.tensor([0, 0, 0, 0, 1])
    fig = plots.image_grid(x, y, ["a", "b", "c"], per_class=3)
    grid = np.array(fig.axes).reshape(3, 3)
    assert [len(ax.get_images()) for ax in grid[:, 0]] == [1, 1, 0]
    assert len(grid[1, 1].get_images()) == 0


def test_image_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        plots.image_grid(torch.zeros((2, 1, 4, 4)), torch.tensor([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="C in"):
        plots.image_grid(torch.zeros((2, 2, 4, 4), dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"])


# ---------------------------------------------------------------------------
# training_curves
# ---------------------------------------------------------------------------


def _history(n=4, shift=0.0, val=True):
    recs = []
    for e in range(1, n + 1):
        r = {"epoch": e, "loss": 2.0 / e + shift, "train_acc": 0.5 + 0.1 * e, "participation": 1.0}
        if val:
            r["val_acc"] = 0.45 + 0.1 * e
        recs.append(r)
    return recs


def test_training_curves_one_panel_per_key():
    fig = plots.training_curves({"kd": _history(), "dkd": _history(shift=0.1, val=False)})
    assert len(fig.axes) == 3
    loss_ax = fig.axes[0]
    assert len(loss_ax.get_lines()) == 2
    np.testing.assert_allclose(loss_ax.get_lines()[0].get_xdata(), [1, 2, 3, 4])
    # only "kd" has val_acc
    assert len(fig.axes[2].get_lines()) == 1
    assert all(ax.get_title() and ax.get_xlabel() == "epoch" for ax in fig.axes)


def test_training_curves_skips_absent_key():
    fig = plots.training_curves({"kd": _history(val=False)}, keys=("loss", "val_acc", "participation"))
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "participation"]
    with pytest.raises(ValueError):
        plots.training_curves({"kd": _history()}, keys=("nope",))


def test_training_curves_skips_none_values():
    recs = _history()
    recs[1]["val_acc"] = None
    recs[2]["val_acc"] = float("nan")
    fig = plots.training_curves({"kd": recs}, keys=("val_acc",))
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_xdata(), [1, 4])


# ---------------------------------------------------------------------------
# bar_with_spread
# ---------------------------------------------------------------------------


def test_bar_with_spread_zoomed_points_never_bars():
    """A zoomed axis with points and intervals, never bars (a bar on a zoomed axis exaggerates the
    gap, issue 33); the title says what the point, the bar and the dots are."""
    df = _seed_df()
    fig = plots.bar_with_spread(df, ylabel="accuracy", title="t")
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert lo > 0.5, "zoomed to the data"
    assert lo < df["value"].min() and hi > df["value"].max()
    assert hi - lo < 0.2
    assert ax.get_title().startswith("t\n(point: mean, whiskers: ± 1 std over seeds") and ax.get_ylabel() == "accuracy"
    assert not [p for p in ax.patches if p.get_height() > 0]  # no bars
    # 3 means and the 9 individual seed points
    from matplotlib.collections import PathCollection

    n_points = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    assert n_points == 3 + len(df)


def test_bar_with_spread_keeps_colours_and_clips_shares():
    plots.style()
    df = pd.DataFrame({"method": ["b", "b", "a", "a"], "value": [0.01, 0.2, 0.5, 0.6]})
    fig = plots.bar_with_spread(df, order=["a", "b"])
    ax = fig.axes[0]
    from matplotlib.collections import PathCollection

    means = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_sizes()[0] == 70]
    assert [tuple(c.get_facecolor()[0][:3]) for c in means] == [plots.color_of("a"), plots.color_of("b")]
    fig2 = plots.bar_with_spread(df, order=["b", "a"])  # another order: the same colour per method
    means2 = [c for c in fig2.axes[0].collections if isinstance(c, PathCollection) and c.get_sizes()[0] == 70]
    assert tuple(means2[0].get_facecolor()[0][:3]) == plots.color_of("b")
    assert ax.get_ylim()[0] >= 0.0  # b's mean - sd is below 0: the interval of a share is clipped at 0
    segs = [seg for c in ax.collections if not isinstance(c, PathCollection) for seg in c.get_segments()]
    assert min(float(np.min(np.asarray(seg)[:, 1])) for seg in segs) >= 0.0


def test_bar_with_spread_hue_order_and_one_seed():
    df = pd.concat(
        [_seed_df(seeds=(0,)).assign(dataset="mnist"), _seed_df(seeds=(0,), base=0.85).assign(dataset="cifar10")]
    )
    fig = plots.bar_with_spread(df, x="method", hue="dataset", order=["student", "kd", "dkd"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{m}\n(n = 1)" for m in ["student", "kd", "dkd"]]
    lo, hi = ax.get_ylim()
    assert 0 < lo < df["value"].min() and hi > df["value"].max()
    assert ax.get_legend() is not None


def test_bar_with_spread_constant_values():
    df = pd.DataFrame({"method": ["a", "b"], "value": [0.9, 0.9]})
    lo, hi = plots.bar_with_spread(df).axes[0].get_ylim()
    assert lo < 0.9 < hi and lo > 0


def test_bar_with_spread_missing_column():
    with pytest.raises(ValueError, match="missing column"):
        plots.bar_with_spread(pd.DataFrame({"method": ["a"], "acc": [1.0]}))


# ---------------------------------------------------------------------------
# line_with_spread / robustness_curves
# ---------------------------------------------------------------------------


def test_line_with_spread_band_per_hue():
    fig = plots.line_with_spread(_sweep_df(), x="tau", xlabel="temperature", logx=True)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2
    assert [line.get_marker() for line in ax.get_lines()] == ["o", "s"]  # a marker per line, besides its colour
    assert len(ax.collections) == 2  # one band per method
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "temperature" and ax.get_title()
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [1, 2, 4, 8])


def test_line_with_spread_one_seed_no_band():
    fig = plots.line_with_spread(_sweep_df(seeds=(0,)), x="tau")
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2
    assert len(ax.collections) == 0


def test_line_with_spread_logx_with_zero_uses_symlog():
    fig = plots.line_with_spread(_sweep_df(xs=(0.0, 0.01, 0.1)), x="tau", logx=True)
    assert fig.axes[0].get_xscale() == "symlog"


def test_robustness_curves_panels_and_ylim():
    fig = plots.robustness_curves(_robust_df())
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["FGSM", "PGD"]
    for ax in fig.axes:
        assert ax.get_ylim() == (0.0, 1.0)
        assert len(ax.get_lines()) == 2
    # same colour for a method in both panels
    assert fig.axes[0].get_lines()[0].get_color() == fig.axes[1].get_lines()[0].get_color()


def test_robustness_curves_only_present_attacks_one_seed():
    fig = plots.robustness_curves(_robust_df(seeds=(0,), attacks=("pgd",)))
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "PGD"
    with pytest.raises(ValueError, match="none of the attacks"):
        plots.robustness_curves(_robust_df(attacks=("other",)))


# ---------------------------------------------------------------------------
# reliability_diagrams
# ---------------------------------------------------------------------------


def _rel(seed, n_bins=10):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(200, 5, generator=g) * 3
    y = torch.randint(0, 5, (200,), generator=g)
    return reliability(logits, y, n_bins=n_bins)


@pytest.mark.parametrize("n_labels, ncols", [(1, 4), (3, 2), (5, 4)])
def test_reliability_panel_count(n_labels, ncols):
    rel = {f"m{i}": _rel(i) for i in range(n_labels)}
    fig = plots.reliability_diagrams(rel, ncols=ncols)
    assert len(fig.axes) == n_labels
    for ax, label in zip(fig.axes, rel):
        assert ax.get_title() == label
        assert ax.get_xlim() == (0.0, 1.0) and ax.get_ylim() == (0.0, 1.0)


def test_reliability_nan_bins_skipped_and_ece_in_title():
    r = _rel(0, n_bins=15)
    n_nonempty = sum(c > 0 for c in r["count"])
    assert n_nonempty < 15 and any(math.isnan(v) for v in r["accuracy"])
    r["ece"] = 0.0421
    fig = plots.reliability_diagrams({"kd": r})
    ax = fig.axes[0]
    assert "ECE = 0.042" in ax.get_title()
    # accuracy bars + gap bars, both for the non-empty bins only
    assert len(ax.patches) == 2 * n_nonempty
    k = next(i for i, c in enumerate(r["count"]) if c > 0)
    first = ax.patches[0]
    assert first.get_x() == pytest.approx(r["bin_lower"][k])
    assert first.get_width() == pytest.approx(r["bin_upper"][k] - r["bin_lower"][k])
    assert first.get_height() == pytest.approx(r["accuracy"][k])


@pytest.mark.parametrize("n_labels, ncols", [(4, 4), (7, 3), (6, 6)])
def test_reliability_suptitle_clears_the_panel_titles(n_labels, ncols):
    """The notebooks retitle the figure (``fig.suptitle(f"{ds}: reliability (seed 0)")``); with square
    panels under the plain constrained layout that title sat on the first row's panel titles."""
    rel = {f"method {i} (ECE = 0.100)": _rel(i) for i in range(n_labels)}
    fig = plots.reliability_diagrams(rel, ncols=ncols)
    title = fig.suptitle("cifar10: reliability (seed 0)")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    sup = title.get_window_extent(renderer)
    for ax in fig.axes:
        assert ax.title.get_window_extent(renderer).y1 <= sup.y0, ax.get_title()
    plt.close(fig)


def test_reliability_all_empty_and_bad_entry():
    nan = float("nan")
    r = {
        "bin_lower": [0.0, 0.5],
        "bin_upper": [0.5, 1.0],
        "confidence": [nan, nan],
        "accuracy": [nan, nan],
        "count": [0, 0],
    }
    fig = plots.reliability_diagrams({"empty": r})
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="lacks key"):
        plots.reliability_diagrams({"bad": {"accuracy": [0.5]}})


def test_bar_with_spread_is_the_same_figure_twice_and_leaves_numpy_alone(tmp_path):
    """The seed points' jitter is seeded: same data, same bytes; the caller's numpy state is kept."""
    np.random.seed(123)
    expected_next = np.random.RandomState(123).uniform()
    paths = []
    for name in ("a", "b"):
        np.random.rand()  # a caller using the global generator in between
        paths.append(plots.save_figure(plots.bar_with_spread(_seed_df()), tmp_path, name))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    np.random.seed(123)
    plots.bar_with_spread(_seed_df())
    assert np.random.uniform() == expected_next


# ---------------------------------------------------------------------------
# legends never over the curves; the figure grows to hold them
# ---------------------------------------------------------------------------


def _right_of(fig, legend, ax):
    fig.canvas.draw()
    return legend.get_window_extent().x0 >= ax.get_window_extent().x1


def test_robustness_curves_one_legend_beside_the_last_panel():
    fig = plots.robustness_curves(_robust_df(), title="mnist: robust accuracy")
    first, last = fig.axes
    assert first.get_legend() is None, "the FGSM panel must not carry a legend over its curves"
    assert last.get_legend() is not None and _right_of(fig, last.get_legend(), last)
    assert fig._suptitle.get_text() == "mnist: robust accuracy"
    assert fig.get_figwidth() > 2 * 4.6  # widened by the legend, panels keep their width


def test_line_with_spread_own_figure_widens_for_a_long_legend():
    df = _sweep_df().replace({"method": {"dkd": "CCKD-T+SR, delta at tau = 1 (a long label)"}})
    fig = plots.line_with_spread(df, x="tau", title="a title that is rather long for a small plot")
    ax = fig.axes[0]
    assert _right_of(fig, ax.get_legend(), ax)
    assert fig.get_figwidth() > 5.0 + 1.5
    # the axes keep most of their width: title and y label are not squeezed off the figure
    fig.canvas.draw()
    assert ax.get_window_extent().width / fig.dpi > 3.0
    assert fig.get_tightbbox().x0 >= -1e-6


def test_line_with_spread_legend_options():
    assert plots.line_with_spread(_sweep_df(), x="tau", legend=False).axes[0].get_legend() is None
    ax = plots.line_with_spread(_sweep_df(), x="tau", legend="inside").axes[0]
    assert ax.get_legend() is not None
    with pytest.raises(ValueError, match="legend"):
        plots.line_with_spread(_sweep_df(), x="tau", legend="above")


# ---------------------------------------------------------------------------
# the named plots of notebooks 01 and 03
# ---------------------------------------------------------------------------


def _usage_df():
    return pd.DataFrame(
        [
            {"method": m, "seed": s, "epoch": e, "value": 1.0 if m == "KD" else 0.2 - 0.02 * e + 0.01 * s}
            for m in ("KD", "CCKD-T+SR", "CCKD-T+SR, delta = p_S[y]")
            for s in (0, 1)
            for e in (1, 2, 3)
        ]
    )


def test_usage_curves_percent_axis_and_legend_beside():
    fig = plots.usage_curves(_usage_df(), title="mnist: SR data usage per epoch")
    ax = fig.axes[0]
    assert ax.get_title() == "mnist: SR data usage per epoch"
    assert ax.get_ylim()[0] < 0 < 1 < ax.get_ylim()[1] <= 1.1
    assert ax.yaxis.get_major_formatter()(0.5, 0) == "50%"
    assert len(ax.get_lines()) == 3 and _right_of(fig, ax.get_legend(), ax)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1, 1, 1])


def test_margin_curves_zero_line_and_shared_labels():
    df = _robust_df().assign(value=lambda d: d.value * 100 - 50)
    fig = plots.margin_curves(df, reference="KD")
    assert [ax.get_title() for ax in fig.axes] == ["FGSM", "PGD"]
    assert fig.axes[0].get_ylabel() == "margin over KD (points)"
    for ax in fig.axes:
        zero = [ln for ln in ax.get_lines() if np.allclose(ln.get_ydata(), 0) and ln.get_color() == "k"]
        assert len(zero) == 1
        assert any(t.get_text() for t in ax.get_yticklabels())  # every panel keeps its tick labels
    assert fig.axes[0].get_legend() is None and fig.axes[1].get_legend() is not None


def test_pruning_curve_percent_ticks():
    df = pd.DataFrame(
        [
            {"how": h, "dropped": k, "seed": s, "value": 0.9 - k * (0.1 + 0.1 * i) + 0.001 * s}
            for i, h in enumerate(("least significant", "random"))
            for k in (0.0, 0.1, 0.3, 0.5)
            for s in (0, 1)
        ]
    )
    fig = plots.pruning_curve(df, title="pruning")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.get_xticks(), [0.0, 0.1, 0.3, 0.5])
    assert ax.xaxis.get_major_formatter()(0.3, 0) == "30%"
    assert [ln.get_label() for ln in ax.get_lines()] == ["least significant", "random"]
    with pytest.raises(ValueError, match="missing column"):
        plots.pruning_curve(df.rename(columns={"how": "method"}))


def test_accuracy_vs_usage_one_point_per_run():
    df = pd.DataFrame(
        {
            "method": ["KD", "KD", "hybrid", "hybrid"],
            "seed": [0, 1, 0, 1],
            "data_usage": [1.0, 1.0, 0.1, 0.12],
            "accuracy": [0.97, 0.971, 0.968, 0.969],
        }
    )
    fig = plots.accuracy_vs_usage(df, title="mnist: accuracy vs data used")
    ax = fig.axes[0]
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    np.testing.assert_allclose(sorted(offsets[:, 0]), [10, 12, 100, 100])
    np.testing.assert_allclose(
        sorted(offsets[:, 1]), [0.968, 0.969, 0.970, 0.971]
    )  # accuracy a fraction, as everywhere
    assert ax.get_title() == "mnist: accuracy vs data used" and _right_of(fig, ax.get_legend(), ax)


def test_significance_histogram_counts_per_epoch_count():
    s = torch.tensor([0, 0, 0, 1, 2, 2, 4])
    fig = plots.significance_histogram(s, epochs=4)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [3, 1, 2, 0, 1]
    assert "42.9% of samples never used" in ax.get_title()
    with pytest.raises(ValueError, match="0..epochs"):
        plots.significance_histogram(torch.tensor([0, 5]), epochs=4)


@pytest.mark.parametrize("which, expected", [("most", [[1, 2], [6, 4]]), ("least", [[3, 0], [7, 4]])])
def test_significant_images_picks_per_class_ties_by_index(which, expected):
    x = torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1).expand(8, 1, 2, 2).contiguous()
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    s = torch.tensor([1, 5, 5, 0, 2, 2, 9, 0])
    fig = plots.significant_images(x, y, s, ["a", "b"], which=which, per_class=2)
    grid = np.array(fig.axes).reshape(2, 2)
    shown = [[int(ax.get_images()[0].get_array()[0, 0]) for ax in row] for row in grid]
    assert shown == expected
    assert which in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="most"):
        plots.significant_images(x, y, s, ["a", "b"], which="middle")


def test_bar_panels_one_panel_per_metric():
    df = pd.concat([_seed_df().assign(metric="mu_s_train"), _seed_df(base=0.1).assign(metric="mu_f_train")])
    fig = plots.bar_panels(
        df,
        ["mu_s_train", "mu_f_train"],
        order=["student", "kd", "dkd"],
        titles=["mu_S (train)", "mu_F (train)"],
        title="retention",
    )
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["mu_S (train)", "mu_F (train)"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["student", "kd", "dkd"]
    assert fig.axes[1].get_ylim()[1] < 0.5 < fig.axes[0].get_ylim()[0]  # each panel zoomed to its data
    with pytest.raises(ValueError, match="no values"):
        plots.bar_panels(df, ["ece"])


# ---------------------------------------------------------------------------
# notebook 02: rank agreement and stronger teachers
# ---------------------------------------------------------------------------


def test_rank_agreement_distributions_two_panels_cumulative_ends_at_one():
    from kdutils.metrics import rank_histogram

    g = torch.Generator().manual_seed(0)
    hists = {m: rank_histogram(torch.rand(200, generator=g) * (1 - lo) + lo) for m, lo in (("KD", 0.2), ("CMKD", 0.6))}
    fig = plots.rank_agreement_distributions(hists, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax_h, ax_c = fig.axes
    cum = ax_c.get_lines()[0].get_ydata()
    assert cum[0] == 0.0 and cum[-1] == pytest.approx(1.0) and np.all(np.diff(cum) >= 0)
    assert ax_h.get_xlim()[1] == 1.0 and ax_h.get_xlim()[0] == pytest.approx(
        0.15
    )  # lowest non-empty bin 0.2, less 0.05
    assert [t.get_text() for t in ax_c.get_legend().get_texts()] == ["KD", "CMKD"]
    assert fig._suptitle.get_text() == "t"


def test_rank_agreement_distributions_rejects_bad_histograms():
    with pytest.raises(ValueError, match="empty"):
        plots.rank_agreement_distributions({})
    with pytest.raises(ValueError, match="edges"):
        plots.rank_agreement_distributions({"KD": {"counts": [1]}})
    with pytest.raises(ValueError, match="2 edges for 2 counts"):
        plots.rank_agreement_distributions({"KD": {"edges": [0.0, 1.0], "counts": [1, 2]}})


def test_stronger_teacher_curves_one_line_per_method_with_slopes_and_teacher_names():
    rows = [
        {"method": m, "teacher": t, "teacher_accuracy": xt, "seed": s, "value": 0.8 + k * xt / 10 + 0.001 * s}
        for k, m in enumerate(("KD", "CMKD"))
        for t, xt in (("small", 0.90), ("mid", 0.95), ("big", 0.96))
        for s in (0, 1)
    ]
    fig = plots.stronger_teacher_curves(
        pd.DataFrame(rows), slopes={"KD": "slope 0.00", "CMKD": "slope 0.10"}, baseline=0.82, title="s"
    )
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["KD (slope 0.00)", "CMKD (slope 0.10)", "student alone"]
    assert [a.get_text() for a in ax.texts] == ["small", "mid", "big"]  # sorted by teacher accuracy
    assert len({a.xyann[1] for a in ax.texts}) == 2  # two heights: close teachers stay readable
    xs = ax.get_lines()[0].get_xdata()
    assert list(xs) == [0.90, 0.95, 0.96] and ax.get_title() == "s"
    with pytest.raises(ValueError, match="teacher_accuracy"):
        plots.stronger_teacher_curves(pd.DataFrame(rows).drop(columns="teacher_accuracy"))


def test_revised_targets_one_panel_per_sample_label_tick_bold_and_images_beside():
    import torch.nn.functional as F

    z = torch.tensor([[3.0, 0.5, 0.0], [0.0, 2.0, 1.5], [0.2, 0.1, 2.5], [1.0, 3.0, 0.0]])
    y = torch.tensor([1, 2, 0, 0])
    p_t, p_rev = F.softmax(z, dim=1), revised_target(z, y, 0.8)
    classes = ["cat", "dog", "emu"]
    fig = plots.revised_targets(p_t, p_rev, y, classes, ncols=3, title="LR")
    assert len(fig.axes) == 4 and fig._suptitle.get_text() == "LR"
    first = fig.axes[0]
    heights = [p.get_height() for p in first.patches]
    np.testing.assert_allclose(heights, [*p_t[0].tolist(), *p_rev[0].tolist()], rtol=1e-6)
    assert [t.get_fontweight() for t in first.get_xticklabels()] == ["normal", "bold", "normal"]
    assert first.get_title() == "label dog, teacher cat"
    x = torch.zeros(4, 1, 4, 4, dtype=torch.uint8)
    fig = plots.revised_targets(p_t, p_rev, y, classes, images=x, ncols=2)
    assert len(fig.axes) == 8 and sum(bool(ax.get_images()) for ax in fig.axes) == 4
    with pytest.raises(ValueError, match="do not match"):
        plots.revised_targets(p_t, p_rev[:2], y, classes)
    with pytest.raises(ValueError, match="images must have shape"):
        plots.revised_targets(p_t, p_rev, y, classes, images=x[:2])


def test_keep_ratio_curves_percent_ticks_one_line_per_scorer_and_reference_lines():
    df = pd.DataFrame(
        [
            {"scorer": sc, "keep": k, "seed": s, "value": 0.8 + 0.05 * k + 0.01 * i + 0.001 * s}
            for i, sc in enumerate(("influence", "confidence", "correct"))
            for k in (0.5, 0.7, 0.9, 1.0)
            for s in (0, 1)
        ]
    )
    fig = plots.keep_ratio_curves(df, title="DS", reference={"KD": 0.84, "nan": float("nan")})
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.get_xticks(), [0.5, 0.7, 0.9, 1.0])
    assert ax.xaxis.get_major_formatter()(0.7, 0) == "70%"
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines[:3]] == ["influence", "confidence", "correct"]
    assert len(lines) == 4 and lines[3].get_linestyle() == ":"  # one reference line; NaN draws none
    with pytest.raises(ValueError, match="missing column"):
        plots.keep_ratio_curves(df.rename(columns={"scorer": "method"}))


# ---------------------------------------------------------------------------
# notebook 04: faithfulness
# ---------------------------------------------------------------------------


def _slice(directions="gradient"):
    from kdutils import faithfulness

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(1, 4, 4)
    return faithfulness.confidence_slice(
        {"teacher": net, "KD": other, "faithful": net}, x, 1, 0.3, directions=directions, resolution=9
    )


def test_confidence_slice_centre_is_the_clean_image_and_points_stay_in_the_ball():
    from kdutils import faithfulness

    sl = _slice()
    assert set(sl["confidence"]) == {"teacher", "KD", "faithful"} and sl["reference"] == ("teacher", "KD")
    assert sl["coords"][0] == -1.0 and sl["coords"][-1] == 1.0 and len(sl["coords"]) == 9
    conf = sl["confidence"]["teacher"]
    assert conf.shape == (9, 9) and np.all((conf >= 0) & (conf <= 1))
    # the teacher and the "faithful" student are the same network: no gap anywhere on the slice
    np.testing.assert_allclose(sl["confidence"]["faithful"], conf)
    # the centre is the clean image
    x = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(3))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    s2 = faithfulness.confidence_slice({"t": net}, x, 2, 0.2, directions="random", resolution=5, seed=1)
    with torch.no_grad():
        p = net(x[None]).softmax(1)[0, 2].item()
    assert s2["confidence"]["t"][2, 2] == pytest.approx(p, abs=1e-6) and s2["reference"] is None
    # seeded: the same slice twice
    np.testing.assert_array_equal(
        faithfulness.confidence_slice({"t": net}, x, 2, 0.2, directions="random", resolution=5, seed=1)["confidence"][
            "t"
        ],
        s2["confidence"]["t"],
    )
    with pytest.raises(ValueError, match="directions"):
        faithfulness.confidence_slice({"t": net}, x, 2, 0.2, directions="up")
    with pytest.raises(ValueError, match="reference"):
        faithfulness.confidence_slice({"t": net}, x, 2, 0.2, reference=("t", "nobody"))


def test_confidence_slice_gradient_direction_lowers_the_student():
    """Along +u (the sign of the gradient of p_T - p_S) the gap grows, for a linear toy student."""
    from kdutils import faithfulness

    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        teacher[1].weight.zero_(), teacher[1].bias.zero_()
        student[1].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
        student[1].bias.zero_()
    x = torch.full((1, 2, 2), 0.5)
    sl = faithfulness.confidence_slice({"t": teacher, "s": student}, x, 0, 0.1, resolution=3)
    gap = sl["confidence"]["t"] - sl["confidence"]["s"]
    assert gap[1, 2] > gap[1, 1] > gap[1, 0]  # row b = 0, a = -1, 0, 1


def test_confidence_slices_two_rows_hatched_disagreement_and_titles():
    sl = _slice()
    sl["prediction"]["KD"][0, 0] = (sl["prediction"]["teacher"][0, 0] + 1) % 3  # one disagreeing point
    fig = plots.confidence_slices(sl, title="slice")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 6  # 2 rows x 3 models
    assert fig._suptitle.get_text() == "slice"
    titles = [ax.get_title() for ax in panels]
    assert titles[0].startswith("teacher") and "at x" in titles[1] and titles[3].startswith("x (class 1)")
    assert titles[4].startswith("teacher - KD")
    with pytest.raises(ValueError, match="coords"):
        plots.confidence_slices({"confidence": {}})


def test_gap_distributions_one_panel_per_method_log_shares():
    from kdutils.faithfulness import gap_histogram

    g = torch.Generator().manual_seed(0)
    hists = {
        m: {
            "empirical": gap_histogram(torch.rand(50, generator=g) * 0.3),
            "certified": gap_histogram(torch.rand(50, generator=g)),
        }
        for m in ("KD", "faithful")
    }
    fig = plots.gap_distributions(hists, delta=0.1, title="g")
    axes = [ax for ax in fig.axes]
    assert len(axes) == 2 and axes[0].get_yscale() == "log" and axes[1].get_title() == "faithful"
    labels = [t.get_text() for t in axes[-1].get_legend().get_texts()]
    assert labels[:2] == ["empirical (PGD, lower bound)", "certified (IBP, upper bound)"] and "delta = 0.1" in labels
    with pytest.raises(ValueError, match="empty"):
        plots.gap_distributions({})
    with pytest.raises(ValueError, match="needs"):
        plots.gap_distributions({"KD": {"bound": hists["KD"]["empirical"]}})
    # no evaluation points (a dry run's untrained networks): the panel says so instead of failing
    none = {"edges": hists["KD"]["empirical"]["edges"], "counts": [0] * len(hists["KD"]["empirical"]["counts"])}
    fig = plots.gap_distributions({"KD": {"empirical": none, "certified": none}}, delta=0.1)
    assert "no evaluation points" in " ".join(t.get_text() for t in fig.axes[0].texts)
    with pytest.raises(ValueError, match="edges"):
        plots.gap_distributions({"KD": {"empirical": {"edges": [0.0, 1.0], "counts": [1, 2]}}})


def test_coinciding_curves_are_named_not_hidden():
    """Five methods at a certified share of 0 for every delta draw one line: a note names them all."""
    rows = [
        {"method": m, "seed": s, "bound": "certified (IBP)", "delta": d, "value": v(d)}
        for m, v in (("KD", lambda d: 0.0), ("faithful", lambda d: d), ("ARD", lambda d: 0.0), ("RSLAD", lambda d: 0.0))
        for s in (0, 1)
        for d in (0.01, 0.1, 0.5)
    ]
    fig = plots.faithful_share_curves(pd.DataFrame(rows))
    notes = [t.get_text().replace("\n", " ") for t in fig.axes[0].texts]
    assert notes == ["KD, ARD and RSLAD: 0 at every delta"]
    rows = [r for r in rows if r["method"] in ("KD", "faithful")]  # nothing hidden: no note
    assert len(plots.faithful_share_curves(pd.DataFrame(rows)).axes[0].texts) == 0
    same = [{"method": m, "seed": 0, "epoch": e, "value": e / 10} for m in ("a", "b") for e in (1, 2)]
    ax = plots.line_with_spread(pd.DataFrame(same), x="epoch").axes[0]
    assert [t.get_text() for t in ax.texts] == ["a and b: the same curve"]
    plt.close("all")


def test_faithful_share_curves_one_panel_per_bound():
    rows = [
        {"method": m, "seed": s, "bound": b, "delta": d, "value": min(1.0, d * (2 + k) + 0.01 * s)}
        for k, m in enumerate(("KD", "faithful"))
        for s in (0, 1)
        for b in ("empirical (PGD)", "certified (IBP)")
        for d in (0.01, 0.1, 0.5)
    ]
    fig = plots.faithful_share_curves(pd.DataFrame(rows), title="f")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["empirical (PGD)", "certified (IBP)"]
    assert axes[0].get_xscale() == "log" and axes[0].get_ylim() == (-0.02, 1.02)
    assert [t.get_text() for t in axes[-1].get_legend().get_texts()] == ["KD", "faithful"]
    with pytest.raises(ValueError, match="bound"):
        plots.faithful_share_curves(pd.DataFrame(rows).drop(columns="bound"))


def test_no_figure_puts_more_than_three_panels_in_a_row():
    from kdutils.faithfulness import gap_histogram

    g = torch.Generator().manual_seed(0)
    h = {m: {"empirical": gap_histogram(torch.rand(50, generator=g))} for m in "abcdef"}
    fig = plots.gap_distributions(h)
    cols = {round(ax.get_position().x0, 3) for ax in fig.axes if ax.get_title() in h}
    assert len(cols) == 3 and len([ax for ax in fig.axes if ax.get_title() in h]) == 6
    rel = plots.reliability_diagrams({f"m{i}": _rel(i) for i in range(5)}, ncols=4)
    assert len({round(ax.get_position().x0, 3) for ax in rel.axes}) == 3


def test_reliability_bins_say_how_many_images_they_hold():
    fig = plots.reliability_diagrams({"m": _rel(0)})
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts and all(t.endswith("%") for t in texts)


def test_cifar_epsilons_are_labelled_in_steps_of_1_255():
    fig = plots.robustness_curves(_robust_df())  # 0, 2/255, 4/255, 8/255
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "4/255" in labels and "1/255" in fig.axes[0].get_xlabel()
    df = _robust_df()
    df["epsilon"] = df["epsilon"] * 255 * 0.05 / 2  # MNIST's grid: 0, 0.05, 0.1, 0.2
    mnist = plots.robustness_curves(df)
    assert "pixel range [0, 1]" in mnist.axes[0].get_xlabel()


def test_readable_names_replace_raw_identifiers_in_titles_labels_and_legends():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="mu_s_train")
    ax.legend()
    ax.set_title("fashion_mnist: mu_s_train (training set)")
    ax.set_ylabel("val_acc")
    fig.suptitle("mnist and fashion_mnist")
    plots.readable(fig, {**plots.READABLE, "fashion_mnist": "Fashion-MNIST", "mnist": "MNIST"})
    assert ax.get_title() == "Fashion-MNIST: mu_S (train) (training set)"
    assert fig.get_suptitle() == "MNIST and Fashion-MNIST"  # whole words: fashion_mnist is not mnist
    assert ax.get_ylabel() == "validation accuracy" and ax.get_legend().get_texts()[0].get_text() == "mu_S (train)"
    plt.close(fig)


def test_readable_names_reach_categorical_tick_labels_after_drawing():
    """Tick labels are re-made by the axis' formatter when the figure is drawn: the display name must
    survive a draw (a saved figure), and numeric ticks stay as they were."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.bar(["fashion_mnist", "mnist"], [0.5, 0.7])
    y_before = [t.get_text() for t in ax.get_yticklabels()]
    plots.readable(fig, {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST"})
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Fashion-MNIST", "MNIST"]
    assert [t.get_text() for t in ax.get_yticklabels()] == y_before
    plt.close(fig)


def test_training_curves_colour_by_method_and_style_by_seed():
    plots.style()
    rec = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.6}]
    hist = {"KD s0": rec, "KD s1": rec, "student alone s0": rec}
    fig = plots.training_curves(
        hist, keys=("val_acc",), groups={"KD s0": "KD", "KD s1": "KD", "student alone s0": "student alone"}
    )
    lines = fig.axes[0].get_lines()
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    assert lines[0].get_linestyle() != lines[1].get_linestyle()
    assert tuple(matplotlib.colors.to_rgb(lines[0].get_color())) == pytest.approx(plots.color_of("KD"))


def test_bands_of_shares_stay_in_0_1():
    df = pd.DataFrame({"method": "a", "x": [0, 0, 1, 1], "seed": [0, 1, 0, 1], "value": [0.0, 0.1, 0.95, 1.0]})
    ax = plots.line_with_spread(df, x="x").axes[0]
    ys = np.concatenate([p.vertices[:, 1] for c in ax.collections for p in c.get_paths()])
    assert ys.min() >= 0.0 and ys.max() <= 1.0


def test_shared_labels_have_one_colour_in_every_notebook_and_own_labels_others():
    plots.style()
    suite = plots.suite_colors()
    assert len(set(suite.values())) == len(suite), "two shared labels with one colour"
    assert {"teacher", "student alone", "KD", "CMKD", "DIST", "ARD", "faithful (IBP)", "IBP (no teacher)"} <= set(suite)
    own = plots.color_of("CMKD, Pearson only")  # a notebook's own label, drawn first
    kd_before = plots.color_of("KD")
    plots.style()  # the next notebook
    plots.color_of("KD tau=4")
    assert plots.color_of("KD") == kd_before == suite["KD"]  # whatever was drawn before it
    assert plots.color_of("KD | IBP pair") == suite["KD"]  # notebook 06's interval pair: the method's colour
    assert plots.color_of("faithful (IBP) | IBP pair") == suite["faithful (IBP)"]
    assert own not in suite.values() and plots.color_of("KD tau=4") not in suite.values()


def test_training_curves_of_many_runs_put_the_legend_beside_and_give_each_seed_a_style():
    plots.style()
    h = {
        f"{m} s{s}": [{"epoch": e, "val_acc": 0.9 + 0.001 * e * (s + 1)} for e in (1, 2, 3)]
        for m in ("a", "b")
        for s in range(5)
    }
    fig = plots.training_curves(h, keys=("val_acc",), groups={k: k.split()[0] for k in h})
    ax = fig.axes[0]
    assert ax.get_legend() is None and len(fig.legends) == 1  # ten runs: beside the panel, not over the curves
    assert len(set(map(repr, plots._SEED_STYLES[:5]))) == 5  # five seeds of one method, five line styles
    assert len({ln.get_color() for ln in ax.get_lines()[:5]}) == 1  # one method, one colour
    few = plots.training_curves(dict(list(h.items())[:4]), keys=("val_acc",))
    assert few.axes[0].get_legend() is not None and not few.legends
    matplotlib.pyplot.close("all")

"""Figures for the kd-notebooks.

Every plotting function draws one new figure and returns its
:class:`matplotlib.figure.Figure`; none calls ``plt.show()``.  Figures are
created through ``pyplot`` so the notebooks' inline backend displays each
one once at the end of the cell (ending a cell with the bare ``fig`` would
display it a second time).  Call :func:`style` once at the top of a notebook
for the shared seaborn "whitegrid" look; importing this module changes no
global matplotlib state.

Data come as tidy :class:`pandas.DataFrame` objects with one row per seed
(``bar_with_spread``, ``bar_panels``, ``line_with_spread``,
``robustness_curves``, ``margin_curves``, ``usage_curves``,
``pruning_curve``; :class:`kdutils.notebook.NotebookContext` builds them),
one row per run (``accuracy_vs_usage``), one row per teacher and seed
(``stronger_teacher_curves``), one row per scorer, keep ratio and seed (``keep_ratio_curves``), as
histograms (``rank_agreement_distributions``, ``gap_distributions``), as the slice of
:func:`kdutils.faithfulness.confidence_slice` (``confidence_slices``), one row per seed and delta
(``faithful_share_curves``),
as the per-epoch history records of
the training loop (``training_curves``), as the dicts of
:func:`kdutils.metrics.reliability` (``reliability_diagrams``), or as
tensors (``image_grid``, ``significance_histogram``, ``significant_images``,
``revised_targets``).

Legends of line plots stand beside the axes, never over a curve, and a figure
drawn here is widened by its legend's width so the axes, title and labels keep
their room.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..methods.base import BLOCKS, INTERVAL_SUFFIX, leaderboard_rows

__all__ = [
    "accuracy_vs_usage",
    "bar_panels",
    "bar_with_spread",
    "confidence_slices",
    "faithful_share_curves",
    "gap_distributions",
    "image_grid",
    "keep_ratio_curves",
    "line_with_spread",
    "margin_curves",
    "pruning_curve",
    "rank_agreement_distributions",
    "reliability_diagrams",
    "revised_targets",
    "robustness_curves",
    "save_figure",
    "significance_histogram",
    "significant_images",
    "stronger_teacher_curves",
    "style",
    "training_curves",
    "usage_curves",
]

#: the markers and dash patterns of a figure's lines, in order (with its colour, each line's own)
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
DASHES = ("-", "--", ":")

#: no figure puts more panels than this side by side (wider ones are unreadable at notebook width)
MAX_PANELS_PER_ROW = 3

#: A figure name must be a stable file stem made of these characters only.
NAME_PATTERN = re.compile(r"[a-z0-9_-]+")

#: Readable axis titles for the usual history keys.
_KEY_LABELS = {
    "loss": "Training loss",
    "train_acc": "Train accuracy",
    "val_acc": "Validation accuracy",
    "participation": "Participation",
}


# ---------------------------------------------------------------------------
# style and saving
# ---------------------------------------------------------------------------


#: the labels every notebook shares (the teacher, the student alone, KD, notebook 06's rows), each with
#: one colour in every figure of the suite (:func:`suite_colors`); a notebook's own labels (ablations,
#: variants) take the colours of :data:`_OWN_PALETTE` on first use
_SUITE_FIRST = ("teacher", "student alone", "KD")
_SUITE_LAST = ("teacher SR (schedule)",)  # notebook 03's and 06's self-regulated teacher
_COLOR_OF: dict[str, tuple[float, float, float]] = {}
_SUITE: dict[str, tuple[float, float, float]] = {}


def _suite_palette() -> list[tuple[float, float, float]]:
    """30 colours: seaborn's deep, then its dark, then tab20's light halves."""
    return sns.color_palette("deep", 10) + sns.color_palette("dark", 10) + sns.color_palette("tab20", 20)[1::2]


def _own_palette() -> list[tuple[float, float, float]]:
    """A notebook's own labels: 12 evenly spaced hues (husl, a little desaturated), taken far apart
    first (0, 6, 3, 9, ...), so that the first few labels of a figure do not look alike."""
    hues = sns.color_palette("husl", 12, desat=0.8)
    return [hues[i] for i in (0, 6, 3, 9, 1, 7, 4, 10, 2, 8, 5, 11)]


def suite_colors() -> dict[str, tuple[float, float, float]]:
    """label -> colour of every label the notebooks share: the teacher, the student alone, KD, then
    notebook 06's rows block by block in the registry's order (:func:`kdutils.methods.base.leaderboard_rows`;
    an interval-pair row as its method, "faithful (IBP)" as in notebook 04) and the self-regulated
    teacher; the same in every notebook, so KD is one colour across 00-06."""
    if not _SUITE:
        rows = leaderboard_rows()
        labels = list(_SUITE_FIRST)
        for lb in [e.label for b in BLOCKS for e in rows if e.block == b] + list(_SUITE_LAST):
            if lb not in labels:
                labels.append(lb)
        base = _suite_palette()
        _SUITE.update({lb: tuple(base[i % len(base)]) for i, lb in enumerate(labels)})
    return dict(_SUITE)


def color_of(label: Any) -> tuple[float, float, float]:
    """The colour of ``label`` in every figure: a shared label's (:func:`suite_colors`) in every
    notebook; any other label the next of its own palette the first time it is drawn in this
    notebook, the same one after (:func:`style` starts those afresh)."""
    key = str(label)
    suite = suite_colors()
    if key.removesuffix(INTERVAL_SUFFIX) in suite:  # notebook 06's interval pair: the method's colour
        return suite[key.removesuffix(INTERVAL_SUFFIX)]
    if key not in _COLOR_OF:
        own = _own_palette()
        _COLOR_OF[key] = tuple(own[len(_COLOR_OF) % len(own)])
    return _COLOR_OF[key]


def palette(labels: Sequence[Any]) -> list[tuple[float, float, float]]:
    """:func:`color_of` each of ``labels``."""
    return [color_of(lb) for lb in labels]


def style(context: str = "notebook", font_scale: float = 1.0) -> None:
    """Apply the shared look (seaborn ``whitegrid``) and start the notebook's colours afresh
    (:func:`color_of`); call once per notebook."""
    _COLOR_OF.clear()
    sns.set_theme(
        style="whitegrid",
        context=context,
        font_scale=font_scale,
        rc={"axes.spines.top": False, "axes.spines.right": False},
    )


#: raw identifiers a figure's titles, labels and legends show as words instead [ours]
READABLE = {
    "mu_s_train": "mu_S (train)",
    "mu_f_train": "mu_F (train)",
    "mu_s_test": "mu_S (test)",
    "mu_f_test": "mu_F (test)",
    "val_acc": "validation accuracy",
    "train_acc": "training accuracy",
    "data_usage": "data usage",
    "val_accuracy": "validation accuracy",
}


def readable(fig: Figure, names: Mapping[str, str]) -> None:
    """Replace raw identifiers (``fashion_mnist``, ``mu_s_train``) by their display names in every
    title, axis label, tick label and legend entry of ``fig`` (``names``: identifier -> words; the
    longest first, whole words only)."""
    if not names:
        return
    pattern = re.compile(
        r"(?<![\w/])(" + "|".join(re.escape(k) for k in sorted(names, key=len, reverse=True)) + r")(?![\w])"
    )

    def fix(t) -> None:
        text = t.get_text()
        new = pattern.sub(lambda m: names[m.group(1)], text)
        if new != text:
            t.set_text(new)

    from matplotlib.text import Text

    for ax in fig.axes:  # tick labels are re-made from the axis' formatter at draw time: fix them there
        for axis, ticks, setter in ((ax.xaxis, ax.get_xticks, ax.set_xticks), (ax.yaxis, ax.get_yticks, ax.set_yticks)):
            labels = [t.get_text() for t in axis.get_ticklabels()]
            new = [pattern.sub(lambda m: names[m.group(1)], t) for t in labels]
            if new != labels and len(new) == len(ticks()):
                setter(ticks(), new)
    for t in fig.findobj(match=Text):  # every title, label, legend entry and free text (public API only)
        fix(t)


def caption(fig: Figure, text: str) -> None:
    """A small grey line at the foot of ``fig`` (the dataset, models, profile, epochs and seeds of
    :meth:`kdutils.NotebookContext.caption`), so a figure read out of its notebook says what it
    shows; a second call replaces the first."""
    for t in list(fig.texts):
        if t.get_gid() == "kd-caption":
            t.remove()
    fig.text(0.5, -0.01, text, ha="center", va="top", fontsize="x-small", color="0.35", gid="kd-caption")


def save_figure(fig: Figure, folder: str | Path, name: str) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` (dpi 120, tight bounding box).

    ``name`` must be a stable file stem: lower-case letters, digits, ``_``
    and ``-`` only (``[a-z0-9_-]+``).  The folder is created if needed.
    Returns the path written.
    """
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise ValueError(
            f"figure name {name!r} is not a stable file stem: use only lower-case "
            "letters, digits, '_' and '-' (pattern [a-z0-9_-]+), without extension"
        )
    import io

    from ..core.io import atomic_write_bytes

    path = Path(folder) / f"{name}.png"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(buf.getbuffer(), path)  # a failed write: one StorageError line
    return path


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _require_columns(df: pd.DataFrame, columns: Sequence[str | None], fn: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{fn}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c is not None and c not in df.columns]
    if missing:
        raise ValueError(f"{fn}: missing column(s) {missing}; the DataFrame has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{fn}: the DataFrame is empty")


def _levels(series: pd.Series) -> list[Any]:
    """Distinct values: categorical order if categorical, else first appearance."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        present = set(series.dropna().unique())
        return [c for c in series.cat.categories if c in present]
    return list(pd.unique(series.dropna()))


def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor, without importing torch here
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _rotate_long_ticks(ax: Axes) -> None:
    labels = [t.get_text() for t in ax.get_xticklabels()]
    if len(labels) > 6 or max((len(s) for s in labels), default=0) > 10:
        ax.tick_params(axis="x", labelrotation=30)
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(), ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _legend_beside(ax: Axes, title: str | None = None, **kw: Any):
    """The axes' legend to its right, top-aligned: it never hides a curve."""
    return ax.legend(
        title=title, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kw
    )


def _widen_for(fig: Figure, legend: Any) -> None:
    """Widen ``fig`` by ``legend``'s width (inches), so the axes keep the width they were given."""
    if legend is None:
        return
    width = legend.get_window_extent().width / fig.dpi
    fig.set_size_inches(fig.get_figwidth() + width + 0.15, fig.get_figheight())


# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------


def image_grid(
    x_uint8: Any,
    y: Any,
    classes: Sequence[str],
    per_class: int = 8,
    title: str | None = None,
) -> Figure:
    """Grid of sample images: one row per class, ``per_class`` columns.

    ``x_uint8`` is a uint8 tensor (or array) of shape ``(N, C, H, W)`` with
    ``C`` in ``{1, 3}``; ``y`` holds the ``N`` integer labels indexing
    ``classes``.  Row ``k`` shows the first ``per_class`` images of class
    ``k`` in dataset order (blank cells when a class has fewer), with the
    class name at the start of the row.
    """
    x = _to_numpy(x_uint8)
    labels = _to_numpy(y).reshape(-1)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"image_grid: x must have shape (N, C, H, W) with C in {{1, 3}}, got {x.shape}")
    if x.dtype != np.uint8:
        raise ValueError(f"image_grid: x must be uint8 (0..255), got dtype {x.dtype}")
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"image_grid: y has {labels.shape[0]} labels for {x.shape[0]} images")
    if per_class < 1:
        raise ValueError(f"image_grid: per_class must be >= 1, got {per_class}")
    n_classes = len(classes)
    if n_classes == 0:
        raise ValueError("image_grid: classes is empty")

    cell, margin = 0.9, 1.3
    head = 0.45 + 0.25 * title.count("\n") if title else 0.05  # a quarter inch more for each further line
    width, height = per_class * cell + margin, n_classes * cell + head + 0.05
    fig, axes = plt.subplots(n_classes, per_class, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(
        left=margin / width,
        right=1.0 - 0.05 / width,
        bottom=0.05 / height,
        top=1.0 - head / height,
        wspace=0.05,
        hspace=0.05,
    )
    gray = x.shape[1] == 1
    for k, name in enumerate(classes):
        idx = np.flatnonzero(labels == k)[:per_class]
        for j in range(per_class):
            ax = axes[k, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.grid(False)
            if j < len(idx):
                img = x[idx[j]]
                if gray:
                    ax.imshow(img[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                else:
                    ax.imshow(np.transpose(img, (1, 2, 0)), interpolation="nearest")
        axes[k, 0].set_ylabel(str(name), rotation=0, ha="right", va="center", labelpad=6)
    if title:
        fig.suptitle(title, y=1.0 - 0.05 / height, va="top")
    return fig


# ---------------------------------------------------------------------------
# training histories
# ---------------------------------------------------------------------------


def _finite(v: Any) -> bool:
    if v is None:
        return False
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


#: the line styles of one method's seeds in :func:`training_curves` (five seeds at full: five styles)
_SEED_STYLES = ("-", "--", ":", "-.", (0, (1, 1)), (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))


def training_curves(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    keys: Sequence[str] = ("loss", "train_acc", "val_acc"),
    groups: Mapping[str, str] | None = None,
) -> Figure:
    """One subplot per history key, one line per run label.

    ``histories`` maps a label to its per-epoch records (dicts with an
    ``"epoch"`` field and metric fields).  The x value is each record's
    ``"epoch"``; records whose value for a key is missing, ``None`` or
    non-finite are left out of that line.  A key absent from all records is
    skipped. ``groups`` (label -> method): the runs of one method share its notebook colour
    (:func:`color_of`) and differ by line style (the seeds of a method), instead of a colour each.
    """
    if not histories:
        raise ValueError("training_curves: histories is empty")
    present = [k for k in keys if any(_finite(r.get(k)) for recs in histories.values() for r in recs)]
    if not present:
        raise ValueError(f"training_curves: none of the keys {list(keys)} has a value in any record")
    beside = len(histories) > 6  # a legend inside the axes would hide the curves: put it beside the panels
    width = 4.2 * len(present) + (2.4 if beside else 0.0)
    fig, axes = plt.subplots(1, len(present), figsize=(width, 3.4), squeeze=False, layout="constrained")
    if groups is None:
        colors = sns.color_palette(n_colors=max(len(histories), 1))
        styles = ["-"] * len(histories)
    else:
        colors = [color_of(groups.get(lb, lb)) for lb in histories]
        seen: dict[str, int] = {}
        styles = []
        for lb in histories:
            g = groups.get(lb, lb)
            styles.append(_SEED_STYLES[seen.get(g, 0) % len(_SEED_STYLES)])
            seen[g] = seen.get(g, 0) + 1
    for ax, key in zip(axes[0], present):
        for (label, recs), color, ls in zip(histories.items(), colors, styles):
            pts = [(r.get("epoch", i + 1), float(r[key])) for i, r in enumerate(recs) if _finite(r.get(key))]
            if not pts:
                continue
            xs, ys = zip(*pts)
            ax.plot(
                xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, color=color, linestyle=ls, label=str(label)
            )
        ax.set_title(_KEY_LABELS.get(key, key.replace("_", " ")))
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if beside:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", fontsize="small")
    else:
        axes[0, 0].legend(fontsize="small")
    fig.suptitle("Training curves")
    return fig


# ---------------------------------------------------------------------------
# seed spread: bars and lines
# ---------------------------------------------------------------------------


def _spread_ylim(df: pd.DataFrame, x: str, y: str, hue: str | None) -> tuple[float, float]:
    vals = pd.to_numeric(df[y], errors="coerce")
    vals = vals[np.isfinite(vals)]
    if vals.empty:
        return 0.0, 1.0
    keys = [x] if hue is None else [x, hue]
    g = df.assign(_v=vals).groupby(keys, observed=True, dropna=True)["_v"]
    mean, sd = g.mean(), g.std().fillna(0.0)
    # keep the per-seed points and the error bars (mean +- sd) in view
    lo = float(min(vals.min(), (mean - sd).min()))
    hi = float(max(vals.max(), (mean + sd).max()))
    span = hi - lo
    pad = max(0.15 * span, 0.005 * max(abs(lo), abs(hi)), 1e-3)
    if span == 0:
        pad = max(0.02 * abs(hi), 0.01)
    low = lo - pad
    if lo >= 0 and low < 0:
        low = 0.0
    return low, hi + pad


def bar_with_spread(
    df: pd.DataFrame,
    x: str = "method",
    y: str = "value",
    hue: str | None = None,
    order: Sequence[Any] | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """The mean over seeds as a point with a ±1 std interval, and each seed's value beside it.

    ``df`` is tidy, one row per seed. Points, not bars: the y axis is zoomed to the data so that
    differences of half a point stay visible, and a bar on a zoomed axis would make a 0.5-point
    gap look like a 2.5x bar. A level with one seed has no interval and says so on its tick
    ("(n = 1)"); an interval of a quantity that lives in [0, 1] (a share, an accuracy) is clipped
    to it. Each ``x`` level keeps its notebook colour (:func:`color_of`); with ``hue`` the levels of
    ``hue`` are dodged side by side and coloured instead.
    """
    _require_columns(df, [x, y, hue], "bar_with_spread")
    fig, ax = _new_axes(ax, (max(4.0, 0.9 * df[x].nunique() * (1 + (hue is not None)) + 1.5), 3.8))
    order = list(order) if order is not None else _levels(df[x])
    hue_order = _levels(df[hue]) if hue is not None else [None]
    vals = pd.to_numeric(df[y], errors="coerce")
    unit = bool(len(vals.dropna())) and vals.min() >= 0 and vals.max() <= 1
    width = 0.7 / len(hue_order)
    rng = np.random.default_rng(0)  # the seeds' jitter: the same results give the same figure
    counts: dict[Any, int] = {}
    for i, level in enumerate(order):
        for j, h in enumerate(hue_order):
            sub = df[(df[x] == level) & ((df[hue] == h) if hue is not None else True)]
            v = pd.to_numeric(sub[y], errors="coerce").dropna().to_numpy(dtype=float)
            counts[level] = max(counts.get(level, 0), len(v))
            if not len(v):
                continue
            pos = i + (j - (len(hue_order) - 1) / 2) * width
            color = color_of(h if hue is not None else level)
            mean = float(v.mean())
            if len(v) > 1:
                sd = float(v.std(ddof=1))
                lo, hi = (max(0.0, mean - sd), min(1.0, mean + sd)) if unit else (mean - sd, mean + sd)
                ax.errorbar(
                    [pos],
                    [mean],
                    yerr=[[mean - lo], [hi - mean]],
                    fmt="none",
                    ecolor=color,
                    capsize=5,
                    linewidth=1.6,
                    zorder=2,
                )
            ax.scatter(
                [pos],
                [mean],
                s=70,
                color=color,
                edgecolors="0.15",
                linewidths=0.8,
                zorder=3,
                label=str(h) if hue is not None and i == 0 else None,
            )
            jitter = rng.uniform(-0.12, 0.12, len(v)) * width / 0.7
            ax.scatter(pos + 0.18 * width / 0.7 + jitter, v, s=14, color="0.25", alpha=0.8, zorder=4)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([f"{lv}\n(n = 1)" if counts.get(lv) == 1 else str(lv) for lv in order])
    ax.set_xlim(-0.6, len(order) - 0.4)
    low, high = _spread_ylim(df, x, y, hue)
    ax.set_ylim(max(low, 0.0) if unit else low, high)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or y)
    what = "point: mean, whiskers: ± 1 std over seeds, dots: seeds"
    ax.set_title(f"{title}\n({what})" if title and "±" not in title else title or f"{ylabel or y} by {x} ({what})")
    if hue is not None:
        ax.legend(title=hue, fontsize="small")
    _rotate_long_ticks(ax)
    return fig


def _coinciding_curves(curves: Sequence[tuple[Any, np.ndarray, np.ndarray]]) -> list[list[Any]]:
    """Groups (two or more, in drawing order) of ``(level, xs, mean)`` curves with the same x values
    and the same means (to 1e-12): drawn on one another, only the last of a group would be seen."""
    groups: list[list[tuple[Any, np.ndarray, np.ndarray]]] = []
    for curve in curves:
        for g in groups:
            _, gx, gm = g[0]
            if np.array_equal(gx, curve[1]) and np.allclose(gm, curve[2], rtol=0, atol=1e-12, equal_nan=True):
                g.append(curve)
                break
        else:
            groups.append([curve])
    return [[level for level, _, _ in g] for g in groups if len(g) > 1]


def _name_coinciding_curves(ax: Axes, curves: Sequence[tuple[Any, np.ndarray, np.ndarray]], xname: str) -> None:
    """Name the curves that lie on one another (e.g. five methods at 0 for every delta), at the right end
    of their line, so a reader does not take the one colour that shows for the only method there."""
    import textwrap

    means = {level: mean for level, _, mean in curves}
    low, high = ax.get_ylim()
    for group in _coinciding_curves(curves):
        mean = means[group[0]]
        names = ", ".join(str(lv) for lv in group[:-1]) + f" and {group[-1]}"
        const = np.nanmax(mean) - np.nanmin(mean) <= 1e-12
        text = f"{names}: {mean[0]:.3g} at every {xname}" if const else f"{names}: the same curve"
        y_end = float(mean[np.isfinite(mean)][-1]) if np.isfinite(mean).any() else (low + high) / 2
        above = y_end <= (low + high) / 2
        ax.annotate(
            textwrap.fill(text, 44),
            xy=(1.0, y_end),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 5 if above else -5),
            textcoords="offset points",
            ha="right",
            va="bottom" if above else "top",
            fontsize=7.5,
            color="0.25",
        )


def line_with_spread(
    df: pd.DataFrame,
    x: str,
    y: str = "value",
    hue: str | None = "method",
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    logx: bool = False,
    ax: Axes | None = None,
    hue_order: Sequence[Any] | None = None,
    legend: str | bool = "auto",
) -> Figure:
    """Mean line (with markers) and a shaded +-1 std band per ``hue`` level.

    ``df`` is tidy, one row per seed and x value.  With a single seed there
    is no band.  ``logx`` uses a log x axis (symlog when some x <= 0).
    ``hue_order`` fixes the order and colours of the lines (useful to keep
    colours consistent across panels).

    ``legend``: ``"auto"`` puts it beside the axes (never over a curve) when
    the axes is the last of its row, and draws none on a panel with another
    one to its right (the figure's last panel or the caller draws it once);
    ``"beside"``, ``"inside"`` (matplotlib's best spot) or ``False``.  On a
    figure of its own the figure is widened by the legend's width, so the
    axes keep their size and the title and labels are not cut off.

    Curves with exactly the same means (e.g. several methods at 0 for every
    x) would hide all but the last drawn: a note at their right end names them.
    """
    _require_columns(df, [x, y, hue], "line_with_spread")
    own = ax is None
    fig, ax = _new_axes(ax, (5.0, 3.6))
    if hue is None:
        groups: list[tuple[Any, pd.DataFrame]] = [(None, df)]
        n_colors = 1
    else:
        levels = list(hue_order) if hue_order is not None else _levels(df[hue])
        n_colors = len(levels)
        groups = [(lv, df[df[hue] == lv]) for lv in levels]
    colors = palette([lv for lv, _ in groups]) if hue is not None else sns.color_palette(n_colors=max(n_colors, 1))
    drawn: list[tuple[Any, np.ndarray, np.ndarray]] = []
    vals = pd.to_numeric(df[y], errors="coerce").dropna()
    unit = bool(len(vals)) and vals.min() >= 0 and vals.max() <= 1
    for k, ((level, sub), color) in enumerate(zip(groups, colors)):
        if sub.empty:
            continue
        stats = (
            sub.assign(_v=pd.to_numeric(sub[y], errors="coerce"))
            .groupby(x, observed=True, dropna=True)["_v"]
            .agg(["mean", "std"])
            .sort_index()
        )
        xs = stats.index.to_numpy()
        mean = stats["mean"].to_numpy(dtype=float)
        sd = stats["std"].to_numpy(dtype=float)
        # a marker and a dash pattern per line besides its colour: seven methods stay apart in print too
        ax.plot(
            xs,
            mean,
            marker=MARKERS[k % len(MARKERS)],
            markersize=4,
            color=color,
            linestyle=DASHES[(k // len(MARKERS)) % len(DASHES)],
            label=None if level is None else str(level),
        )
        drawn.append((level, xs, mean))
        if np.isfinite(sd).any():
            band = np.where(np.isfinite(sd), sd, 0.0)
            lo, hi = mean - band, mean + band
            if unit:  # a share or an accuracy: its band stays in [0, 1]
                lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
            ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
    if logx:
        xv = pd.to_numeric(df[x], errors="coerce")
        if (xv > 0).all():
            ax.set_xscale("log")
        else:
            positive = xv[xv > 0]
            ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1.0)
        ticks = np.unique(xv.dropna().to_numpy(dtype=float))
        if len(ticks) <= 12:  # label the measured x values themselves, not powers of ten
            ax.xaxis.set_major_locator(mticker.FixedLocator(ticks))
            ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_locator(mticker.NullLocator())
    else:
        xv = pd.to_numeric(df[x], errors="coerce").dropna()
        if len(xv) and (xv == xv.round()).all():  # epochs and counts: no 1.25 ticks
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.set_title(title or f"{ylabel or y} vs {xlabel or x} (mean ± std over seeds)")
    _name_coinciding_curves(ax, drawn, xlabel or x)
    if hue is not None and legend:
        if legend == "auto":
            spec = ax.get_subplotspec()
            legend = "beside" if spec is None or spec.is_last_col() else False
        if legend == "beside":
            leg = _legend_beside(ax, title=hue)
            if own:
                _widen_for(fig, leg)
        elif legend == "inside":
            ax.legend(title=hue, fontsize="small", loc="best")
        elif legend is not False:
            raise ValueError(f"line_with_spread: legend must be 'auto', 'beside', 'inside' or False, got {legend!r}")
    return fig


def robustness_curves(df: pd.DataFrame, attacks: Sequence[str] = ("fgsm", "pgd"), title: str | None = None) -> Figure:
    """Robust accuracy vs epsilon, one subplot per attack present in ``df``.

    ``df`` is tidy with columns ``method, seed, attack, epsilon, value``.
    Each panel is a :func:`line_with_spread` per method; the y axes are
    shared and fixed to ``[0, 1]``, a method keeps its colour across panels,
    and one legend for all panels stands beside the last one.
    """
    return _attack_panels(
        df,
        attacks,
        "robustness_curves",
        ylabel="robust accuracy",
        ylim=(0.0, 1.0),
        title=title or "Robust accuracy vs perturbation size",
    )


def margin_curves(
    df: pd.DataFrame, reference: str = "KD", attacks: Sequence[str] = ("fgsm", "pgd"), title: str | None = None
) -> Figure:
    """Each method's margin over ``reference`` vs epsilon, one panel per attack.

    ``df`` is tidy with columns ``method, seed, attack, epsilon, value``, the
    value being the margin in points per seed (paired by seed, e.g.
    :meth:`kdutils.notebook.NotebookContext.margins`): lines are the mean over
    seeds, bands +-1 std; a black line marks 0 (no difference).  The y axes
    are shared and every panel keeps its tick labels.
    """
    fig = _attack_panels(
        df,
        attacks,
        "margin_curves",
        ylabel=f"margin over {reference} (points)",
        ylim=None,
        title=title or f"Margin over {reference} (mean ± std over seeds)",
    )
    for ax in fig.axes:
        ax.axhline(0.0, color="k", lw=0.8, zorder=1)
    return fig


def _epsilon_ticks(ax: Axes, eps: pd.Series) -> None:
    """Epsilon ticks in their unit: ``k/255`` when every epsilon is a whole number of 1/255 steps
    (CIFAR's grid), the plain number otherwise; the x label says which."""
    e = np.unique(pd.to_numeric(eps, errors="coerce").dropna().to_numpy(dtype=float))
    k = e * 255
    if len(e) and e.max() <= 32 / 255 + 1e-9 and np.allclose(k, np.round(k), atol=1e-6):
        ax.xaxis.set_major_locator(mticker.FixedLocator(e))
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{round(v * 255):d}/255" if v else "0"))
        ax.set_xlabel("epsilon (L-inf, in 1/255 of the pixel range)")
    else:
        ax.set_xlabel("epsilon (L-inf, pixel range [0, 1])")


def _attack_panels(
    df: pd.DataFrame, attacks: Sequence[str], fn: str, *, ylabel: str, ylim: tuple[float, float] | None, title: str
) -> Figure:
    _require_columns(df, ["method", "attack", "epsilon", "value"], fn)
    present = [a for a in attacks if (df["attack"] == a).any()]
    if not present:
        raise ValueError(
            f"{fn}: none of the attacks {list(attacks)} is in the data (attacks found: {_levels(df['attack'])})"
        )
    methods = _levels(df["method"])
    fig, axes = plt.subplots(
        1,
        len(present),
        figsize=(4.6 * len(present), 3.8),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, attack in zip(axes[0], present):
        line_with_spread(
            df[df["attack"] == attack],
            x="epsilon",
            y="value",
            hue="method",
            xlabel="epsilon",
            ylabel=ylabel,
            title=attack.upper(),
            ax=ax,
            hue_order=methods,
            legend=False,
        )
        if ylim is not None:
            ax.set_ylim(*ylim)
        _epsilon_ticks(ax, df["epsilon"])
    for ax in axes[0, 1:]:
        ax.set_ylabel("")
        ax.tick_params(labelleft=True)
    _widen_for(fig, _legend_beside(axes[0, -1], title="method"))
    fig.suptitle(title)
    return fig


def bar_panels(
    df: pd.DataFrame,
    metrics: Sequence[str],
    x: str = "method",
    order: Sequence[Any] | None = None,
    titles: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """One :func:`bar_with_spread` panel per metric, side by side.

    ``df`` is tidy (``metric``, ``x``, ``value``; one row per seed), e.g. a
    slice of the results table; panel ``i`` shows ``metrics[i]`` (titled
    ``titles[i]`` or the metric's name).
    """
    _require_columns(df, ["metric", x, "value"], "bar_panels")
    metrics = list(metrics)
    if titles is not None and len(titles) != len(metrics):
        raise ValueError(f"bar_panels: {len(titles)} titles for {len(metrics)} metrics")
    missing = [m for m in metrics if not (df["metric"] == m).any()]
    if missing:
        raise ValueError(f"bar_panels: no values for metric(s) {missing}")
    n_x = len(order) if order is not None else df[x].nunique()
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(max(4.0, 0.9 * n_x + 1.5) * len(metrics), 3.9), squeeze=False, layout="constrained"
    )
    for i, (ax, metric) in enumerate(zip(axes[0], metrics)):
        bar_with_spread(
            df[df["metric"] == metric],
            x=x,
            y="value",
            order=order,
            ylabel=metric,
            title=titles[i] if titles is not None else metric,
            ax=ax,
        )
    if title:
        fig.suptitle(title)
    return fig


def usage_curves(df: pd.DataFrame, title: str | None = None, hue_order: Sequence[Any] | None = None) -> Figure:
    """Share of the training samples in the backward pass per epoch, one line per method.

    ``df`` is tidy with columns ``method, seed, epoch, value`` (value in [0, 1],
    e.g. :meth:`kdutils.notebook.NotebookContext.usage_frame`); the y axis is
    in percent from 0 to 100 %.
    """
    _require_columns(df, ["method", "epoch", "value"], "usage_curves")
    fig = line_with_spread(
        df,
        x="epoch",
        y="value",
        hue="method",
        xlabel="epoch",
        ylabel="samples in the backward pass",
        title=title or "Data usage per epoch",
        hue_order=hue_order,
    )
    ax = fig.axes[0]
    ax.set_ylim(-0.02, 1.05)
    ax.yaxis.set_major_formatter(mticker.PercentFormatter(1.0, decimals=0))
    return fig


def pruning_curve(df: pd.DataFrame, title: str | None = None, ylabel: str = "test accuracy") -> Figure:
    """Accuracy against the share of the training set dropped, one line per way of choosing.

    ``df`` is tidy with columns ``how, dropped, seed, value`` (``dropped`` in
    [0, 1), 0 for the run on the whole training set); x in percent.
    """
    _require_columns(df, ["how", "dropped", "value"], "pruning_curve")
    fig = line_with_spread(
        df,
        x="dropped",
        y="value",
        hue="how",
        xlabel="training data dropped",
        ylabel=ylabel,
        title=title or "Accuracy after pruning the training set",
    )
    ax = fig.axes[0]
    ax.xaxis.set_major_locator(mticker.FixedLocator(sorted(pd.unique(df["dropped"].astype(float)))))
    ax.xaxis.set_major_formatter(mticker.PercentFormatter(1.0, decimals=0))
    return fig


def accuracy_vs_usage(
    df: pd.DataFrame,
    x: str = "data_usage",
    y: str = "accuracy",
    hue: str = "method",
    order: Sequence[Any] | None = None,
    title: str | None = None,
) -> Figure:
    """One point per run: accuracy (a fraction, as in every figure) against the data it used (in % of KD's).

    ``df`` is wide, one row per method and seed, with columns ``hue``, ``x``
    (sample-epochs relative to KD) and ``y`` (e.g.
    :meth:`kdutils.notebook.NotebookContext.metric_frame`).  Up and to the
    left is better.  The legend stands beside the axes.
    """
    _require_columns(df, [hue, x, y], "accuracy_vs_usage")
    levels = list(order) if order is not None else _levels(df[hue])
    fig, ax = plt.subplots(figsize=(5.6, 3.9), layout="constrained")
    colors = palette(levels)
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for i, (level, color) in enumerate(zip(levels, colors)):
        p = df[df[hue] == level]
        if p.empty:
            continue
        ax.scatter(
            p[x].astype(float) * 100,
            p[y].astype(float),
            label=str(level),
            s=42,
            color=color,
            marker=markers[i % len(markers)],
            edgecolors="white",
            linewidths=0.5,
            zorder=3,
        )
    ax.set_xlabel("sample-epochs in the backward pass (% of KD)")
    ax.set_ylabel("test accuracy")  # a fraction, as in every figure of the suite
    ax.set_title(title or "Accuracy vs data used")
    _widen_for(fig, _legend_beside(ax, title=hue))
    return fig


def significance_histogram(significance: Any, epochs: int, title: str = "Significance") -> Figure:
    """Histogram of significance counts s_i (0..``epochs``), one bar per count.

    The title ends with the share of samples that never took part (s_i = 0).
    """
    s = _to_numpy(significance).reshape(-1).astype(np.int64)
    if s.size == 0:
        raise ValueError("significance_histogram: no significance values")
    if epochs < 1 or s.min() < 0 or s.max() > epochs:
        raise ValueError(f"significance_histogram: counts must lie in 0..epochs={epochs}, got {s.min()}..{s.max()}")
    counts = np.bincount(s, minlength=epochs + 1)
    fig, ax = plt.subplots(figsize=(6.0, 3.4), layout="constrained")
    ax.bar(np.arange(epochs + 1), counts, width=0.85, color=sns.color_palette()[0])
    ax.set_xlabel("significance s_i (epochs in the SR teacher's backward pass)")
    ax.set_ylabel("training samples")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    never = float((s == 0).mean())
    ax.set_title(f"{title} ({never:.1%} of samples never used)")
    return fig


def significant_images(
    x_uint8: Any,
    y: Any,
    significance: Any,
    classes: Sequence[str],
    which: str = "most",
    per_class: int = 8,
    title: str | None = None,
    seed: int | None = None,
    order: Any = None,
) -> Figure:
    """:func:`image_grid` of the ``per_class`` most (or least) significant images per class.

    ``significance`` may be any per-sample score (notebook 05 shows the lowest data-selection
    scores, the images a selection drops first). Ties: with ``seed``, in the order of a random
    permutation drawn with it, and the title says how many images the shown ones were drawn from
    ("8 of 4,932 tied"); ``order``, a permutation of the rows, breaks them in its order instead (the
    order a selection drops rows in, e.g. :func:`kdutils.data_selection.drop_order`); without either,
    dataset order (a stable sort). Either way the figure is the same on every run.
    """
    if which not in ("most", "least"):
        raise ValueError(f"significant_images: which must be 'most' or 'least', got {which!r}")
    x, labels = _to_numpy(x_uint8), _to_numpy(y).reshape(-1)
    s = _to_numpy(significance).reshape(-1).astype(np.float64)
    if not (len(s) == len(labels) == len(x)):
        raise ValueError(f"significant_images: {len(x)} images, {len(labels)} labels, {len(s)} significance values")
    picked, tied = [], []
    if order is not None:
        perm = _to_numpy(order).reshape(-1).astype(np.int64)
    else:
        perm = np.random.default_rng(seed).permutation(len(s)) if seed is not None else np.arange(len(s))
    for k in range(len(classes)):
        idx = perm[labels[perm] == k]
        order = np.argsort(-s[idx] if which == "most" else s[idx], kind="stable")
        chosen = idx[order[:per_class]]
        picked.append(chosen)
        if len(chosen) and len(chosen) < len(idx):
            edge = s[chosen[-1]]
            n_edge, shown = int((s[idx] == edge).sum()), int((s[chosen] == edge).sum())
            if n_edge > shown:  # the tie-break chose among these
                tied.append((shown, n_edge))
    rows = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    title = title or f"The {which} significant training images per class"
    if tied:
        shown, n_edge = max(tied, key=lambda t: t[1])
        how = (
            "as the selection breaks them"
            if order is not None
            else f"at random, seed {seed}"
            if seed is not None
            else "in dataset order"
        )
        title += (
            f"\n(ties {how}: {len(tied)} of {len(classes)} classes tied at the edge, up to {shown} of {n_edge:,} tied)"
        )
    return image_grid(x[rows], labels[rows], classes, per_class=per_class, title=title)


# ---------------------------------------------------------------------------
# teacher-student rankings and stronger teachers (notebook 02)
# ---------------------------------------------------------------------------


def rank_agreement_distributions(
    hists: Mapping[str, Mapping[str, Sequence[float]]], title: str | None = None
) -> Figure:
    """The per-sample Spearman correlation of student and teacher class rankings, one line per method.

    ``hists`` maps a method to a histogram ``{"edges": [B + 1 floats], "counts": [B ints]}``
    (:func:`kdutils.metrics.rank_histogram`, counts summed over seeds). Left: the share of test
    samples per bin (a step line); right: the cumulative share, P(rho <= x) (a curve further
    right and lower is a student whose rankings agree more with the teacher's). The x axis
    starts at the lowest non-empty bin of any method; a dotted line per method marks its
    median (read off the cumulative histogram). One legend beside the right panel.
    """
    if not hists:
        raise ValueError("rank_agreement_distributions: hists is empty")
    data = {}
    for label, h in hists.items():
        if "edges" not in h or "counts" not in h:
            raise ValueError(f"rank_agreement_distributions: entry {label!r} needs 'edges' and 'counts'")
        edges, counts = np.asarray(h["edges"], dtype=float), np.asarray(h["counts"], dtype=float)
        if len(edges) != len(counts) + 1 or counts.sum() <= 0:
            raise ValueError(
                f"rank_agreement_distributions: entry {label!r} has {len(edges)} edges for "
                f"{len(counts)} counts (total {counts.sum():g})"
            )
        data[label] = (edges, counts / counts.sum())
    low = min(e[np.flatnonzero(c > 0)[0]] for e, c in data.values())
    fig, (ax_h, ax_c) = plt.subplots(1, 2, figsize=(10.0, 3.8), layout="constrained")
    colors = palette(list(data))
    for (label, (edges, share)), color in zip(data.items(), colors):
        ax_h.stairs(share, edges, color=color, linewidth=1.6, label=str(label))
        cum = np.concatenate([[0.0], np.cumsum(share)])
        ax_c.plot(edges, cum, color=color, linewidth=1.6, label=str(label))
        median = float(np.interp(0.5, cum, edges))
        ax_c.axvline(median, color=color, linestyle=":", linewidth=1.0)
    for ax in (ax_h, ax_c):
        ax.set_xlim(max(-1.0, low - 0.05), 1.0)
        ax.set_xlabel("Spearman rho (student vs teacher ranks)")
    ax_h.set_ylabel("share of test samples")
    ax_h.set_title("distribution")
    ax_c.set_ylabel("cumulative share (rho <= x)")
    ax_c.set_ylim(0.0, 1.02)
    ax_c.set_title("cumulative (dotted: medians)")
    _widen_for(fig, _legend_beside(ax_c, title="method"))
    fig.suptitle(title or "Teacher-student rank agreement per test sample")
    return fig


def stronger_teacher_curves(
    df: pd.DataFrame,
    title: str | None = None,
    slopes: Mapping[str, str] | None = None,
    baseline: float | None = None,
    hue_order: Sequence[Any] | None = None,
) -> Figure:
    """Student accuracy against teacher accuracy, one line per method (mean +- std over seeds).

    ``df`` is tidy with columns ``method, teacher, teacher_accuracy, seed, value`` (one row
    per method, teacher and seed; the teacher's accuracy is one number per teacher). Each
    teacher's name is written under its x position at the top of the axes. ``slopes``
    (method -> text, e.g. ``"slope 0.31 [0.12, 0.50]"``) is appended to the legend labels;
    ``baseline`` (e.g. the student trained alone) draws a dashed horizontal line.
    """
    _require_columns(df, ["method", "teacher", "teacher_accuracy", "value"], "stronger_teacher_curves")
    levels = list(hue_order) if hue_order is not None else _levels(df["method"])
    named = df.assign(method=df["method"].map(lambda m: f"{m} ({slopes[m]})" if slopes and m in slopes else m))
    order = [f"{m} ({slopes[m]})" if slopes and m in slopes else m for m in levels]
    fig, ax = plt.subplots(figsize=(5.6, 4.0), layout="constrained")
    line_with_spread(
        named,
        x="teacher_accuracy",
        y="value",
        hue="method",
        hue_order=order,
        xlabel="teacher test accuracy",
        ylabel="student test accuracy",
        title=title or "Stronger teachers",
        ax=ax,
        legend=False,
    )
    if baseline is not None and math.isfinite(float(baseline)):
        ax.axhline(float(baseline), color="0.4", linestyle="--", linewidth=1.0, label="student alone")
    teachers = df.drop_duplicates("teacher")[["teacher", "teacher_accuracy"]].sort_values("teacher_accuracy")
    for i, (t, x) in enumerate(zip(teachers["teacher"], teachers["teacher_accuracy"].astype(float))):
        ax.axvline(x, color="0.85", linewidth=0.8, zorder=0)
        # names alternate between two heights, so teachers of nearly equal accuracy stay readable
        ax.annotate(
            str(t),
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 3 + 10 * (i % 2)),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize="x-small",
            color="0.3",
        )
    ax.set_title(ax.get_title(), pad=26)
    xs = teachers["teacher_accuracy"].astype(float)
    span = float(xs.max() - xs.min()) if len(xs) > 1 else 0.01
    ax.set_xlim(float(xs.min()) - 0.12 * span - 1e-3, float(xs.max()) + 0.12 * span + 1e-3)
    _widen_for(fig, _legend_beside(ax, title="method"))
    return fig


# ---------------------------------------------------------------------------
# faithfulness (notebook 04)
# ---------------------------------------------------------------------------


def _bare(ax: Axes) -> None:
    ax.grid(False)
    ax.xaxis.set_major_locator(MaxNLocator(3))  # readable ticks on a small panel
    ax.yaxis.set_major_locator(MaxNLocator(5))
    for spine in ax.spines.values():
        spine.set_visible(True)


def confidence_slices(sl: Mapping[str, Any], title: str | None = None) -> Figure:
    """Faithful KD's Fig. 1 for our models: confidence of the true class over a 2-D slice of B(x).

    ``sl`` is the dict of :func:`kdutils.faithfulness.confidence_slice`; its first model is the
    teacher. Top row, one heat map per model: ``p[c]`` on the slice (0 to 1, one colour bar),
    the clean image at the centre (a cross), and hatched where the model's top class differs from
    the teacher's at the same point (a local disagreement; the teacher's own panel hatches where
    it leaves class c). Bottom row: the image, then for each student the gap ``p_T[c] - p_S[c]``
    (blue: the student is under-confident, Fig. 1's x2; red: over-confident), one colour bar.
    Each title gives the value at the centre and the extreme over the slice.
    """
    for k in ("coords", "confidence", "prediction", "image", "eps", "label"):
        if k not in sl:
            raise ValueError(f"confidence_slices: the slice has no {k!r} (use kdutils.faithfulness.confidence_slice)")
    labels = list(sl["confidence"])
    if not labels:
        raise ValueError("confidence_slices: no models in the slice")
    eps, c = float(sl["eps"]), int(sl["label"])
    coords = np.asarray(sl["coords"], dtype=float) * eps
    extent = (coords[0], coords[-1], coords[0], coords[-1])
    mid = len(coords) // 2
    t = labels[0]
    n = len(labels)
    fig, axes = plt.subplots(2, n, figsize=(3.0 * n + 1.2, 6.0), squeeze=False, layout="constrained")
    first_dir = "gradient of the gap" if sl.get("directions") == "gradient" else "random sign"
    for j, label in enumerate(labels):
        ax = axes[0, j]
        conf = np.asarray(sl["confidence"][label], dtype=float)
        im = ax.imshow(conf, origin="lower", extent=extent, vmin=0.0, vmax=1.0, cmap="viridis", aspect="equal")
        ref = np.asarray(sl["prediction"][t]) if j else np.full_like(np.asarray(sl["prediction"][t]), c)
        differs = (np.asarray(sl["prediction"][label]) != ref).astype(float)
        if differs.any():
            ax.contourf(coords, coords, differs, levels=[0.5, 1.5], colors="none", hatches=["////"])
            ax.contour(coords, coords, differs, levels=[0.5], colors="white", linewidths=0.8)
        ax.plot(0, 0, marker="x", color="white", markersize=8, markeredgewidth=2)
        ax.set_title(f"{label}\np[{c}]: {conf[mid, mid]:.3f} at x, min {conf.min():.3f}", fontsize="small")
        ax.set_xlabel(f"a ({first_dir})")
        if j == 0:
            ax.set_ylabel("b (random sign)")
        _bare(ax)
    fig.colorbar(im, ax=list(axes[0]), shrink=0.85, label="confidence of the true class")
    img = np.asarray(sl["image"], dtype=float)
    axes[1, 0].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    axes[1, 0].set_title(f"x (class {c}), eps {eps:.4g}", fontsize="small")
    axes[1, 0].set_xticks([])
    axes[1, 0].set_yticks([])
    gap_im = None
    for j, label in enumerate(labels[1:], start=1):
        ax = axes[1, j]
        gap = np.asarray(sl["confidence"][t], dtype=float) - np.asarray(sl["confidence"][label], dtype=float)
        gap_im = ax.imshow(gap, origin="lower", extent=extent, vmin=-1.0, vmax=1.0, cmap="RdBu", aspect="equal")
        ax.plot(0, 0, marker="x", color="black", markersize=8, markeredgewidth=2)
        k = np.unravel_index(np.argmax(np.abs(gap)), gap.shape)
        ax.set_title(f"{t} - {label}\ngap {gap[mid, mid]:+.3f} at x, largest {gap[k]:+.3f}", fontsize="small")
        ax.set_xlabel(f"a ({first_dir})")
        _bare(ax)
    if gap_im is not None:
        fig.colorbar(gap_im, ax=list(axes[1]), shrink=0.85, label="p_T[c] - p_S[c]")
    fig.suptitle(title or f"Confidence over a 2-D slice of the eps-ball around one test image (eps {eps:.4g})")
    return fig


def gap_distributions(
    hists: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
    *,
    delta: float | None = None,
    title: str | None = None,
) -> Figure:
    """Per method, the distribution of the confidence gap max(Delta+, Delta-) over the evaluation points.

    ``hists`` maps a method to ``{"empirical": hist, "certified": hist}`` (either may be
    missing), each hist ``{"edges": [B + 1], "counts": [B]}`` over [0, 1]
    (:func:`kdutils.faithfulness.gap_histogram`, counts summed over seeds). One panel per
    method, the share of points per bin as step lines: the empirical gap (PGD, a lower bound
    of the true gap) and the certified one (IBP, an upper bound); ``delta`` draws a dotted line
    (points left of it are delta-faithful). Shares on a log axis, so the tails stay visible. A
    histogram with no points (none classified right by teacher and student) is named in its
    panel instead of drawn.
    """
    if not hists:
        raise ValueError("gap_distributions: hists is empty")
    kinds = {"empirical": ("empirical (PGD, lower bound)", "C0"), "certified": ("certified (IBP, upper bound)", "C3")}
    cols = min(MAX_PANELS_PER_ROW, len(hists))
    rows = math.ceil(len(hists) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.4 * cols, 3.3 * rows), sharey=True, squeeze=False, layout="constrained"
    )
    for ax in axes.ravel()[len(hists) :]:
        fig.delaxes(ax)
    for ax, (method, pair) in zip(axes.ravel(), hists.items()):
        unknown = set(pair) - set(kinds)
        if unknown or not pair:
            raise ValueError(
                f"gap_distributions: entry {method!r} needs 'empirical' and/or 'certified', got {sorted(pair)}"
            )
        empty = []
        for kind, h in pair.items():
            edges, counts = np.asarray(h["edges"], dtype=float), np.asarray(h["counts"], dtype=float)
            if len(edges) != len(counts) + 1 or (counts < 0).any():
                raise ValueError(
                    f"gap_distributions: {method!r} {kind}: {len(edges)} edges for {len(counts)} counts "
                    f"(total {counts.sum():g})"
                )
            if counts.sum() <= 0:  # no evaluation point (e.g. untrained networks in a dry run): said, not drawn
                empty.append(kind)
                continue
            name, color = kinds[kind]
            ax.stairs(
                np.maximum(counts / counts.sum(), 1e-4), edges, color=color, linewidth=1.6, label=name, baseline=1e-4
            )
        if empty:
            ax.text(
                0.5,
                0.5,
                "no evaluation points:\n" + ", ".join(empty),
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="0.4",
            )
        if delta is not None:
            ax.axvline(float(delta), color="0.3", linestyle=":", linewidth=1.0, label=f"delta = {float(delta):g}")
        ax.set_yscale("log")
        ax.set_ylim(1e-4 * 0.8, 1.2)
        ax.set_xlim(0.0, 1.0)
        ax.set_title(str(method))
        ax.set_xlabel("gap max(Delta+, Delta-)")
    for ax in axes[:, 0]:
        ax.set_ylabel("share of points (log)")
    _widen_for(fig, _legend_beside(axes[0, cols - 1], title="gap"))
    fig.suptitle(title or "Confidence gap per point: empirical vs certified")
    return fig


def faithful_share_curves(df: pd.DataFrame, title: str | None = None, hue_order: Sequence[Any] | None = None) -> Figure:
    """Share of delta-faithful points against delta, one panel per bound, one line per method.

    ``df`` is tidy with columns ``method, seed, bound, delta, value`` (``bound`` e.g.
    ``"empirical (PGD)"`` and ``"certified (IBP)"``, one row per method, seed, bound and delta).
    The empirical share is an upper estimate of the true share (PGD may miss the worst point),
    the certified share a lower bound; delta on a log axis, mean +- std over seeds.
    """
    _require_columns(df, ["method", "bound", "delta", "value"], "faithful_share_curves")
    bounds = _levels(df["bound"])
    methods = list(hue_order) if hue_order is not None else _levels(df["method"])
    fig, axes = plt.subplots(
        1, len(bounds), figsize=(4.6 * len(bounds), 3.8), sharey=True, squeeze=False, layout="constrained"
    )
    for ax, bound in zip(axes[0], bounds):
        line_with_spread(
            df[df["bound"] == bound],
            x="delta",
            y="value",
            hue="method",
            hue_order=methods,
            logx=True,
            xlabel="delta",
            ylabel="share of delta-faithful points",
            title=str(bound),
            ax=ax,
            legend=False,
        )
        ax.set_ylim(-0.02, 1.02)
    for ax in axes[0, 1:]:
        ax.set_ylabel("")
    _widen_for(fig, _legend_beside(axes[0, -1], title="method"))
    fig.suptitle(title or "Share of delta-faithful points")
    return fig


# ---------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------

_REL_KEYS = ("bin_lower", "bin_upper", "confidence", "accuracy")


def _reliability_panel(ax: Axes, label: str, r: Mapping[str, Any], legend: bool) -> None:
    missing = [k for k in _REL_KEYS if k not in r]
    if missing:
        raise ValueError(
            f"reliability_diagrams: entry {label!r} lacks key(s) {missing} "
            "(expected the dict of kdutils.metrics.reliability)"
        )
    arrs = {k: np.asarray(r[k], dtype=float) for k in _REL_KEYS}
    n = {len(v) for v in arrs.values()}
    if "count" in r:
        count = np.asarray(r["count"], dtype=float)
        n.add(len(count))
    else:
        count = np.ones_like(arrs["accuracy"])
    if len(n) != 1:
        raise ValueError(f"reliability_diagrams: entry {label!r} has lists of different lengths")
    lower, upper = arrs["bin_lower"], arrs["bin_upper"]
    conf, acc = arrs["confidence"], arrs["accuracy"]
    keep = (count > 0) & np.isfinite(conf) & np.isfinite(acc)
    width = (upper - lower)[keep]
    ax.bar(
        lower[keep],
        acc[keep],
        width=width,
        align="edge",
        color="tab:blue",
        edgecolor="white",
        linewidth=0.6,
        alpha=0.9,
        label="accuracy",
    )
    ax.bar(
        lower[keep],
        (conf - acc)[keep],
        bottom=acc[keep],
        width=width,
        align="edge",
        facecolor=(1.0, 0.0, 0.0, 0.25),
        edgecolor=(0.8, 0.0, 0.0, 0.8),
        hatch="//",
        linewidth=0.6,
        label="gap",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.3", linewidth=1, label="perfect calibration")
    if "count" in r:  # how many test images each bin holds: a near-empty bin's bar means little
        total = max(float(count.sum()), 1.0)
        for lo, w, a, c in zip(lower[keep], width, acc[keep], count[keep]):
            share = c / total
            text = f"{share:.0%}" if share >= 0.01 else "<1%"
            ax.text(
                lo + w / 2, min(a + 0.02, 0.97), text, ha="center", va="bottom", fontsize=5.5, color="0.25", rotation=90
            )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    title = str(label)
    ece = r.get("ece")
    if _finite(ece):
        title += f" (ECE = {float(ece):.3f})"
    ax.set_title(title)
    if legend:
        ax.legend(loc="upper left", fontsize="small")


def reliability_diagrams(rel: Mapping[str, Mapping[str, Any]], ncols: int = 4) -> Figure:
    """One reliability diagram per label, ``ncols`` panels a row.

    Each value is a dict as returned by :func:`kdutils.metrics.reliability`
    (``bin_lower``, ``bin_upper``, ``confidence``, ``accuracy``, ``count``;
    ``nan`` for empty bins), optionally with an ``"ece"`` float shown in the
    panel title.  Bars show the accuracy per bin (drawn from the bin's lower
    edge with the bin's width), the red hatched overlay the gap to the mean
    confidence, the dashed diagonal perfect calibration; empty bins are
    skipped.
    """
    if not rel:
        raise ValueError("reliability_diagrams: rel is empty")
    if ncols < 1:
        raise ValueError(f"reliability_diagrams: ncols must be >= 1, got {ncols}")
    n = len(rel)
    cols = min(ncols, n, MAX_PANELS_PER_ROW)
    rows = math.ceil(n / cols)
    # "compressed": the constrained layout for square (aspect-equal) panels; the plain one left the
    # figure's title on the first row's panel titles (tests/report/test_plots.py)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.5 * rows), squeeze=False, layout="compressed")
    flat = axes.ravel()
    for i, (label, r) in enumerate(rel.items()):
        _reliability_panel(flat[i], label, r, legend=(i == 0))
    for ax in flat[n:]:
        fig.delaxes(ax)
    fig.suptitle("Reliability diagrams")
    return fig


# ---------------------------------------------------------------------------
# label revision and data selection (notebook 05)
# ---------------------------------------------------------------------------


def revised_targets(
    p_teacher: Any,
    p_revised: Any,
    y: Any,
    classes: Sequence[str],
    images: Any = None,
    ncols: int = 3,
    title: str | None = None,
) -> Figure:
    """Label revision, sample by sample: the teacher's distribution p_T and the revised target p~.

    ``p_teacher`` and ``p_revised`` are ``(N, C)`` probabilities (rows of
    :func:`kdutils.methods.label_revision.revised_target` and the softmax it revised), ``y`` the ``N`` labels
    indexing ``classes``. One panel per sample, ``ncols`` a row: the two distributions as
    side-by-side bars per class, the label's tick in bold, the title naming the label and the
    teacher's top class. ``images`` (uint8, ``(N, C, H, W)`` with C in {1, 3}): each sample's
    image beside its panel.
    """
    pt, pr, labels = _to_numpy(p_teacher).astype(float), _to_numpy(p_revised).astype(float), _to_numpy(y).reshape(-1)
    if pt.ndim != 2 or pt.shape != pr.shape or pt.shape[0] != len(labels) or pt.shape[1] != len(classes):
        raise ValueError(
            f"revised_targets: p_teacher {pt.shape}, p_revised {pr.shape}, {len(labels)} labels and "
            f"{len(classes)} classes do not match (N, C)"
        )
    if len(labels) == 0:
        raise ValueError("revised_targets: no samples")
    if ncols < 1:
        raise ValueError(f"revised_targets: ncols must be >= 1, got {ncols}")
    imgs = None if images is None else _to_numpy(images)
    if imgs is not None and (imgs.ndim != 4 or imgs.shape[0] != len(labels) or imgs.shape[1] not in (1, 3)):
        raise ValueError(f"revised_targets: images must have shape (N, C, H, W) with N = {len(labels)}, C in {{1, 3}}")
    n, c = len(labels), len(classes)
    cols, rows = min(ncols, n), math.ceil(n / min(ncols, n))
    panel_w = max(3.2, 0.32 * c + 0.8)
    img_w = 0.9 if imgs is not None else 0.0
    fig = plt.figure(figsize=(cols * (panel_w + img_w), rows * 2.6 + 0.5), layout="constrained")
    ratios = [img_w, panel_w] * cols if imgs is not None else [panel_w] * cols
    grid = fig.add_gridspec(rows, len(ratios), width_ratios=ratios)
    colors = sns.color_palette(n_colors=2)
    xs, width = np.arange(c), 0.4
    for i in range(n):
        r, k = divmod(i, cols)
        col = 2 * k + 1 if imgs is not None else k
        ax = fig.add_subplot(grid[r, col])
        ax.bar(xs - width / 2, pt[i], width, color=colors[0], label="teacher p_T")
        ax.bar(xs + width / 2, pr[i], width, color=colors[1], label="revised p~")
        ax.set_xticks(xs, [str(name) for name in classes], rotation=45, ha="right", fontsize="x-small")
        ax.get_xticklabels()[int(labels[i])].set_fontweight("bold")
        ax.set_ylim(0.0, 1.0)
        ax.set_title(f"label {classes[int(labels[i])]}, teacher {classes[int(pt[i].argmax())]}", fontsize="small")
        if k == 0:
            ax.set_ylabel("probability")
        if i == 0:
            ax.legend(fontsize="x-small", loc="upper right")
        if imgs is not None:
            iax = fig.add_subplot(grid[r, col - 1])
            img = imgs[i]
            if img.shape[0] == 1:
                iax.imshow(img[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:
                iax.imshow(np.transpose(img, (1, 2, 0)), interpolation="nearest")
            iax.set_xticks([])
            iax.set_yticks([])
            iax.grid(False)
    if title:
        fig.suptitle(title)
    return fig


def keep_ratio_curves(
    df: pd.DataFrame,
    title: str | None = None,
    ylabel: str = "test accuracy",
    reference: Mapping[str, float] | None = None,
) -> Figure:
    """Accuracy against the data-selection keep ratio, one line per scorer (mean +- std over seeds).

    ``df`` is tidy with columns ``scorer, keep, seed, value`` (``keep`` in (0, 1], the share of
    training rows supervised by the teacher; 1 for the run without selection); x in percent.
    ``reference`` (name -> value, e.g. ``{"KD": 0.85}``) draws a dotted horizontal line each.
    """
    _require_columns(df, ["scorer", "keep", "value"], "keep_ratio_curves")
    fig = line_with_spread(
        df,
        x="keep",
        y="value",
        hue="scorer",
        xlabel="training rows supervised by the teacher",
        ylabel=ylabel,
        title=title or "Accuracy against the keep ratio",
    )
    ax = fig.axes[0]
    for (name, v), color in zip(
        (reference or {}).items(), sns.color_palette("Greys_r", n_colors=len(reference or {}) + 2)
    ):
        if math.isfinite(float(v)):
            ax.axhline(float(v), color=color, linestyle=":", linewidth=1.2)
            ax.annotate(
                str(name),
                (0.0, float(v)),
                xycoords=("axes fraction", "data"),
                xytext=(3, 2),
                textcoords="offset points",
                fontsize="x-small",
                color=color,
            )
    ax.xaxis.set_major_locator(mticker.FixedLocator(sorted(pd.unique(df["keep"].astype(float)))))
    ax.xaxis.set_major_formatter(mticker.PercentFormatter(1.0, decimals=0))
    return fig


def pareto_front(x: Sequence[float], y: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower ``x``, higher ``y``: cost and
    accuracy), ordered by ``x``. A point with a NaN coordinate is never on the front."""
    pts = [(float(a), float(b), i) for i, (a, b) in enumerate(zip(x, y)) if np.isfinite(a) and np.isfinite(b)]
    front, best = [], -np.inf
    for a, b, i in sorted(pts, key=lambda p: (p[0], -p[1])):
        if b > best:
            front.append(i)
            best = b
    return front


def method_scatter(
    x: pd.Series,
    y: pd.Series,
    *,
    xlabel: str,
    ylabel: str,
    pareto: bool = False,
    logx: bool = False,
    title: str | None = None,
) -> Figure:
    """One point per method (``x`` and ``y`` indexed by method label, e.g. means over seeds), each in
    its colour (:func:`color_of`) and named in the legend beside the axes (two columns past 14
    methods, the figure as tall as the legend needs); ``pareto``: the front of :func:`pareto_front`
    (lower x, higher y) joined by a line and its points ringed; ``logx``: a log x axis (costs that
    span orders of magnitude)."""
    labels = list(x.index)
    ncol = 1 if len(labels) <= 14 else 2
    height = max(4.2, 0.27 * math.ceil((len(labels) + pareto) / ncol) + 1.0)
    fig, ax = plt.subplots(figsize=(6.2, height), layout="constrained")
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for i, label in enumerate(labels):
        ax.scatter(
            float(x[label]),
            float(y[label]),
            s=46,
            color=color_of(label),
            marker=markers[i % len(markers)],
            edgecolors="white",
            linewidths=0.5,
            zorder=3,
            label=str(label),
        )
    if pareto:
        front = pareto_front(x.values, y.values)
        if front:
            ax.plot(x.values[front], y.values[front], color="0.3", lw=1, ls="--", zorder=2, label="Pareto front")
            ax.scatter(x.values[front], y.values[front], s=130, facecolors="none", edgecolors="0.3", zorder=2)
    if logx:  # ticks at 1, 2 and 5 times a power of ten, written plainly; no labels on the minor ticks
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{ylabel} vs {xlabel}")
    _widen_for(fig, _legend_beside(ax, title="method", ncol=ncol))
    return fig

"""The results contract and the claims table.

Every notebook collects its numbers in a :class:`Results` table and writes it as
``results.csv`` (columns :data:`COLUMNS`, one row per notebook x dataset x method x
seed x metric) next to its executed copy. Tests, the batch summary and users' own
plots read that one file.

A claim's verdict is computed from measured numbers by the claim functions below,
never typed. The rule, shared by every notebook (the team's ``docs/papers/README.md``,
"How every claims table decides"):

* Each claim names **one comparison in advance**; comparisons are **paired by seed**.
* The measured quantity (a paired difference ``a_i - b_i`` or a mean over seeds) gets a
  **two-sided t interval** at ``level`` (:data:`DEFAULT_LEVEL` = 90 %). The claim
  *holds* when the whole interval lies on the claimed side of its threshold, *does not
  hold* when the whole interval lies on the other side, and is *inconclusive* when the
  interval straddles the threshold. Each of these one-sided decisions is a one-sided
  test at ``(1 + level) / 2`` = 95 % (error rate ``(1 - level) / 2`` = 5 %).
* With fewer than two seeds there is no spread to judge by: *not testable*.
* Why 90 % and not 95 %: with 3 seeds (2 degrees of freedom) a two-sided 95 % interval
  needs t = 4.30 standard errors, a 90 % one t = 2.92; at 90 % each one-sided verdict
  is still a test at the usual 5 % level.
* Exploration over many comparisons (variants x attacks x epsilons) goes through
  :func:`best_of_many`, which adds Holm-corrected p-values: the best of a family never
  decides a verdict alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

COLUMNS = ["notebook", "profile", "dataset", "method", "seed", "metric", "value"]

HOLDS, FAILS, INCONCLUSIVE, NOT_TESTABLE = "holds", "does not hold", "inconclusive", "not testable at this profile"

#: two-sided level of every interval; each one-sided decision is at (1 + level) / 2 = 95 %
DEFAULT_LEVEL = 0.90


class Results:
    """Tidy rows of (notebook, profile, dataset, method, seed, metric, value, run), and each run's
    per-image test predictions (:mod:`kdutils.report.evidence`) beside them."""

    def __init__(self, notebook: str, profile: str):
        self.notebook, self.profile = notebook, profile
        self._rows: list[dict] = []
        #: (dataset, method, seed) -> (run key, encoded predictions)
        self.predictions: dict[tuple[str, str, int], tuple[str, str]] = {}
        #: (dataset, method, seed, metric) -> (run key, encoded 0/1 per image): the per-image record
        #: behind a metric other than accuracy that a claim compared (robust accuracy)
        self.images: dict[tuple[str, str, int, str], tuple[str, str]] = {}

    def add(
        self,
        dataset: str,
        method: str,
        seed: int | None,
        metrics: dict[str, float],
        *,
        run: str = "",
        predictions: str | None = None,
    ) -> None:
        """One row per metric; ``run`` the run's key (blank for derived rows); ``predictions`` the
        run's encoded test predictions (:func:`kdutils.report.evidence.encode_predictions`)."""
        seed = -1 if seed is None else int(seed)
        for k, v in metrics.items():
            self._rows.append(
                {
                    "notebook": self.notebook,
                    "profile": self.profile,
                    "dataset": dataset,
                    "method": method,
                    "seed": seed,
                    "metric": k,
                    "value": float(v),
                    "run": run,
                }
            )
        if predictions is not None:
            self.predictions[dataset, method, seed] = (run, predictions)

    def add_images(self, dataset: str, method: str, seed: int, metric: str, correct: str, *, run: str = "") -> None:
        """The per-image record (encoded 0/1 per image, :func:`kdutils.io.encode_predictions`) behind
        ``metric`` of one run, published as ``<dataset>.images.csv`` so a reader can recompute the
        claim's paired interval (:func:`kdutils.report.published.recheck`)."""
        self.images[dataset, method, int(seed), metric] = (run, correct)

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows, columns=[*COLUMNS, "run"])

    def images_frame(self, dataset: str | None = None) -> pd.DataFrame:
        """dataset, method, seed, run, metric, correct: one row per recorded per-image metric."""
        rows = [
            {"dataset": d, "method": m, "seed": s, "run": run, "metric": k, "correct": text}
            for (d, m, s, k), (run, text) in self.images.items()
            if dataset is None or d == dataset
        ]
        return pd.DataFrame(rows, columns=IMAGE_COLUMNS)

    def predictions_frame(self, dataset: str | None = None) -> pd.DataFrame:
        """dataset, method, seed, run, test_predictions: one row per run that has them."""
        rows = [
            {"dataset": d, "method": m, "seed": s, "run": run, "test_predictions": text}
            for (d, m, s), (run, text) in self.predictions.items()
            if dataset is None or d == dataset
        ]
        return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)

    def save(self, folder: str | Path) -> Path:
        """``results.csv`` (and ``predictions.csv`` when there are any) in ``folder``."""
        from ..core.io import atomic_write_bytes

        path = Path(folder) / "results.csv"
        atomic_write_bytes(self.frame.to_csv(index=False, float_format="%.6g").encode(), path)
        if self.predictions:
            atomic_write_bytes(self.predictions_frame().to_csv(index=False).encode(), Path(folder) / "predictions.csv")
        if self.images:
            atomic_write_bytes(self.images_frame().to_csv(index=False).encode(), Path(folder) / "images.csv")
        return path

    def publish(self, folder: str | Path, provenance: Mapping, claims: pd.DataFrame | None = None) -> list[Path]:
        """The committed form, one set of files per dataset in ``folder`` (``results/<notebook>/<profile>``):
        ``<dataset>.csv`` (the rows), ``<dataset>.predictions.csv`` (per-image test predictions of
        every run), ``<dataset>.images.csv`` (the per-image records behind the other compared metrics,
        :meth:`add_images`, when there are any), ``<dataset>.claims.csv`` (the claims table's rows of that dataset, when given)
        and ``<dataset>.provenance.json``; any of them gzipped (``.gz``) when over 1 MB."""
        from ..core.io import atomic_write_bytes, atomic_write_json
        from ..inputs.data import dataset_stem

        folder, out = Path(folder), []
        frame = self.frame
        for ds in dict.fromkeys(frame["dataset"]):
            stem = dataset_stem(ds)
            tables = {"csv": frame[frame.dataset == ds].to_csv(index=False, float_format="%.6g")}
            preds = self.predictions_frame(ds)
            if len(preds):
                tables["predictions.csv"] = preds.to_csv(index=False)
            images = self.images_frame(ds)
            if len(images):
                tables["images.csv"] = images.to_csv(index=False)
            if claims is not None and "dataset_key" in claims:
                tables["claims.csv"] = claims[claims.dataset_key == ds].drop(columns="dataset_key").to_csv(index=False)
            for ext, text in tables.items():
                out.append(_write_maybe_gzipped(folder / f"{stem}.{ext}", text.encode(), atomic_write_bytes))
            prov = {**provenance, "dataset": ds, "methods": sorted(set(frame[frame.dataset == ds].method))}
            atomic_write_json(prov, folder / f"{stem}.provenance.json")
            out.append(folder / f"{stem}.provenance.json")
        return out

    def __len__(self) -> int:
        return len(self._rows)


PREDICTION_COLUMNS = ["dataset", "method", "seed", "run", "test_predictions"]
IMAGE_COLUMNS = ["dataset", "method", "seed", "run", "metric", "correct"]
#: committed files over this size are gzipped
GZIP_OVER = 1_000_000


def _write_maybe_gzipped(path: Path, data: bytes, write) -> Path:
    """Write ``data`` at ``path``, or gzipped at ``path.gz`` when over :data:`GZIP_OVER` bytes
    (the other form removed, so one of the two is there)."""
    import gzip

    plain, packed = path, path.with_name(path.name + ".gz")
    if len(data) > GZIP_OVER:
        write(gzip.compress(data, mtime=0), packed)
        plain.unlink(missing_ok=True)
        return packed
    write(data, plain)
    packed.unlink(missing_ok=True)
    return plain


def read_results(path: str | Path) -> pd.DataFrame:
    """A results table (``results.csv`` or a committed ``<dataset>.csv[.gz]``); its ``run`` column
    is optional (blank where a row is not one run's, and missing in tables written before it)."""
    df = pd.read_csv(path, keep_default_na=False, na_values={"value": ["", "nan", "NaN"]})
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a results table: missing columns {missing}")
    if "run" not in df.columns:
        df["run"] = ""
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df


# --------------------------------------------------------------------------- tables


def summarize(df: pd.DataFrame, metrics: Iterable[str] | None = None, by=("dataset", "method")) -> pd.DataFrame:
    """Mean, std (ddof 1; 0 with a single seed) and number of seeds per (``by``..., metric)."""
    d = df if metrics is None else df[df["metric"].isin(list(metrics))]
    g = d.groupby([*by, "metric"], sort=False)["value"]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def format_values(values, *, scale: float = 100.0, digits: int = 2) -> str:
    """``format_mean_std`` of per-seed values (mean and sample std, ddof 1): ``"83.57 ± 0.75"``."""
    v = np.asarray(list(values), float)
    return format_mean_std(v.mean(), v.std(ddof=1) if len(v) > 1 else float("nan"), scale=scale, digits=digits)


def format_mean_std(mean: float, std: float, *, scale: float = 100.0, digits: int = 2, n: int | None = None) -> str:
    """``"83.57 ± 0.75"``: mean and standard deviation, both multiplied by ``scale``.

    A missing (NaN) standard deviation gives the mean alone; one seed (``n=1``) says so instead of
    a spread of 0 (``"83.57 (n = 1)"``); a missing mean is a blank cell, never ``nan``.
    """
    if mean is None or not math.isfinite(float(mean)):
        return ""
    m = f"{float(mean) * scale:.{digits}f}"
    if n == 1:
        return f"{m} (n = 1)"
    if std is None or not math.isfinite(float(std)):
        return m
    return f"{m} ± {float(std) * scale:.{digits}f}"


def mean_std_table(
    df: pd.DataFrame, metric: str, order: list[str] | None = None, scale: float = 100.0, digits: int = 2
) -> pd.DataFrame:
    """A readable table ``method x dataset`` of "mean ± std" for one metric.

    With ``order``, only the methods listed appear, in that order.
    """
    s = summarize(df, [metric])
    s["cell"] = [
        format_mean_std(m, sd, scale=scale, digits=digits, n=n) for m, sd, n in zip(s["mean"], s["std"], s["n"])
    ]
    t = s.pivot(index="method", columns="dataset", values="cell")
    if order:
        t = t.reindex([m for m in order if m in t.index])
    return t


def mean_std_cells(
    df: pd.DataFrame,
    metrics: Sequence[str],
    *,
    index=("dataset", "method"),
    scale: float = 1.0,
    digits: int = 3,
    order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """A table of "mean ± std" cells (see :func:`format_mean_std`): rows ``index``, columns ``metrics``.

    Columns come in the order of ``metrics`` (those measured). Rows keep the order in which
    their keys first appear in ``df``; with ``order`` (a list of methods, needs a ``method``
    level in ``index``) only the methods listed appear, in that order within each group of
    the other index levels.
    """
    index = list(index)
    metrics = list(metrics)
    s = summarize(df, metrics, by=index)
    s["cell"] = [
        format_mean_std(m, sd, scale=scale, digits=digits, n=n) for m, sd, n in zip(s["mean"], s["std"], s["n"])
    ]
    t = s.pivot(index=index if len(index) > 1 else index[0], columns="metric", values="cell")
    t = t[[m for m in metrics if m in t.columns]]
    t.columns.name = None
    keys = list(dict.fromkeys(s[index].itertuples(index=False, name=None)))  # first appearance
    if order is not None:
        if "method" not in index:
            raise ValueError(f"order needs a 'method' level in index, got {index}")
        pos = index.index("method")
        rank = {m: i for i, m in enumerate(order)}
        first = {}
        for k in keys:
            first.setdefault(k[:pos] + k[pos + 1 :], len(first))
        keys = sorted((k for k in keys if k[pos] in rank), key=lambda k: (first[k[:pos] + k[pos + 1 :]], rank[k[pos]]))
    if len(index) == 1:
        return t.reindex([k[0] for k in keys])
    return t.reindex(pd.MultiIndex.from_tuples(keys, names=index))


# --------------------------------------------------------------------------- intervals


def _values(x) -> np.ndarray:
    return np.asarray(x if hasattr(x, "__len__") else list(x), dtype=float).ravel()


def _pct(level: float) -> str:
    return f"{level * 100:g} %"


def _num(v: float) -> str:
    v = float(v) + 0.0  # no "-0.00"
    return f"{v:.2f}" if round(v, 2) == v or abs(v) >= 1 else f"{v:.4g}"


@dataclass(frozen=True)
class Interval:
    """A two-sided t interval: ``estimate`` (a mean), ``[low, high]`` at ``level``, over ``n`` values."""

    estimate: float
    low: float
    high: float
    level: float
    n: int


def _t_interval(x: np.ndarray, level: float) -> Interval:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, level, 0)
    est = float(x.mean())
    if n < 2:
        return Interval(est, math.nan, math.nan, level, n)
    half = float(stats.t.ppf((1.0 + level) / 2.0, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(est, est - half, est + half, level, n)


def mean_interval(values: Iterable[float], *, level: float = DEFAULT_LEVEL) -> Interval:
    """One-sample t interval of the mean of ``values`` (e.g. one value per seed).

    ``mean ± t_{(1+level)/2, n-1} * sd / sqrt(n)`` with ``sd`` the sample standard deviation
    (ddof 1): two-sided at ``level``, so each end is a one-sided bound at ``(1 + level) / 2``.
    With fewer than two values the bounds are NaN (no spread to judge by). Default 90 %:
    with 3 seeds a 95 % interval needs t = 4.30, a 90 % one t = 2.92.
    """
    return _t_interval(_values(values), level)


def paired_interval(a: Iterable[float], b: Iterable[float], *, level: float = DEFAULT_LEVEL) -> Interval:
    """Paired t interval of ``mean(a_i - b_i)``, ``a`` and ``b`` paired by position (by seed).

    The one-sample t interval (:func:`mean_interval`) of the per-seed differences: two-sided
    at ``level``, each end a one-sided bound at ``(1 + level) / 2``. With fewer than two pairs
    the bounds are NaN. ``a`` and ``b`` must have the same length (ValueError otherwise).
    Default 90 %: with 3 seeds a 95 % interval needs t = 4.30, a 90 % one t = 2.92.
    """
    a, b = _values(a), _values(b)
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs one value per seed on both sides: got {len(a)} and {len(b)} values")
    return _t_interval(a - b, level)


def curve_slopes(x: Sequence[float], y: Sequence[Sequence[float]]) -> np.ndarray:
    """Least-squares slope of ``y`` on ``x``, one per seed: ``(n_seeds,)``.

    ``x`` holds one value per point of a curve (e.g. each teacher's accuracy), or one list per
    point with a value per seed (each seed's own teacher, trained with that seed: the slope then
    carries the teachers' variance too); ``y[k]`` the values at point ``k``, one per seed, in the
    same seed order at every point (e.g. the student's accuracy per seed with teacher ``k``). Per
    seed ``s`` (with ``x_ks`` where x is per seed)::

        slope_s = sum_k (x_k - mean x) (y_ks - mean_k y_ks) / sum_k (x_k - mean x)^2

    Needs at least two distinct ``x`` values and the same number of seeds at every point
    (ValueError otherwise). The slopes are paired by seed with another method's, so two
    curves compare with :func:`paired_interval`.
    """
    ys = [_values(v) for v in y]
    if len(set(len(v) for v in ys)) != 1 or not len(ys) or not len(ys[0]):
        raise ValueError(f"curve_slopes: every point needs the same seeds, got {[len(v) for v in ys]} values")
    m = np.stack(ys)  # (points, seeds)
    if len(x) and np.ndim(x[0]) == 1:  # x per seed: each seed's slope on its own x (e.g. its own teachers)
        xm = np.stack([_values(v) for v in x])
        if xm.shape != m.shape:
            raise ValueError(f"curve_slopes: x per seed has shape {xm.shape}, y {m.shape}")
    else:
        xs = _values(x)
        if len(xs) != len(ys):
            raise ValueError(f"curve_slopes: {len(xs)} x values for {len(ys)} points")
        xm = np.repeat(xs[:, None], m.shape[1], axis=1)
    dx = xm - xm.mean(axis=0, keepdims=True)
    sxx = (dx * dx).sum(axis=0)
    if len(ys) < 2 or (sxx == 0.0).any():
        raise ValueError(f"curve_slopes: needs at least two distinct x values, got {xm[:, 0].tolist()}")
    return (dx * (m - m.mean(axis=0, keepdims=True))).sum(axis=0) / sxx


def slope_table(
    curves: Mapping[str, tuple[Sequence[float], Sequence[Sequence[float]]]], *, level: float = DEFAULT_LEVEL
) -> pd.DataFrame:
    """One row per curve ``name: (x, y)`` (as :func:`curve_slopes`): ``slope`` (mean over seeds),
    ``low`` and ``high`` (its t interval, two-sided at ``level``; NaN with one seed), ``n`` seeds."""
    rows = []
    for name, (x, y) in curves.items():
        iv = mean_interval(curve_slopes(x, y), level=level)
        rows.append({"curve": name, "slope": iv.estimate, "low": iv.low, "high": iv.high, "n": iv.n})
    return pd.DataFrame(rows, columns=["curve", "slope", "low", "high", "n"])


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict and the interval it came from.

    ``estimate``, ``low``, ``high`` are in the claim's raw units (fractions for accuracy);
    ``threshold`` is what the interval is compared with; ``rule`` says how, in one sentence.
    The last four fields only shape the text: ``scale`` and ``unit`` (the default of
    :meth:`describe`), ``side`` ("above": the claim is that the quantity exceeds the
    threshold; "below": that it stays under it), ``signed`` (differences print with a sign).
    """

    verdict: str
    estimate: float
    low: float
    high: float
    level: float
    n: int
    threshold: float
    rule: str
    scale: float = 100.0
    unit: str = " points"
    side: str = "above"
    signed: bool = True
    #: the seed-only paired t interval, when the deciding one also covers the test-set noise
    #: (:mod:`kdutils.report.evidence`); None when the deciding interval is the seed-only one
    seed_only: Interval | None = None

    @property
    def holds(self) -> bool:
        return self.verdict == HOLDS

    @property
    def margin(self) -> float:
        """How far the interval's conservative end clears the threshold (negative: it does not); NaN if untested."""
        return self.low - self.threshold if self.side == "above" else self.threshold - self.high

    def describe(self, scale: float | None = None, unit: str | None = None, digits: int = 2) -> str:
        """``"+0.41 points, 90 % CI [-0.20, +1.02], n = 3"`` (the claim's own scale and unit by default)."""
        scale = self.scale if scale is None else scale
        unit = self.unit if unit is None else unit
        f = f"{{:+.{digits}f}}" if self.signed else f"{{:.{digits}f}}"
        if self.n == 0 or not math.isfinite(self.estimate):
            return f"no measurement (n = {self.n})"
        est = f.format(self.estimate * scale + 0.0) + unit
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{est}, no interval with n = {self.n}"
        lo, hi = f.format(self.low * scale + 0.0), f.format(self.high * scale + 0.0)
        return f"{est}, {_pct(self.level)} CI [{lo}, {hi}], n = {self.n}"

    def describe_seed_only(self, digits: int = 2) -> str:
        """The seed-only interval as ``"[-0.20, +1.02]"`` (blank when the verdict has none beside it)."""
        iv = self.seed_only
        if iv is None or not (math.isfinite(iv.low) and math.isfinite(iv.high)):
            return ""
        f = f"{{:+.{digits}f}}" if self.signed else f"{{:.{digits}f}}"
        return f"[{f.format(iv.low * self.scale + 0.0)}, {f.format(iv.high * self.scale + 0.0)}]"

    def __str__(self) -> str:
        return f"{self.verdict}: {self.describe()} ({self.rule})"


def _decide(iv: Interval, threshold: float, side: str) -> str:
    if iv.n < 2 or not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return NOT_TESTABLE
    # an interval that is the threshold itself (every seed exactly at it, no spread: a rate of 0 on
    # every seed against "above 0", two students equal on every seed) is not on the claimed side
    at = iv.low == iv.high == threshold
    if side == "above":
        return HOLDS if iv.low > threshold else FAILS if iv.high < threshold or at else INCONCLUSIVE
    return HOLDS if iv.high < threshold else FAILS if iv.low > threshold or at else INCONCLUSIVE


def _diffs(correct_a, correct_b) -> np.ndarray:
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired per-image results need the same (seeds, images) shape, got {a.shape} and {b.shape}")
    return a - b


def _welch_df(v_seed: float, v_img: float, S: int, N: int) -> float:
    """Welch-Satterthwaite degrees of freedom of ``v_seed + v_img`` (seeds: S - 1, images: N - 1)."""
    v = v_seed + v_img
    return v * v / ((v_seed * v_seed) / (S - 1) + ((v_img * v_img) / (N - 1) if N > 1 else 0.0))


def _half_width(v: float, df: float, v_seed: float, S: int, level: float) -> float:
    """Half-width of a two-noise interval, never narrower than the seed-only t interval: more degrees
    of freedom must not buy a shorter one."""
    q = (1.0 + level) / 2.0
    return max(float(stats.t.ppf(q, df) * math.sqrt(v)), float(stats.t.ppf(q, S - 1) * math.sqrt(v_seed)))


def _two_noise_parts(D: np.ndarray) -> tuple[float, float, float, float, int]:
    """``(estimate, variance, Welch df, seed-only variance, seeds)`` of the mean per-seed difference
    of a ``(seeds, images)`` array of paired per-image differences (module docstring)."""
    S, N = D.shape
    d = D.mean(axis=1)
    est = float(d.mean()) if S else math.nan
    if S < 2:
        return est, math.nan, math.nan, math.nan, S
    v_seed = float(d.var(ddof=1) / S)
    v_test = float(D.mean(axis=0).var(ddof=1) / N) if N > 1 else 0.0
    v = v_seed + v_test
    if v == 0.0:
        return est, 0.0, math.inf, 0.0, S
    return est, v, _welch_df(v_seed, v_test, S, N), v_seed, S


def two_noise_interval(correct_a, correct_b, *, level: float = DEFAULT_LEVEL) -> Interval:
    """Interval of ``mean_s(acc_a,s - acc_b,s)`` covering seeds and test images (module docstring).

    ``correct_a``, ``correct_b``: ``(seeds, images)`` 0/1 arrays on the same images in the same
    seed order. Fewer than two seeds: NaN bounds."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    est, v, df, v_seed, S = _two_noise_parts(_diffs(correct_a, correct_b))
    if S < 2:
        return Interval(est, math.nan, math.nan, level, S)
    if v == 0.0:
        return Interval(est, est, est, level, S)
    half = _half_width(v, df, v_seed, S, level)
    return Interval(est, est - half, est + half, level, S)


def _never_below_seed_only(raw: float, d: np.ndarray, by: float, below: bool) -> float:
    """The one-sided p of a wider interval's variance (``raw``: for ``diff > by``), never smaller than the
    seed-only paired t's on the same side: ``below`` tests ``diff < by`` (what *does not hold* rests on)."""
    seed = _one_sided_p(d, by)
    if below:
        raw, seed = 1.0 - raw, (1.0 - seed if math.isfinite(seed) else seed)
    return max(raw, seed) if math.isfinite(seed) else raw


def two_noise_p(correct_a, correct_b, *, by: float = 0.0, below: bool = False) -> float:
    """One-sided p-value for ``mean difference > by`` (``below``: ``< by``) with the variance of
    :func:`two_noise_interval` (seeds and test images), never smaller than the seed-only paired t's on
    the same side (as the interval is never narrower); NaN with fewer than two seeds or no spread at all."""
    D = _diffs(correct_a, correct_b)
    est, v, df, v_seed, S = _two_noise_parts(D)
    if S < 2 or v == 0.0:
        return math.nan
    p = float(stats.t.sf((est - by) / math.sqrt(v), df))
    return _never_below_seed_only(p, D.mean(axis=1), by, below)


def share_interval(values: Iterable[float], *, n_images: int, level: float = DEFAULT_LEVEL) -> Interval:
    """Interval of a share measured on a fixed set of ``n_images`` images, one value per seed (the
    student's accuracy on the training images its teacher gets wrong, mu_S; or any mean over those
    images of a per-image value in [0, 1], such as a confidence gap). It covers the seeds and the
    sampling of those images when only their number is stored: the image part of the variance is
    bounded by ``p (1 - p) / N`` (no [0, 1] value with mean ``p`` varies more, whatever the correlation
    between seeds; the bound is attained when every seed shares each image's outcome, and the coverage
    is then near the nominal level, tests/report/test_evidence.py), with ``p`` the mean share kept half
    an image from 0 and 1 (``[0.5 / N, 1 - 0.5 / N]``), so a share of 0 on every seed still has a width
    that shrinks with ``N``. Welch degrees of freedom as :func:`two_noise_interval`'s, and never
    narrower than the seed-only t interval. Ten images make a wide interval, which is the point: a
    verdict on ten images says so. Fewer than two seeds: NaN bounds; no image: NaN estimate.

    One-sample only: for a paired difference of two shares the bound from counts alone,
    ``(se_a + se_b)^2``, ignores the pairing and is far too wide for two models that agree on most
    images; a paired interval needs per-image records (:func:`two_noise_interval`)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x, N = _values(values), int(n_images)
    if N < 0:
        raise ValueError(f"n_images must be a count >= 0, got {n_images}")
    S = len(x)
    if S == 0 or N == 0:
        return Interval(math.nan, math.nan, math.nan, level, S)
    est = float(x.mean())
    if S < 2:
        return Interval(est, math.nan, math.nan, level, S)
    p = min(max(est, 0.5 / N), 1.0 - 0.5 / N)
    v_seed, v_img = float(x.var(ddof=1) / S), p * (1.0 - p) / N
    half = _half_width(v_seed + v_img, _welch_df(v_seed, v_img, S, N), v_seed, S, level)
    return Interval(est, est - half, est + half, level, S)


def _with_images(a, b) -> bool:
    """Both sides carry per-image results (:class:`kdutils.report.evidence.SeedValues` with ``correct``)."""
    return getattr(a, "correct", None) is not None and getattr(b, "correct", None) is not None


def _signed_interval(a, b, level: float, higher_is_better: bool) -> tuple[Interval, Interval | None]:
    """The deciding interval of the signed difference and, when it covers test-set noise too, the
    seed-only one beside it (else None): with per-image results on both sides the interval is
    :func:`kdutils.report.evidence.two_noise_interval` (seeds and test images), otherwise the paired t."""
    if not higher_is_better:
        a, b = b, a
    seed_only = paired_interval(a, b, level=level)
    if not _with_images(a, b):
        return seed_only, None
    return two_noise_interval(a.correct, b.correct, level=level), seed_only


def _test_name(a, b) -> str:
    """How the rule's interval is built, for its text."""
    return "paired t over seeds and test images" if _with_images(a, b) else "paired t"


def _diff_text(label: str, higher_is_better: bool) -> str:
    return f"({label})" if higher_is_better else f"-({label}) (lower is better)"


def claim_better(
    a: Iterable[float],
    b: Iterable[float],
    *,
    by: float = 0.0,
    level: float = DEFAULT_LEVEL,
    higher_is_better: bool = True,
    label: str = "a - b",
    scale: float = 100.0,
    unit: str = " points",
) -> Verdict:
    """Superiority: is ``a`` better than ``b`` by more than ``by``, paired by seed?

    The paired t interval (:func:`paired_interval`, two-sided at ``level``) of the signed
    difference ``a_i - b_i`` (``b_i - a_i`` when lower is better): *holds* when it lies entirely
    above ``by``, *does not hold* when it lies entirely below ``by``, *inconclusive* when it
    contains ``by``, *not testable* with fewer than two seeds. Each one-sided decision is a
    test at ``(1 + level) / 2`` (95 % by default; 90 % two-sided because with 3 seeds a 95 %
    interval needs t = 4.30). ``by`` is in raw units (0.03 = 3 points of accuracy);
    ``scale``/``unit`` only shape the text. When ``a`` and ``b`` both carry per-image results
    (:class:`kdutils.report.evidence.SeedValues` with ``correct``) the interval covers the test-set
    noise too (:func:`kdutils.report.evidence.two_noise_interval`); the seed-only one stays in
    ``Verdict.seed_only``.
    """
    iv, seed_only = _signed_interval(a, b, level, higher_is_better)
    rule = (
        f"{_test_name(a, b)}, {_pct(level)} interval of {_diff_text(label, higher_is_better)} above "
        f"{_num(by * scale)}{unit}"
    )
    return Verdict(
        _decide(iv, by, "above"),
        iv.estimate,
        iv.low,
        iv.high,
        level,
        iv.n,
        float(by),
        rule,
        scale=scale,
        unit=unit,
        side="above",
        signed=True,
        seed_only=seed_only,
    )


def claim_non_inferior(
    a: Iterable[float],
    b: Iterable[float],
    *,
    margin: float = 0.01,
    level: float = DEFAULT_LEVEL,
    higher_is_better: bool = True,
    label: str = "a - b",
    scale: float = 100.0,
    unit: str = " points",
) -> Verdict:
    """Non-inferiority: is ``a`` at least as good as ``b`` up to ``margin``, paired by seed?

    The paired t interval (two-sided at ``level``) of the signed difference ``a_i - b_i``
    (``b_i - a_i`` when lower is better): *holds* when its low end is above ``-margin``,
    *does not hold* when its high end is below ``-margin``, *inconclusive* otherwise, *not
    testable* with fewer than two seeds. Each one-sided decision is a test at
    ``(1 + level) / 2``. ``margin`` is in raw units (the notebooks pass
    :func:`kdutils.report.evidence.scaled_margin`'s). Per-image results widen the interval as in
    :func:`claim_better`.
    """
    if margin < 0:
        raise ValueError(f"margin is a non-negative tolerance, got {margin}")
    iv, seed_only = _signed_interval(a, b, level, higher_is_better)
    rule = (
        f"{_test_name(a, b)}, {_pct(level)} interval of {_diff_text(label, higher_is_better)} above "
        f"{_num(-margin * scale)}{unit}"
        f" (non-inferiority margin {_num(margin * scale)}{unit})"
    )
    return Verdict(
        _decide(iv, -margin, "above"),
        iv.estimate,
        iv.low,
        iv.high,
        level,
        iv.n,
        -float(margin),
        rule,
        scale=scale,
        unit=unit,
        side="above",
        signed=True,
        seed_only=seed_only,
    )


def _claim_mean(values, threshold, side, level, label, scale, unit, n_images=None) -> Verdict:
    if n_images is None:
        iv, seed_only, test = mean_interval(values, level=level), None, "one-sample t"
    else:
        iv, seed_only = share_interval(values, n_images=n_images, level=level), mean_interval(values, level=level)
        test = f"one-sample t over seeds and the {int(n_images)} images (binomial bound)"
    rule = f"{test}, {_pct(level)} interval of {label} {side} {_num(threshold * scale)}{unit}"
    return Verdict(
        _decide(iv, threshold, side),
        iv.estimate,
        iv.low,
        iv.high,
        level,
        iv.n,
        float(threshold),
        rule,
        scale=scale,
        unit=unit,
        side=side,
        signed=False,
        seed_only=seed_only,
    )


def claim_mean_above(
    values: Iterable[float],
    threshold: float,
    *,
    level: float = DEFAULT_LEVEL,
    label: str = "the mean",
    scale: float = 1.0,
    unit: str = "",
    n_images: int | None = None,
) -> Verdict:
    """Is the mean over seeds above ``threshold``? One-sample t interval, two-sided at ``level``.

    *holds* when the interval lies entirely above ``threshold``, *does not hold* when it lies
    entirely below (or is the threshold itself: every value equal to it), *inconclusive* when it
    contains it, *not testable* with fewer than two values. Each one-sided decision is a test at
    ``(1 + level) / 2`` (95 % by default). ``n_images``: the values are shares on a fixed set of
    that many images (only the count stored): the interval is :func:`share_interval`'s, the
    seed-only one beside it.
    """
    return _claim_mean(values, threshold, "above", level, label, scale, unit, n_images)


def claim_mean_below(
    values: Iterable[float],
    threshold: float,
    *,
    level: float = DEFAULT_LEVEL,
    label: str = "the mean",
    scale: float = 1.0,
    unit: str = "",
) -> Verdict:
    """Is the mean over seeds below ``threshold``? One-sample t interval, two-sided at ``level``.

    *holds* when the interval lies entirely below ``threshold``, *does not hold* when it lies
    entirely above, *inconclusive* when it contains it, *not testable* with fewer than two
    values. Each one-sided decision is a test at ``(1 + level) / 2`` (95 % by default).
    """
    return _claim_mean(values, threshold, "below", level, label, scale, unit)


def claim_all(verdicts: Sequence[Verdict], rule: str) -> Verdict:
    """A claim made of several parts (all must hold), e.g. "saves 10 % of the samples AND is non-inferior".

    *does not hold* if any part does not hold; otherwise *not testable* if any part is;
    otherwise *holds* if every part holds, else *inconclusive*. The numbers reported are those
    of the weakest part with the combined verdict: the one whose interval clears its threshold
    by the least (:attr:`Verdict.margin`, in the part's raw units).
    """
    verdicts = list(verdicts)
    if not verdicts:
        raise ValueError("claim_all needs at least one part")
    states = [v.verdict for v in verdicts]
    if FAILS in states:
        combined = FAILS
    elif NOT_TESTABLE in states:
        combined = NOT_TESTABLE
    elif all(s == HOLDS for s in states):
        combined = HOLDS
    else:
        combined = INCONCLUSIVE
    candidates = [v for v in verdicts if v.verdict == combined]
    w = min(candidates, key=lambda v: v.margin if math.isfinite(v.margin) else -math.inf)
    return Verdict(
        combined,
        w.estimate,
        w.low,
        w.high,
        w.level,
        w.n,
        w.threshold,
        rule,
        scale=w.scale,
        unit=w.unit,
        side=w.side,
        signed=w.signed,
    )


# --------------------------------------------------------------------------- tests and multiplicity

#: exact enumeration of sign flips up to this many pairs, a seeded Monte Carlo beyond
_EXACT_FLIPS = 16


def sign_flip_pvalue(
    a: Iterable[float], b: Iterable[float], *, higher_is_better: bool = True, threshold: float = 0.0
) -> float:
    """Exact paired permutation (sign-flip) test: one-sided p-value for ``mean(a - b) > threshold``.

    Under the null the centred differences ``d_i = (a_i - b_i) - threshold`` (``b_i - a_i`` when
    lower is better) are symmetric around 0, so each sign is equally likely: p is the share of
    the ``2**n`` sign patterns whose mean is at least the observed one. With 3 seeds there are
    only 8 patterns and the smallest attainable p is 1/8 = 0.125 (all differences positive):
    such a test cannot reach 5 % with 3 seeds, whatever the numbers. Up to 16 pairs the
    enumeration is exact; beyond, 65536 seeded random patterns (p = (1 + hits) / (1 + draws)).
    NaN with no pairs.
    """
    a, b = _values(a), _values(b)
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs one value per seed on both sides: got {len(a)} and {len(b)} values")
    d = (a - b if higher_is_better else b - a) - threshold
    n = len(d)
    if n == 0:
        return math.nan
    obs = d.mean()
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if n <= _EXACT_FLIPS:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
        means = ((1 - 2 * bits) * d).mean(axis=1)
        return float(np.mean(means >= obs - tol))
    draws = 65536
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(draws, n))
    hits = int(np.sum((signs * d).mean(axis=1) >= obs - tol))
    return (1 + hits) / (1 + draws)


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values, in the input's order.

    With the m p-values sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``:
    monotone in the original p and capped at 1. Rejecting where the adjusted p is below alpha
    controls the family-wise error rate at alpha. NaN p-values stay NaN and do not count in m.
    """
    keys = [k for k, p in pvalues.items() if p is not None and math.isfinite(p)]
    m = len(keys)
    out = {k: math.nan for k in pvalues}
    running = 0.0
    for j, k in enumerate(sorted(keys, key=lambda k: pvalues[k])):
        running = max(running, min(1.0, (m - j) * float(pvalues[k])))
        out[k] = running
    return out


def _flat(d: np.ndarray) -> bool:
    """Differences identical up to rounding (two seeds alike: ``0.0147 - 0.0147`` computed two ways)."""
    return float(np.ptp(d)) <= 1e-12 * max(1.0, float(np.abs(d).max()))


def _one_sided_p(iv_d: np.ndarray, by: float) -> float:
    """Paired t p-value for mean(d) > by (NaN with fewer than 2 values)."""
    n = len(iv_d)
    if n < 2:
        return math.nan
    x = iv_d.mean() - by
    se = iv_d.std(ddof=1) / math.sqrt(n)
    if _flat(iv_d):  # identical differences (two seeds alike): no spread to test by, not a certainty
        return math.nan
    return float(stats.t.sf(x / se, n - 1))


def best_of_many(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    by: float = 0.0,
    level: float = DEFAULT_LEVEL,
    higher_is_better: bool = True,
    scale: float = 100.0,
) -> pd.DataFrame:
    """Exploration of many paired comparisons, with and without a multiple-comparison correction.

    One row per comparison ``name: (a, b)`` (paired by seed), sorted by estimate, best first.
    Columns: ``comparison``; ``estimate``, ``low``, ``high`` (the paired t interval of the signed
    difference, two-sided at ``level``, times ``scale``; with per-image results on both sides, the
    interval with both noises, :func:`two_noise_interval`); ``n``; ``p`` (one-sided p-value for
    ``diff > by``, of the same interval: paired t, or :func:`two_noise_p`); ``p_holm`` (Holm-adjusted over the family, :func:`holm`)
    and ``p_holm_below`` (the same for the opposite test, ``diff < by``: what a *does not hold* rests on);
    ``uncorrected`` and ``corrected``: the one-sided test at the level the intervals use,
    alpha = (1 - level) / 2 (5 % by default): *holds* when p (resp. p_holm) < alpha, *does
    not hold* when the opposite one-sided test (diff < by) is significant (resp. after Holm
    over the family), else *inconclusive*; *not testable* with fewer than two seeds, or when the
    differences are all identical (two seeds alike: a zero-width interval is no certainty; the
    ``note`` column says so, and the bounds are blank).
    Uncorrected *holds* is the same as :func:`claim_better` holding. The best of a family
    can hold uncorrected and not after the correction: that is why a best-of-many number
    never decides a claim alone.
    """
    alpha = (1.0 - level) / 2.0
    rows, p_up, p_down = [], {}, {}
    for name, (a, b) in pairs.items():
        hi, lo = (a, b) if higher_is_better else (b, a)
        d = _values(hi) - _values(lo)
        iv, _ = _signed_interval(a, b, level, higher_is_better)
        if _with_images(a, b):  # accuracy with per-image results: the p-value of the interval's own noise
            p, p_below = (two_noise_p(hi.correct, lo.correct, by=by, below=w) for w in (False, True))
        else:
            p = _one_sided_p(d, by)
            p_below = 1.0 - p if math.isfinite(p) else math.nan
        p_up[name], p_down[name] = p, p_below
        flat = len(d) >= 2 and _flat(d)
        rows.append(
            {
                "comparison": name,
                "estimate": iv.estimate * scale,
                "low": math.nan if flat else iv.low * scale,
                "high": math.nan if flat else iv.high * scale,
                "n": iv.n,
                "p": p,
                "note": f"no interval: the {len(d)} differences are identical (no spread between seeds)"
                if flat
                else "",
            }
        )
    h_up, h_down = holm(p_up), holm(p_down)

    def decide(up, down):
        if not math.isfinite(up):
            return NOT_TESTABLE
        return HOLDS if up < alpha else FAILS if down < alpha else INCONCLUSIVE

    for r in rows:
        k = r["comparison"]
        r["p_holm"], r["p_holm_below"] = h_up[k], h_down[k]
        r["uncorrected"] = decide(p_up[k], p_down[k])
        r["corrected"] = decide(h_up[k], h_down[k])
    cols = [
        "comparison",
        "estimate",
        "low",
        "high",
        "n",
        "p",
        "p_holm",
        "p_holm_below",
        "uncorrected",
        "corrected",
        "note",
    ]
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("estimate", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


# --------------------------------------------------------------------------- backwards compatibility


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` returns: the paired difference and :func:`claim_better`'s verdict."""

    diff: float  # mean(a_i - b_i), unsigned
    stderr: float  # standard error of the paired differences
    n: int
    verdict: str
    low: float = math.nan  # the paired interval of the signed difference, at `level`
    high: float = math.nan
    level: float = DEFAULT_LEVEL

    def __str__(self) -> str:
        return f"{self.diff:+.4f} (se {self.stderr:.4f}, {_pct(self.level)} CI [{self.low:+.4f}, {self.high:+.4f}], n={self.n}): {self.verdict}"


def compare(
    a: Iterable[float],
    b: Iterable[float],
    *,
    margin: float = 0.0,
    higher_is_better: bool = True,
    level: float = DEFAULT_LEVEL,
) -> Comparison:
    """Older name, same rule as :func:`claim_better` (``by=margin``); prefer ``claim_better``.

    Paired by seed (same lengths required). The verdict comes from the paired t interval,
    two-sided at ``level``: *holds* when it lies above ``margin``, *does not hold* when it
    lies below, *inconclusive* when it contains it, *not testable* with fewer than two seeds.
    """
    v = claim_better(a, b, by=margin, level=level, higher_is_better=higher_is_better)
    d = _values(a) - _values(b)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    diff = v.estimate if higher_is_better else -v.estimate
    return Comparison(float(diff), se, v.n, v.verdict, v.low, v.high, level)


# --------------------------------------------------------------------------- the claims table


def claim_row(
    claim: str,
    source: str,
    paper: str,
    verdict: Verdict,
    *,
    dataset: str,
    profile: str,
    measured: str | None = None,
    converged: str | None = None,
    seed_only: str | None = None,
    sensitivity: str | None = None,
) -> dict:
    """One row of :func:`claims_frame`, its verdict, rule and level taken from ``verdict``.

    ``measured`` defaults to ``verdict.describe()`` (estimate, interval, n); ``converged``
    (whether the students converged at this profile) is added only when given; ``seed_only``
    (the seed-only interval beside one that also covers test-set noise; default the verdict's
    own) and ``sensitivity`` (a non-inferiority verdict at half and twice its margin) when not empty.
    """
    if seed_only is None:
        seed_only = verdict.describe_seed_only()
    row = {
        "claim": claim,
        "source": source,
        "paper's number": paper,
        "measured": verdict.describe() if measured is None else measured,
        "rule": verdict.rule,
        "level": _pct(verdict.level),
        "profile": profile,
        "dataset": dataset,
        "verdict": verdict.verdict,
    }
    if converged is not None:
        row["converged"] = converged
    if seed_only:
        row["seed-only interval"] = seed_only
    if sensitivity:
        row["margin sensitivity"] = sensitivity
    return row


CLAIM_COLUMNS = ["claim", "source", "paper's number", "measured", "rule", "level", "profile", "dataset", "verdict"]


def claims_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """The claims table every notebook ends with (rows from :func:`claim_row`).

    Columns: claim, source ([paper] / [public] / [ours]), paper's number, measured, rule,
    level, profile, dataset, verdict; a "seed-only interval" column (after "measured"), a
    "margin sensitivity" and a "converged" column (before the verdict) only if any row has one.
    Missing entries are empty strings.
    """
    rows = list(rows)
    cols = list(CLAIM_COLUMNS)
    for extra, before in (("seed-only interval", "rule"), ("margin sensitivity", "verdict"), ("converged", "verdict")):
        if any(extra in r for r in rows):
            cols.insert(cols.index(before), extra)
    return pd.DataFrame([{c: r.get(c, "") for c in cols} for r in rows], columns=cols)

"""The results contract and the claims table.

Every notebook collects its numbers in a :class:`Results` table and writes it as
``results.csv`` (columns :data:`COLUMNS`, one row per notebook x dataset x method x
seed x metric) next to its executed copy. Tests, the batch summary and users' own
plots read that one file.

A claim's verdict is computed from measured numbers by :func:`compare`, never typed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

COLUMNS = ["notebook", "profile", "dataset", "method", "seed", "metric", "value"]

HOLDS, FAILS, INCONCLUSIVE, NOT_TESTABLE = "holds", "does not hold", "inconclusive", "not testable at this profile"


class Results:
    """Tidy rows of (notebook, profile, dataset, method, seed, metric, value)."""

    def __init__(self, notebook: str, profile: str):
        self.notebook, self.profile = notebook, profile
        self._rows: list[dict] = []

    def add(self, dataset: str, method: str, seed: int | None, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self._rows.append(
                {"notebook": self.notebook, "profile": self.profile, "dataset": dataset, "method": method,
                 "seed": -1 if seed is None else int(seed), "metric": k, "value": float(v)}  # fmt: skip
            )

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows, columns=COLUMNS)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "results.csv"
        self.frame.to_csv(path, index=False, float_format="%.6g")
        return path

    def __len__(self) -> int:
        return len(self._rows)


def read_results(path: str | Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a results table: missing columns {missing}")
    return df


def summarize(df: pd.DataFrame, metrics: Iterable[str] | None = None, by=("dataset", "method")) -> pd.DataFrame:
    """Mean, std and number of seeds per (dataset, method, metric)."""
    d = df if metrics is None else df[df["metric"].isin(list(metrics))]
    g = d.groupby([*by, "metric"], sort=False)["value"]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def mean_std_table(df: pd.DataFrame, metric: str, order: list[str] | None = None, scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
    """A readable table ``method x dataset`` of "mean ± std" for one metric."""
    s = summarize(df, [metric])
    s["cell"] = [f"{m * scale:.{digits}f} ± {sd * scale:.{digits}f}" for m, sd in zip(s["mean"], s["std"])]
    t = s.pivot(index="method", columns="dataset", values="cell")
    if order:
        t = t.reindex([m for m in order if m in t.index])
    return t


@dataclass
class Comparison:
    diff: float  # mean(a) - mean(b)
    stderr: float  # standard error of the difference (paired by seed when possible)
    n: int
    verdict: str

    def __str__(self) -> str:
        return f"{self.diff:+.4f} (se {self.stderr:.4f}, n={self.n}): {self.verdict}"


def compare(a: Iterable[float], b: Iterable[float], *, margin: float = 0.0, higher_is_better: bool = True) -> Comparison:
    """Is ``a`` better than ``b`` by more than ``margin``? A verdict from the numbers.

    With seeds paired (same length) the difference is taken per seed. Verdict:
    ``holds`` when the mean difference minus ``margin`` exceeds one standard error,
    ``does not hold`` when it is below minus one standard error, else
    ``inconclusive``; with a single seed the sign decides (no spread to judge by).
    ``margin`` may be negative ("at least as good as b minus |margin|").
    """
    a, b = np.asarray(list(a), float), np.asarray(list(b), float)
    if len(a) == 0 or len(b) == 0:
        return Comparison(math.nan, math.nan, 0, NOT_TESTABLE)
    sign = 1.0 if higher_is_better else -1.0
    if len(a) == len(b):
        d = sign * (a - b)
        n = len(d)
        diff, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    else:
        n = min(len(a), len(b))
        diff = float(sign * (a.mean() - b.mean()))
        se = float(math.sqrt((a.var(ddof=1) if len(a) > 1 else 0) / len(a) + (b.var(ddof=1) if len(b) > 1 else 0) / len(b)))
    x = diff - margin
    if n <= 1 or se == 0.0:
        verdict = HOLDS if x > 0 else FAILS
    else:
        verdict = HOLDS if x > se else FAILS if x < -se else INCONCLUSIVE
    return Comparison(diff * sign, se, n, verdict)


def claims_frame(rows: list[dict]) -> pd.DataFrame:
    """The claims table every notebook ends with.

    Each row: claim, source ([paper] / [public] / [ours]), paper's number, measured,
    profile, dataset, verdict.
    """
    cols = ["claim", "source", "paper's number", "measured", "profile", "dataset", "verdict"]
    return pd.DataFrame([{c: r.get(c, "") for c in cols} for r in rows], columns=cols)

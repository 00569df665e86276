"""Intervals with both noises, per-image predictions, and non-inferiority margins that scale.

Why this module: a claim compares two methods' test accuracy, paired by seed. Two things make the
measured difference move: the seed (initialisation, batch order: the training noise) and the test
set itself (10,000 images drawn from the population: the test-set noise). The seed-only t
interval of :func:`kdutils.results.paired_interval` covers the first alone; on MNIST the
test-set standard error of one accuracy is about 0.1 point, more than several decided effects.

**Data.** For each seed ``s`` and test image ``i``, ``correct_a[s, i]`` and ``correct_b[s, i]``
(0 or 1): whether method a's (b's) student of seed ``s`` classifies image ``i`` correctly. Write
``D[s, i] = correct_a[s, i] - correct_b[s, i]``, ``d_s = mean_i D[s, i]`` (seed ``s``'s accuracy
difference) and ``e_i = mean_s D[s, i]`` (image ``i``'s difference averaged over seeds). The
estimate is ``mean_s d_s = mean_i e_i``.

**The interval that decides** (:func:`two_noise_interval`) [ours]: the seed-only paired t
interval widened by the paired test-set variance::

    v_seed = var_s(d_s) / S          (ddof 1: the training noise)
    v_test = var_i(e_i) / N          (ddof 1: the test set as a sample of images, paired: the
                                      same images for both methods, every seed)
    half   = max(t_{(1+level)/2, df} * sqrt(v_seed + v_test),  t_{(1+level)/2, S-1} * sqrt(v_seed))

with Welch-Satterthwaite degrees of freedom ``df = (v_seed + v_test)^2 / (v_seed^2 / (S - 1) +
v_test^2 / (N - 1))`` (between ``S - 1`` and ``N - 1``: with no test-set noise it is the paired t
interval exactly). The second term keeps it never narrower than the seed-only interval: the larger
degrees of freedom alone could otherwise shorten it when the two variances are alike. ``v_test``
also holds some within-seed noise that ``v_seed`` already counts, so the interval is slightly
conservative. Fewer than two seeds: NaN bounds (not testable), as for the seed-only rule.

**A cross-check** (:func:`two_level_bootstrap`): a two-level paired bootstrap: resample the
seeds, then the test images (one resample of the test set, the same images for both methods and
every seed, since every seed is scored on the one test set), percentile interval. With three
seeds its seed level has only 10 distinct resamples and undercovers; it is printed beside the
decision at five seeds and more, never decides.

**Margins that scale** (:func:`scaled_margin`) [ours]: "at least as good as" is non-inferiority
with a margin of :data:`MARGIN_FRACTION` (one third) of the student-alone-to-teacher gap at that
dataset and profile: what distillation has to win is that gap; losing a third of it is losing a
real share of the method's point, while a fixed 1 point was three times the whole gap on MNIST.
:func:`sensitivity` reports the verdict at half and at twice the margin.

**Per-image predictions** travel as text (:func:`encode_predictions` /
:func:`decode_predictions`: the predicted class per test image, one byte each (two past 255
classes), zlib-compressed
and base64-encoded, a few kB per run), so a run's cached evaluation and the committed results
carry them and paired test-set statistics can be computed later without the models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..core.io import decode_predictions, encode_predictions
from .results import DEFAULT_LEVEL, Interval, _diffs, two_noise_interval

__all__ = [
    "MARGIN_FRACTION",
    "SeedValues",
    "encode_predictions",
    "decode_predictions",
    "two_noise_interval",
    "two_level_bootstrap",
    "sampling_se",
    "scaled_margin",
    "sensitivity",
]

#: the non-inferiority margin as a share of the student-alone-to-teacher gap [ours]
MARGIN_FRACTION = 1.0 / 3.0


class SeedValues(list):
    """One value per seed (a ``list`` of floats, in seed order), optionally with ``correct``:
    a ``(seeds, images)`` 0/1 array of which test images each seed's model classifies correctly
    (its row means are the values). Rules that get two :class:`SeedValues` with ``correct`` use
    :func:`two_noise_interval`; plain lists keep the seed-only t interval."""

    def __init__(self, values: Iterable[float] = (), correct: np.ndarray | None = None):
        super().__init__(float(v) for v in values)
        if correct is not None:
            correct = np.asarray(correct)
            if correct.ndim != 2 or correct.shape[0] != len(self):
                raise ValueError(f"correct must be (seeds, images) with {len(self)} seeds, got shape {correct.shape}")
        self.correct = correct


def sampling_se(correct_a, correct_b) -> float:
    """Standard error of the mean difference from the test set alone: ``sqrt(var_i(e_i) / N)``."""
    e = _diffs(correct_a, correct_b).mean(axis=0)
    return float(math.sqrt(e.var(ddof=1) / len(e))) if len(e) > 1 else math.nan


def two_level_bootstrap(
    correct_a, correct_b, *, level: float = DEFAULT_LEVEL, n_boot: int = 2000, seed: int = 0, chunk: int = 250
) -> Interval:
    """Two-level paired bootstrap percentile interval (module docstring): per replicate, the seeds
    resampled with replacement and the test images resampled once (multinomial counts, the same
    for both methods and every seed). Deterministic for a given ``seed``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    D = _diffs(correct_a, correct_b)
    S, N = D.shape
    est = float(D.mean()) if D.size else math.nan
    if S < 2:
        return Interval(est, math.nan, math.nan, level, S)
    rng = np.random.default_rng(seed)
    stats_ = np.empty(n_boot)
    for lo in range(0, n_boot, chunk):
        k = min(chunk, n_boot - lo)
        w = rng.multinomial(N, np.full(N, 1.0 / N), size=k).astype(float)  # (k, N) image counts
        per_seed = D @ w.T / N  # (S, k): each seed's difference on each resampled test set
        pick = rng.integers(0, S, size=(k, S))  # resampled seeds per replicate
        stats_[lo : lo + k] = per_seed[pick, np.arange(k)[:, None]].mean(axis=1)
    q = (1.0 - level) / 2.0
    low, high = np.quantile(stats_, [q, 1.0 - q])
    return Interval(est, float(low), float(high), level, S)


@dataclass(frozen=True)
class Margin:
    """A non-inferiority margin (raw units) and where it came from."""

    value: float
    gap: float
    fraction: float

    def describe(self, scale: float = 100.0) -> str:
        return (
            f"{self.value * scale:.2f} points = {self.fraction:.3g} x the student-alone-to-teacher gap "
            f"({self.gap * scale:+.2f} points)"
        )


def scaled_margin(teacher: float, alone: Iterable[float], *, fraction: float = MARGIN_FRACTION) -> Margin:
    """The non-inferiority margin at this dataset and profile: ``fraction`` x (teacher accuracy -
    the student alone's mean accuracy), 0 when the student alone is as good as its teacher (then
    "at least as good" means not worse at all)."""
    if not 0.0 < fraction:
        raise ValueError(f"fraction must be positive, got {fraction}")
    alone = [float(v) for v in alone]
    if not alone:
        raise ValueError("scaled_margin needs the student alone's accuracy on at least one seed")
    gap = float(teacher) - float(np.mean(alone))
    return Margin(max(0.0, fraction * gap), gap, fraction)


def sensitivity(decide, margin: float) -> Mapping[str, str]:
    """The verdict at half and at twice ``margin``: ``decide(m) -> verdict`` for each;
    ``{"margin/2": ..., "2 x margin": ...}``."""
    return {"margin/2": decide(margin / 2.0), "2 x margin": decide(2.0 * margin)}

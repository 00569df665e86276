"""Teacher-student pairs beyond a profile's one pair, from one place (notebook 02, CMKD).

A profile names one teacher and one student per dataset
(:data:`kdutils.profiles.DATASET_DEFAULTS`). The CMKD notebook needs more:

* :data:`PAIRS`: the teacher -> student pairs per dataset. CIFAR-100: the five pairs of the
  CRD/RepDistiller benchmark that DIST and CMKD report on [public, ``docs/papers/cmkd.md``]; every
  other dataset: the profile's own pair only. :func:`pairs_for` puts the profile's pair first:
  the **primary pair**, on which the claims are decided.
* :data:`TEACHER_SERIES`: per dataset, one student and teachers of growing size for the
  stronger-teacher curve [ours: the paper's abstract names the experiment, not its models].
* :data:`REFERENCE`: the CIFAR-100 top-1 accuracies of the CRD and DIST READMEs [public].
* :data:`DEFAULT_DATASETS`: a notebook's datasets per profile when it names none (the
  ``paper`` profile of the CIFAR-100 papers is CIFAR-100, not the profile's default dataset).

Profiles pick sizes, never code paths: the same tables serve every profile (a ``quick`` run on
CIFAR-100, for whoever has it, trains the five pairs at quick sizes).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..core.errors import ParameterError
from ..training.profiles import Settings, is_count

__all__ = [
    "PAIRS",
    "TEACHER_SERIES",
    "REFERENCE",
    "DEFAULT_DATASETS",
    "ABLATION_SEEDS",
    "pairs_for",
    "series_for",
    "pair_label",
    "reference_frame",
    "default_datasets",
    "ablation_seeds",
]

#: teacher -> student pairs per dataset; a dataset not listed has the profile's pair only
PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "cifar100": (
        ("resnet32x4", "resnet8x4"),
        ("wrn_40_2", "wrn_16_2"),
        ("wrn_40_2", "wrn_40_1"),
        ("resnet56", "resnet20"),
        ("vgg13", "vgg8"),
    ),
}

#: (student, teachers of growing size) per dataset [ours]; at least three each, so that the curve's
#: slope is fitted through more than two points.
#: The small datasets: LeNet-5-Half taught by a teacher of its own size, by LeNet-5 (4x the
#: parameters) and by LeNet-5 with doubled widths (16x). The CIFAR-10 subset: AlexNet-Half by
#: itself (0.53M parameters), by AlexNet (2.1M) and by the CRD benchmark's VGG8 (3.9M, batch norm):
#: a wider AlexNet (about 4x AlexNet's cost per step) would keep the family but not the quick
#: profile's time on 2 CPU cores, where VGG8 costs about 1.4x AlexNet; like the CIFAR-100 series,
#: the largest step changes the architecture too. CIFAR-100: ResNet-8x4 by deeper, then wider
#: teachers. A dataset not listed: the profile's student, taught by itself and by the profile's teacher.
TEACHER_SERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "digits": ("lenet5_half", ("lenet5_half", "lenet5", "lenet5_x2")),
    "mnist": ("lenet5_half", ("lenet5_half", "lenet5", "lenet5_x2")),
    "fashion_mnist": ("lenet5_half", ("lenet5_half", "lenet5", "lenet5_x2")),
    "cifar10": ("alexnet_half", ("alexnet_half", "alexnet", "vgg8")),
    "cifar100": ("resnet8x4", ("resnet56", "resnet110", "wrn_40_2", "resnet32x4")),
}

#: CIFAR-100 top-1 (%) [public, the CRD and DIST READMEs, as quoted in docs/papers/cmkd.md]; None: not reported
REFERENCE: dict[tuple[str, str], dict[str, float | None]] = {
    ("resnet32x4", "resnet8x4"): {"teacher": 79.42, "student": 72.50, "KD": 73.33, "DIST": 76.31},
    ("wrn_40_2", "wrn_40_1"): {"teacher": 75.61, "student": 71.98, "KD": 73.54, "DIST": 74.43},
    ("resnet56", "resnet20"): {"teacher": 72.34, "student": 69.06, "KD": 70.66, "DIST": 71.75},
    ("wrn_40_2", "wrn_16_2"): {"teacher": 75.61, "student": 73.26, "KD": 74.92, "DIST": None},
    ("vgg13", "vgg8"): {"teacher": 74.64, "student": 70.36, "KD": 72.98, "DIST": None},
}

#: a notebook's datasets per profile when its ``datasets`` parameter is empty; a profile not
#: listed: [] (the profile's default dataset)
DEFAULT_DATASETS: dict[str, list[str]] = {"paper": ["cifar100"]}


#: how many seeds train the ablations per profile when a notebook's ``ablation_seeds`` is 0 (its
#: default); a profile not listed: every seed. ``quick`` trains them on one seed so that one
#: dataset of notebook 02, teachers included, fits its 15-minute budget on 2 CPU cores, and
#: ``smoke`` so that the test suite fits its 20 minutes [ours]
ABLATION_SEEDS: dict[str, int] = {"smoke": 1, "quick": 1}


def ablation_seeds(settings: Settings, n: int = 0) -> tuple[int, ...]:
    """The seeds of a notebook's ablations: the first ``n`` of ``settings.seeds``; ``n = 0``: the
    profile's default (:data:`ABLATION_SEEDS`, else every seed)."""
    n = n or ABLATION_SEEDS.get(settings.profile, len(settings.seeds))
    return tuple(settings.seeds[:n])


def default_datasets(profile: str) -> list[str]:
    """The datasets to run when none are named: ``["cifar100"]`` at ``paper``, else ``[]`` (the profile's default)."""
    return list(DEFAULT_DATASETS.get(profile, []))


def _first(items: list, n: int, what: str) -> list:
    if not is_count(n):
        raise ParameterError(what, n, "an int >= 0 (the first n; 0 for all of them)")
    return items[:n] if n else items


def pairs_for(settings: Settings, n: int = 0) -> list[tuple[str, str]]:
    """The (teacher, student) pairs of ``settings``' dataset, the profile's own pair first (the
    primary pair); ``n > 0``: the first ``n`` of them (notebook 02's ``max_pairs``)."""
    primary = (settings.teacher_model, settings.student_model)
    return _first([primary, *[p for p in PAIRS.get(settings.dataset, ()) if p != primary]], n, "max_pairs")


def series_for(settings: Settings, n: int = 0) -> tuple[str, list[str]]:
    """(student, teachers of growing size) of the stronger-teacher curve on ``settings``' dataset;
    ``n > 0``: the ``n`` smallest teachers (notebook 02's ``series_teachers``)."""
    if settings.dataset in TEACHER_SERIES:
        student, teachers = TEACHER_SERIES[settings.dataset]
        return student, _first(list(teachers), n, "series_teachers")
    teachers = list(dict.fromkeys([settings.student_model, settings.teacher_model]))
    return settings.student_model, _first(teachers, n, "series_teachers")


def pair_label(label: str, pair: Sequence[str], settings: Settings) -> str:
    """``label`` for the primary pair, ``"label [teacher -> student]"`` for any other pair."""
    t, s = pair
    return label if (t, s) == (settings.teacher_model, settings.student_model) else f"{label} [{t} -> {s}]"


def reference_frame() -> pd.DataFrame:
    """:data:`REFERENCE` as a table: one row per pair, top-1 in % [public]; empty cells where not reported."""
    rows = [
        {"teacher -> student": f"{t} -> {s}", **{k: ("" if v is None else v) for k, v in ref.items()}}
        for (t, s), ref in REFERENCE.items()
    ]
    return pd.DataFrame(rows).set_index("teacher -> student")

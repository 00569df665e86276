"""A notebook's parameters, checked in its set-up cell before anything is loaded or trained.

papermill (and ``python -m kdutils run -p NAME=VALUE``) injects parameters as they are given:
``-p temperatures=abc`` arrives as the string ``'abc'`` and, unchecked, fails deep in the
sweep after every run before it has trained. Every notebook's set-up cell therefore starts with::

    kd.check_parameters(profile=profile, datasets=datasets, seeds=seeds, device=device, ...)

naming every parameter of its ``parameters`` cell. Each name has a rule here (:data:`RULES`);
a value that breaks it stops with :class:`~kdutils.errors.ParameterError`, one line naming the
parameter, what it accepts and the value given::

    parameter temperatures = 'abc' (str): expected a non-empty list of positive numbers, e.g. [1.0, 2.0, 4.0]

A notebook with a parameter of its own passes a rule for it: ``rules={"name": rule}`` where a
rule is ``(expected, ok)``, ``ok(value) -> bool``.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Mapping
from typing import Any

from ..core.errors import DeviceError, ParameterError, UnknownNameError
from ..evaluation.data_selection import SCORERS, scorer_names
from ..evaluation.evaluations import FAITHFUL_DELTAS
from ..evaluation.faithfulness import SLICE_DIRECTIONS
from ..inputs.data import DATASETS, dataset_names
from ..methods.label_revision import FORMS as LR_FORMS
from ..methods.significance import WEIGHTINGS
from ..training.profiles import PROFILES, check_seeds, is_count, override_names
from .experiment import DEVICE_NAMES, check_device_name

__all__ = ["RULES", "check_parameters"]

#: (what the parameter accepts, in words, or a function giving them; the check)
Rule = tuple["str | Callable[[], str]", Callable[[Any], bool]]


def _number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _list_of(ok: Callable[[Any], bool], *, empty: bool) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, (list, tuple)) and (empty or len(v) > 0) and all(ok(x) for x in v)


def _dataset(x: Any) -> bool:
    return isinstance(x, str) and (x in DATASETS or x.startswith("image_folder:"))


def _names() -> str:
    return ", ".join(dataset_names()) + ", image_folder:PATH"


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _path(v: Any) -> bool:
    return isinstance(v, (str, os.PathLike))


#: the rule of every parameter name the notebooks use (``seeds`` and ``device``: see check_parameters)
RULES: dict[str, Rule] = {
    "profile": (f"one of {', '.join(map(repr, PROFILES))}", lambda v: isinstance(v, str) and v in PROFILES),
    "dataset": (
        lambda: f"a dataset name ({_names()}) or '' for the profile's default",
        lambda v: v == "" or _dataset(v),
    ),
    "datasets": (
        lambda: f"a list of dataset names such as ['mnist'] ({_names()}); [] for the profile's default",
        _list_of(_dataset, empty=True),
    ),
    "temperatures": (
        "a non-empty list of positive numbers, e.g. [1.0, 2.0, 4.0]",
        _list_of(lambda x: _number(x) and x > 0, empty=False),
    ),
    "prune_fractions": (
        "a list of numbers in [0, 1) (fractions of the training set to drop), e.g. [0.1, 0.3, 0.5]; "
        "[] to skip the experiment",
        _list_of(lambda x: _number(x) and 0 <= x < 1, empty=True),
    ),
    "weighting": (
        f"one of the significance weightings {', '.join(map(repr, WEIGHTINGS))}",
        lambda v: isinstance(v, str) and v in WEIGHTINGS,
    ),
    "lr_form": (
        f"one of LR's loss forms {', '.join(map(repr, LR_FORMS))}",
        lambda v: isinstance(v, str) and v in LR_FORMS,
    ),
    "scorer": (
        lambda: f"one of the data-selection scorers {', '.join(map(repr, scorer_names()))}",
        lambda v: isinstance(v, str) and v in SCORERS,
    ),
    "keep": (
        "a number in (0, 1] (the share of training rows supervised by the teacher)",
        lambda v: _number(v) and 0 < v <= 1,
    ),
    "keep_sweep": (
        "a list of numbers in (0, 1) (keep ratios of the data-selection sweep), e.g. [0.5, 0.7, 0.9]; [] to skip it",
        _list_of(lambda x: _number(x) and 0 < x < 1, empty=True),
    ),
    "sweep_seeds": (
        "an int >= 0 (the first n of the dataset's seeds; 0 for all of them)",
        is_count,
    ),
    "fixed_threshold_teacher": ("True, False or 'auto'", lambda v: v is True or v is False or v == "auto"),
    "ablations": ("True or False", _bool),
    "pgd_variant_seeds": (
        "an int >= 0: the first n seeds train faithful KD's PGD variant; 0 for the profile's default",
        is_count,
    ),
    "ard_alpha": (
        "a number in [0, 1] (ARD's KL weight; 1 - alpha weighs the clean cross-entropy)",
        lambda v: _number(v) and 0 <= v <= 1,
    ),
    "delta": (
        lambda: f"one of the delta grid {list(FAITHFUL_DELTAS)} (kdutils.evaluations.FAITHFUL_DELTAS)",
        lambda v: _number(v) and any(abs(v - d) < 1e-12 for d in FAITHFUL_DELTAS),
    ),
    "slice_directions": (
        f"one of {', '.join(map(repr, SLICE_DIRECTIONS))}",
        lambda v: isinstance(v, str) and v in SLICE_DIRECTIONS,
    ),
    "stronger_teacher": ("True or False", _bool),
    "max_pairs": (
        "an int >= 0: the first n teacher -> student pairs of the dataset (the profile's pair first); 0 for all",
        is_count,
    ),
    "series_teachers": (
        "an int >= 0: the n smallest teachers of the stronger-teacher curve; 0 for all",
        is_count,
    ),
    "ablation_seeds": (
        "a non-negative int: the first n seeds train the ablations; 0 for the profile's default",
        is_count,
    ),
    "overrides": (
        "a dict of kdutils.configure overrides, e.g. {'epochs': 5}",
        lambda v: isinstance(v, Mapping) and all(isinstance(k, str) for k in v),
    ),
    "output_dir": ("a folder path (a str; '' for the default)", _path),
    "figures_dir": ("a folder path (a str; '' for the default)", _path),
    "force": ("True or False", _bool),
    "progress": ("True or False", _bool),
}


def check_parameters(rules: Mapping[str, Rule] | None = None, **values: Any) -> None:
    """Check every notebook parameter given as ``name=value`` against its rule; the first one that
    breaks its rule stops with :class:`~kdutils.errors.ParameterError` (one line).

    ``seeds`` follows :func:`kdutils.profiles.check_seeds`, ``device`` the names
    :func:`kdutils.experiment.resolve_device` accepts, ``overrides`` must name
    :func:`kdutils.configure` overrides; the other names are in :data:`RULES`. A name without a
    rule is a mistake in the notebook (``TypeError``): give one in ``rules``.
    """
    table = {**RULES, **(rules or {})}
    for name, value in values.items():
        if name == "seeds":
            check_seeds(value)
            continue
        if name == "device":
            try:
                check_device_name(value)
            except DeviceError:
                raise ParameterError(name, value, f"one of {', '.join(DEVICE_NAMES)} (a str)") from None
            continue
        if name not in table:
            raise TypeError(
                f"check_parameters: no rule for parameter {name!r}; pass rules={{{name!r}: (expected, ok)}}"
            )
        expected, ok = table[name]
        if not ok(value):
            raise ParameterError(name, value, expected() if callable(expected) else expected)
        if name == "overrides":
            valid = override_names()
            for k in value:
                if k not in valid:
                    raise UnknownNameError("override", k, valid)

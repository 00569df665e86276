"""What enters a run's key, and how a method or a recipe may grow without re-keying stored runs.

A run's key (:func:`kdutils.store.config_key`) hashes its configuration, which holds the
method's parameters (``Method.params()``) and the recipe (``Recipe.to_dict()``). Both are built
here, by one rule for every method and the recipe:

* every field a method or the recipe had when its runs were first stored is always in the key;
* a field **added later** is declared with :func:`added` (``tau: float = added(1.0)``): at its
  default it is left out of the key, so every run stored before it existed keeps its key and is
  reused; set to anything else it enters the key, so the new behaviour is a new run.

A default of an added field must therefore keep the old behaviour exactly. The tests pin the keys
of a fixed list of configurations (tests/core/test_run_keys.py), so a change that re-keys stored runs
fails there first.
"""

from __future__ import annotations

import dataclasses
from typing import Any

#: the metadata flag of a field declared with :func:`added`
_ADDED = "kdutils_added_field"


def added(default: Any) -> Any:
    """A dataclass field added to a method or the recipe after runs were stored: left out of the
    run key while it is at ``default`` (which must reproduce the old behaviour)."""
    return dataclasses.field(default=default, metadata={_ADDED: True})


def is_added(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get(_ADDED))


def key_fields(obj: Any) -> dict[str, Any]:
    """``obj``'s dataclass fields as they enter a run key: every field, except an :func:`added`
    one that is at its default. Nested objects with a ``params()`` (a wrapped method) give theirs."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if is_added(f) and v == f.default:
            continue
        out[f.name] = v.params() if hasattr(v, "params") and callable(v.params) else v
    return out

"""Distillation methods: one small file each, registered by name in :data:`METHODS`.

Adding a method is one file, ``kdutils/methods/<name>.py``: its pure loss (formula, source and a
usage line in the docstring; shared primitives such as the tempered KL and the Pearson term stay
in :mod:`kdutils.numerics.losses` and :mod:`kdutils.numerics.correlation`), a ``@register_method("<name>")``
dataclass returning :class:`Terms`, and, if it runs attacks or bounds, its ``passes`` (what a step
costs, for :mod:`kdutils.costs`). Every module of this package is imported here, so the file
registers itself: the trainer, the run store, the cost plan and the notebooks need no change.
"""

import importlib
import pkgutil

from .base import METHODS, Batch, Method, Terms, create_method, method_names, register_method

# every module of the package, so each method file registers itself (no hand-kept list)
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["METHODS", "Batch", "Method", "Terms", "create_method", "method_names", "register_method"]

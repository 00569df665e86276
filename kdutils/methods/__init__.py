"""Distillation methods: one small file each, registered by name in :data:`METHODS`.

Adding a method: write ``kdutils/methods/<name>.py`` with its pure loss in
``kdutils/losses.py`` (or a module beside it, as :mod:`kdutils.correlation`) and a
``@register_method("<name>")`` dataclass returning :class:`Terms`; import it below. The
trainer, the run store and the notebooks need no change.
"""

from . import (  # noqa: F401  (registration)
    ard,
    ce,
    cmkd,
    confidence_conditioned,
    dist,
    faithful,
    ibp_training,
    kd,
    label_revision,
    pgd_at,
    rslad,
    self_regulation,
    significance,
)
from .base import METHODS, Batch, Method, Terms, create_method, method_names, register_method

__all__ = ["METHODS", "Batch", "Method", "Terms", "create_method", "method_names", "register_method"]

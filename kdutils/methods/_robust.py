"""Checks shared by the robust and faithful methods (attack budgets, ramps, weights)."""

from __future__ import annotations

from ..core.errors import ParameterError


def check_attack(eps: float, steps: int, step_size: float | None) -> None:
    """Raise :class:`~kdutils.errors.ParameterError` for a budget PGD cannot use."""
    if not (isinstance(eps, (int, float)) and 0.0 <= eps <= 1.0):
        raise ParameterError("eps", eps, "a number in [0, 1] (pixel units: images are in [0, 1])")
    if not (isinstance(steps, int) and steps >= 1):
        raise ParameterError("steps", steps, "an int >= 1")
    if step_size is not None and not (isinstance(step_size, (int, float)) and step_size > 0):
        raise ParameterError("step_size", step_size, "a positive number or None (2.5 * eps / steps)")


def check_ramp(warmup: float, ramp: float) -> None:
    if not (0.0 <= warmup <= 1.0):
        raise ParameterError("warmup", warmup, "a fraction of training in [0, 1]")
    if not (0.0 <= ramp <= 1.0):
        raise ParameterError("ramp", ramp, "a fraction of training in [0, 1]")


def check_weight(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ParameterError(name, value, "a number in [0, 1]")

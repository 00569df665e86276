"""Errors a user can cause, each with a message that says what to do."""

from __future__ import annotations


class KDError(Exception):
    """Base class of every error kdutils raises on purpose."""


class UnknownNameError(KDError, KeyError):
    """A name (dataset, model, method, profile, parameter) that is not registered."""

    def __init__(self, kind: str, name: object, choices):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(f"unknown {kind} {name!r}; valid choices: {', '.join(self.choices)}")

    def __str__(self) -> str:  # KeyError would otherwise print the repr with quotes
        return self.args[0]


class DatasetMissingError(KDError, FileNotFoundError):
    """A dataset that is neither on disk nor downloadable (offline)."""


class NonFiniteLossError(KDError, FloatingPointError):
    """The training loss became NaN or infinite."""


class CorruptRecordError(KDError):
    """A stored run record or checkpoint could not be read."""

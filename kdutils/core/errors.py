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


class WorkerLostError(KDError, RuntimeError):
    """A pool of worker processes broke twice (a worker was killed, or ran out of memory)."""


class CorruptRecordError(KDError):
    """A stored run record or checkpoint could not be read."""


class ParameterError(KDError, ValueError):
    """A notebook parameter (or an argument of :func:`kdutils.configure`) of the wrong type or value.

    The message names the parameter, what it accepts and the value given, on one line.
    """

    def __init__(self, name: str, value: object, expected: str):
        self.name, self.value, self.expected = name, value, expected
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"parameter {name} = {shown} ({type(value).__name__}): expected {expected}")


class DeviceError(KDError, ValueError):
    """A device name torch does not know, or a device this machine does not have."""


class StorageError(KDError, OSError):
    """A file kdutils writes could not be written (no space left, read-only, permission denied).

    Raised from the ``OSError`` (``__cause__``); ``errno`` and ``path`` are kept. The message is
    one line: the cause, the path and the fix.
    """

    def __init__(self, message: str, *, errno: int | None = None, path: str | None = None):
        super().__init__(message)  # one argument: str() is the message, not "[Errno n] ..."
        self.errno, self.path = errno, path

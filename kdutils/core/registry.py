"""Name -> factory registries behind a decorator (datasets, models, methods).

Every lookup of an unknown name raises :class:`UnknownNameError`, which lists the valid
choices, so a typo in a notebook's parameters cell never ends in a deep stack trace.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@MODELS.register("lenet5")`` (default name: the object's ``__name__``)."""

        def deco(obj: T) -> T:
            key = name or obj.__name__  # type: ignore[attr-defined]
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self.names())})"


def check_choice(kind: str, value: object, choices) -> object:
    """Return ``value`` if it is one of ``choices``, else raise an error naming them."""
    if value not in choices:
        raise UnknownNameError(kind, value, [str(c) for c in choices])
    return value

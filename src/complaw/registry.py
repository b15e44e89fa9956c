"""One small registry type, used for every pluggable kind (adapters, methods, datasets, ...)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from complaw.errors import ComplawError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind; unknown names raise an error listing the known ones
    and suggesting the closest."""

    def __init__(self, kind: str, error: type[ComplawError] = ComplawError) -> None:
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""

        def decorate(item: T) -> T:
            return self.add(name, item)

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise self.error(
                f"unknown {self.kind} {name!r}; known: {known}{self.suggestion(name)}"
            ) from None

    def suggestion(self, name: str) -> str:
        """"; did you mean 'X'?" for the registered name X closest to `name` (difflib's
        similarity ratio at least 0.6), or "" when none is that close."""
        close = difflib.get_close_matches(str(name), sorted(self._items), n=1, cutoff=0.6)
        return f"; did you mean {close[0]!r}?" if close else ""

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

"""One small registry of named things (targets, spaces, tasks, samplers, acquisitions,
predictors, runners, pipeline steps).

In: ``register(name, obj)`` calls (or the ``@registry.register("name")`` decorator).
Out: ``get(name)``; an unknown name raises ``UnknownNameError`` listing the valid names.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its argument; say it plainly
        return str(self.args[0])


class Registry(Generic[T]):
    """Names to objects of one kind (``kind`` appears in error messages, e.g. "sampler")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._loaders: list[Callable[[], None]] = []

    def register(self, name: str, obj: T | None = None, *, replace: bool = False):
        """Register ``obj`` under ``name``; without ``obj``, a decorator."""
        if obj is None:
            def deco(o):
                self.register(name, o, replace=replace)
                return o
            return deco
        if name in self._items and not replace and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        self._items[name] = obj
        return obj

    def add_loader(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` (which registers more names) before the first lookup, lazily."""
        self._loaders.append(fn)

    def _load(self) -> None:
        while self._loaders:
            self._loaders.pop(0)()

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid {self.kind}s: "
                                   f"{', '.join(self.names()) or '(none)'}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self):
        self._load()
        return sorted(self._items.items())

"""Name -> factory registries, one per family of components (models, datasets, engines, spaces)."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from distill.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps the names users type (``teacher=kwt``) to factories.

    Registration happens on package import, so ``list()`` is complete once the package is loaded.
    """

    def __init__(self, family: str) -> None:
        self.family = family
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def wrap(obj: T) -> T:
            key = name or getattr(obj, "__name__")
            if key in self._items:
                raise ValueError(f"{self.family} {key!r} is registered twice")
            self._items[key] = obj
            return obj

        return wrap

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise ConfigError(f"unknown {self.family} {name!r}; known: {known}") from None

    def list(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

"""Explicit registries (register_model, register_target, ...). Failed lookups list what exists."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from edgeth.errors import EdgethError

T = TypeVar("T")


class Registry(Generic[T]):
    """name -> object. `builtins` are modules imported on the first lookup (their import
    registers what they define), so `import edgeth` loads none of them."""

    def __init__(self, kind: str, builtins: tuple[str, ...] = ()):
        self.kind = kind
        self.builtins = builtins
        self._items: dict[str, T] = {}
        self._loaded = False

    def load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            import importlib

            for mod in self.builtins:
                importlib.import_module(mod)

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        self.load_builtins()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise EdgethError(f"unknown {self.kind} {name!r}", f"choose one of: {known}") from None

    def names(self) -> list[str]:
        self.load_builtins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self.load_builtins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

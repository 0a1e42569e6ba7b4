"""Components chosen by name in a config: one `Registry` per family, one wording for a bad name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from vqclip.errors import ConfigError
from vqclip.suggest import unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """Names of one family of components (losses, optimizers, ...) mapped to what builds them.

    `key` is the config key that names a member, used in the one error wording for an
    unknown name (vqclip.suggest.unknown_name, the valid names in registration order).
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding `item` under `name`: `@LOSSES.register("tv")`."""

        def add(item: T) -> T:
            self.add(name, item)
            return item

        return add

    def add(self, name: str, item: T) -> None:
        """Add `item` under `name`; a name is registered once."""
        if name in self._items:
            raise ValueError(f"{self.key}: {name!r} is registered twice")
        self._items[name] = item

    def get(self, name: str, key: str | None = None) -> T:
        """The member called `name`; a ConfigError naming the valid names otherwise."""
        self.check(name, key)
        return self._items[name]

    def check(self, name: str, key: str | None = None) -> None:
        """Refuse a name that is not registered, listing those that are; `key` names the config
        key that chose it where that is not the registry's own (a list item, say)."""
        if name not in self._items:
            raise ConfigError(unknown_name(key or self.key, name, self._items))

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

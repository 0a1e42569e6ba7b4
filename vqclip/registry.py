"""Components chosen by name in a config: one `Registry` per family, one wording for a bad name,
and the options each member declares beside itself (a dataclass)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vqclip.errors import ConfigError, first_line
from vqclip.suggest import unknown_name, unknown_option

T = TypeVar("T")


class Registry(Generic[T]):
    """Names of one family of components (losses, optimizers, ...) mapped to what builds them.

    `key` is the config key that names a member, used in the one error wording for an
    unknown name (vqclip.suggest.unknown_name, the valid names in registration order).
    A member may declare the options it takes as a dataclass (names, types, defaults);
    `read_options` checks a config's values against it.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._items: dict[str, T] = {}
        self._options: dict[str, type] = {}

    def register(self, name: str, options: type | None = None) -> Callable[[T], T]:
        """Decorator adding `item` under `name`: `@LOSSES.register("tv")`."""

        def add(item: T) -> T:
            self.add(name, item, options)
            return item

        return add

    def add(self, name: str, item: T, options: type | None = None) -> None:
        """Add `item` under `name`, with the dataclass of its `options` if it takes any; a name
        is registered once."""
        if name in self._items:
            raise ValueError(f"{self.key}: {name!r} is registered twice")
        if options is not None and not (isinstance(options, type) and dataclasses.is_dataclass(options)):
            raise TypeError(f"{self.key}: the options of {name!r} must be a dataclass, not {options!r}")
        self._items[name] = item
        if options is not None:
            self._options[name] = options

    def get(self, name: str, key: str | None = None) -> T:
        """The member called `name`; a ConfigError naming the valid names otherwise."""
        self.check(name, key)
        return self._items[name]

    def check(self, name: str, key: str | None = None) -> None:
        """Refuse a name that is not registered, listing those that are; `key` names the config
        key that chose it where that is not the registry's own (a list item, say)."""
        if name not in self._items:
            raise ConfigError(unknown_name(key or self.key, name, self._items))

    def options(self, name: str) -> type | None:
        """The dataclass of the options `name` takes; None if it takes none."""
        return self._options.get(name)

    def option_names(self, name: str) -> list[str]:
        """The names of the options `name` takes, in declaration order."""
        options = self._options.get(name)
        return [f.name for f in dataclasses.fields(options)] if options is not None else []

    def read_options(self, name: str, values: Mapping[str, Any], key: str,
                     also: tuple[str, ...] = ()) -> Any:
        """`values` over the defaults of the options `name` takes, as its options dataclass (None
        when it takes none). `also` are keys the caller reads from `values` itself (a loss item's
        weight): passed over here, and offered by the did-you-mean of a key nobody takes,
        which is a ConfigError naming `key`.KEY; a value of the wrong type is one naming it too."""
        self.check(name)
        valid = [*also, *self.option_names(name)]
        for option in values:
            if option not in valid:
                raise ConfigError(unknown_option(key, option, valid, name))
        options = self._options.get(name)
        if options is None:
            return None
        chosen = {option: value for option, value in values.items() if option not in also}
        try:
            return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(options), chosen))
        except OmegaConfBaseException as err:
            raise ConfigError(f"{key}.{getattr(err, 'full_key', '') or '?'}: {first_line(err)}") from None

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

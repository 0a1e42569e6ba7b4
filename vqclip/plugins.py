"""Components from other packages: the entry points of the group `vqclip.components`, loaded once.

An entry point names a module (importing it registers its components) or a callable in one
(called with no arguments, it registers them). A plugin that fails is one warning line naming
it, and the run goes on without it; what it registered before failing stays registered.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from vqclip.errors import first_line

GROUP = "vqclip.components"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plugin:
    """A loaded entry point: its name, what it points at, and the package that declares it."""

    name: str
    value: str
    package: str

    def describe(self) -> str:
        """"NAME (VALUE, from PACKAGE VERSION)"."""
        return f"{self.name} ({self.value}, from {self.package})"


@functools.cache
def load_plugins() -> tuple[Plugin, ...]:
    """Load every installed entry point of the group, once per process; those that loaded."""
    return load_entry_points(entry_points(group=GROUP))


def load_entry_points(entries: Iterable[EntryPoint]) -> tuple[Plugin, ...]:
    """Import each entry point (and call it, if it names a callable); one that fails is logged
    as a warning naming it and left out."""
    loaded = []
    for entry in entries:
        try:
            target = entry.load()
            if callable(target) and not isinstance(target, ModuleType):
                target()
        except Exception as err:  # a plugin's own bug must not stop the run: say so and go on
            log.warning("plugin %s (%s) not loaded, going on without it: %s: %s", entry.name, entry.value,
                        type(err).__name__, first_line(err))
            continue
        dist = entry.dist
        package = f"{dist.name} {dist.version}" if dist is not None else "an unknown package"
        loaded.append(Plugin(entry.name, entry.value, package))
    return tuple(loaded)

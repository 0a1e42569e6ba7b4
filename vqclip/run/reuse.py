"""What one process keeps between the runs of a series: loaded models and memory plans, so that
the items of a batch, sweep or zoom load each model once and plan memory once per setting. A
single run outside a series loads its own, as it always did."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

T = TypeVar("T")

# Keys that change what an image becomes but not a step's memory: runs differing only in these
# share a memory plan.
_NOT_MEMORY = ("prompt", "negative", "image_prompts", "noise_prompts", "story", "switch_every", "seed",
               "steps", "lr", "lr_schedule", "save_every", "out", "init_weight", "init_weight_decay")


class Reuse:
    """Values made once per key and handed out again while kept."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], Any] = {}
        self._holders = 0

    @contextmanager
    def kept(self) -> Iterator[None]:
        """Within this block (a series' items) values are kept for the next run; when the
        outermost block ends they are forgotten."""
        self._holders += 1
        try:
            yield
        finally:
            self._holders -= 1
            if self._holders == 0:
                self.clear()

    def hold(self) -> None:
        """Keep values for the rest of this process (a worker or actor that serves many items)."""
        self._holders += 1

    def get(self, kind: str, key: str, make: Callable[[], T]) -> T:
        """The value of `kind` for `key`: made by `make()` the first time it is asked for while
        kept, and every time otherwise."""
        if not self._holders:
            return make()
        if (kind, key) not in self._values:
            self._values[(kind, key)] = make()
        return self._values[(kind, key)]

    def clear(self) -> None:
        """Forget everything (the models are freed once no run holds them)."""
        self._values.clear()


REUSE = Reuse()


def model_key(section: Any, device: Any, compiled: bool) -> str:
    """A model's identity: its config section, the device and whether it is compiled, and the
    size and time of every local file the section names (a changed file is loaded again)."""
    data = OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)
    files = {str(value): _file_version(value) for value in data.values()
             if isinstance(value, str) and Path(value).is_file()}
    return json.dumps({"section": data, "device": str(device), "compiled": compiled, "files": files},
                      sort_keys=True, default=str)


def memory_key(cfg: DictConfig, device: Any) -> str:
    """The settings a step's memory depends on: the config without what only changes the image."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in _NOT_MEMORY:
        data.pop(key, None)
    return json.dumps({"config": data, "device": str(device)}, sort_keys=True, default=str)


def _file_version(path: str) -> list[int]:
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]

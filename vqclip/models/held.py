"""Loaded models, held by whoever makes the images: a single run, a series (batch, sweep, zoom),
a pool worker, a Ray actor, a library user. Each model loads once per holder and is handed out
again to every later run that names it; a run naming a model not held yet loads it then."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from vqclip.models.sources import clip_sections

if TYPE_CHECKING:
    import torch

    from vqclip.models.clip import Perceptor
    from vqclip.models.vqgan import VQGAN

T = TypeVar("T")
M = TypeVar("M", "VQGAN", "Perceptor")


class Models:
    """The models one holder has loaded, by identity (config section, device, compiled or not,
    and the size and time of each local file it names: a changed file loads again), the
    copies of them that bf16 steps run (`autocast_copy`), and the memory plans made for them.
    Dropping the holder frees them once no run uses them."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], Any] = {}

    def vqgan(self, section: Any, device: torch.device,
              compiled: bool = False) -> tuple[VQGAN, dict[str, Any]]:
        """The VQGAN a `vqgan` config section names on `device`, with its name and checksums."""
        from vqclip.models import loading  # torch and the model code: once a model is needed

        return self._keep("vqgan", model_key(section, device, compiled),
                          lambda: loading.load_generator_model(section, device))

    def clip(self, section: Any, device: torch.device,
             compiled: bool = False) -> tuple[Perceptor, dict[str, Any]]:
        """The CLIP a `clip` config section (or ensemble member) names on `device`, with its
        name, tag and weights checksum."""
        from vqclip.models import loading

        return self._keep("clip", model_key(section, device, compiled),
                          lambda: loading.load_clip_model(section, device))

    def autocast_copy(self, model: M, dtype: torch.dtype | None) -> M:
        """`model` as a step under autocast to `dtype` runs it: its `autocast_copy(dtype)`,
        made once per model and dtype; `model` itself where the step runs without autocast
        (`dtype` None)."""
        if dtype is None:
            return model
        # The original is kept with its copy, so its id names it for as long as this holder lives.
        _, copied = self._keep("autocast copy", f"{id(model)} {dtype}",
                               lambda: (model, model.autocast_copy(dtype)))
        return copied

    def memory_plan(self, key: str, make: Callable[[], T]) -> T:
        """The memory plan of the setting `key` on these models: made by `make()` once."""
        return self._keep("memory plan", key, make)

    def load(self, cfg: DictConfig, device: torch.device) -> Models:
        """Load every model the run config `cfg` names (its VQGAN if it draws with one, each
        CLIP) on `device`, as its runs will ask for them; returns itself."""
        if cfg.generator == "vqgan":
            self.vqgan(cfg.vqgan, device, cfg.compile)
        for _, section in clip_sections(cfg):
            self.clip(section, device, cfg.compile)
        return self

    def __len__(self) -> int:
        """How many models are held."""
        return sum(kind in ("vqgan", "clip") for kind, _ in self._held)

    def _keep(self, kind: str, key: str, make: Callable[[], T]) -> T:
        if (kind, key) not in self._held:
            self._held[(kind, key)] = make()
        return self._held[(kind, key)]


def model_key(section: Any, device: Any, compiled: bool) -> str:
    """A model's identity: its config section, the device, whether it is compiled, and the size
    and time of every local file the section names."""
    data = OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)
    data.pop("weight", None)  # an ensemble member's weight changes the loss, not the model
    files = {str(value): _file_version(value) for value in data.values()
             if isinstance(value, str) and Path(value).is_file()}
    return json.dumps({"section": data, "device": str(device), "compiled": compiled, "files": files},
                      sort_keys=True, default=str)


def _file_version(path: str) -> list[int]:
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]

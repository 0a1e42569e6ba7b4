"""Where a run's CLIPs come from: the config sections that name them, and the prefixes of a
CLIP model name that say where its files are, instead of open_clip's names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOCAL_DIR, HF_HUB = "local-dir:", "hf-hub:"
# A model named with one of these brings its own weights: a pretrained tag does not apply.
SELF_CONTAINED_CLIP = (LOCAL_DIR, HF_HUB)


def clip_sections(cfg: Any) -> list[tuple[str, Any]]:
    """(key, section) of each CLIP of the run config `cfg`: each member of `clip.models` for an
    ensemble ("clip.models.0", ...), else `clip` itself."""
    if cfg.clip.models:
        return [(f"clip.models.{index}", member) for index, member in enumerate(cfg.clip.models)]
    return [("clip", cfg.clip)]


def clip_label(name: str) -> str:
    """A CLIP's short name: a local-dir: one by its folder, an hf-hub: one by its repository,
    any other as it is."""
    if name.startswith(LOCAL_DIR):
        return Path(name.removeprefix(LOCAL_DIR)).name
    return name.removeprefix(HF_HUB)

"""The CLIP of classify, search and score: merged from the config sources as generate merges
them, described and checked from its config before any weight is read, then loaded."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vqclip.models.clip import Perceptor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskClip:
    """A CLIP checked for a task: its config section (one model and its tag) and the device it
    runs on."""

    section: Any
    device: str

    def load(self) -> tuple[Perceptor, dict[str, Any]]:
        """Load it (bundled, cached, or downloaded unless offline), with its provenance."""
        return load_task_perceptor(self.section, self.device)


def task_clip(*, model: str | None = None, pretrained: str | None = None, device: str | None = None,
              preset: str | None = None, config_files: Sequence[str | Path] = (),
              sets: Sequence[str] = (), source: str = "keyword arguments") -> TaskClip:
    """The CLIP these settings name, checked; nothing is loaded or downloaded.

    They merge as generate's do: defaults < `preset` < `config_files` < `model`, `pretrained`
    and `device` (None: left to the layers below; a bad value is named as coming from `source`)
    < `sets` (KEY=VALUE items, as -s takes them). The config is checked as generate checks it,
    then the model's name and weights file from its config, the device, and last the tag in
    open_clip's table (which imports open_clip)."""
    from vqclip.device import resolve_device
    from vqclip.models.clip_config import check_clip_tag, clip_facts
    from vqclip.run.config import build_config

    named = {key: value for key, value in (("model", model), ("pretrained", pretrained))
             if value is not None}
    cfg, _ = build_config(preset=preset, config_files=list(config_files),
                          flags={"device": device, "clip": named or None}, dotlist=list(sets),
                          flags_source=source)
    key, section = task_member(cfg.clip)
    facts = clip_facts(key, section.model, section.pretrained)
    resolve_device(cfg.device)
    check_clip_tag(facts)
    return TaskClip(section, cfg.device)


def task_member(clip: Any) -> tuple[str, Any]:
    """The CLIP of a `clip` config section that a task uses, and its config key: the first
    member of an ensemble (clip.models), with a warning, else the section itself."""
    members = list(getattr(clip, "models", None) or [])
    if not members:
        return "clip", clip
    # embeddings of different CLIPs live in different spaces: these jobs use one model
    log.warning("the config names a CLIP ensemble (clip.models); using its first member, %s",
                members[0].model)
    return "clip.models.0", members[0]


def load_task_perceptor(clip: Any, device: str) -> tuple[Perceptor, dict[str, Any]]:
    """Load the CLIP that `clip` (a model and its tag, or a `clip` config section) names, on
    `device` ("auto", "cpu", "cuda:1", ...), with its provenance; unchecked, see `task_clip`."""
    from vqclip.device import resolve_device
    from vqclip.models.loading import load_clip_model

    _, member = task_member(clip)
    return load_clip_model(member, resolve_device(device))

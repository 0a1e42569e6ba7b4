"""Turn the `vqgan` and `clip` config sections into loaded, frozen models and their provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vqclip.errors import ModelError
from vqclip.files import cached_sha256, not_a_file
from vqclip.models.clip import Perceptor, load_perceptor
from vqclip.models.sources import SELF_CONTAINED_CLIP, clip_sections
from vqclip.models.vqgan import VQGAN, load_vqgan


def vqgan_files(section: Any) -> tuple[str, Path, Path]:
    """(display name, config path, checkpoint path) for the `vqgan` config section."""
    if section.config is not None:
        config, checkpoint = Path(section.config), Path(section.checkpoint)
        for label, path in (("vqgan.config", config), ("vqgan.checkpoint", checkpoint)):
            if (why := not_a_file(path)) is not None:
                raise ModelError(f"{label}: {why}: {path}")
        return checkpoint.name, config, checkpoint
    from vqclip.models.catalog import resolve_vqgan

    config, checkpoint = resolve_vqgan(section.model)
    return section.model, Path(config), Path(checkpoint)


def load_generator_model(section: Any, device: torch.device) -> tuple[VQGAN, dict[str, Any]]:
    """Load the VQGAN the config names; return it with its name and file checksums."""
    name, config, checkpoint = vqgan_files(section)
    model = load_vqgan(config, checkpoint, device=device)
    if section.config is None:
        _check_entry_facts(section.model, model)
    info = {"name": name, "config_sha256": cached_sha256(config),
            "checkpoint_sha256": cached_sha256(checkpoint)}
    return model, info


def _check_entry_facts(name: str, model: VQGAN) -> None:
    """A registry entry's facts checked runs before the model loaded: one the model contradicts
    is refused, so that a wrong entry cannot pass a size it draws wrongly."""
    from vqclip.models.catalog import get_entry

    entry = get_entry(name, kind="vqgan")
    spec = model.spec
    if (wrong := entry.contradiction(spec.factor, spec.n_embed, spec.embed_dim)) is not None:
        key, stated, actual = wrong
        raise ModelError(f"model {name!r}: its registry entry ({entry.origin}) says {key} {stated}, "
                         f"but the model loaded has {actual}; correct the entry")


def _cached_clip_weights(model: str, tag: str) -> Path:
    """Offline, a CLIP tag must already be in the cache: fail at once instead of after a timeout."""
    from vqclip.models.clip_cache import cached_weights

    path = cached_weights(model, tag)
    if path is None:
        raise ModelError(
            f"CLIP {model}/{tag} is not in the cache and offline mode is on; get it with "
            f"`vqclip models download {model}/{tag}` (online), or pass a weights file as "
            "clip.pretrained"
        )
    return path


def _open_clip_names(section: Any) -> tuple[str, str | None]:
    """open_clip (model, tag or weights file) of a `clip` section (registry names resolved)."""
    if section.model.startswith(SELF_CONTAINED_CLIP):
        return section.model, section.pretrained
    from vqclip.models.catalog import resolve_clip

    return resolve_clip(section.model, section.pretrained)


def check_offline(cfg: Any) -> None:
    """Offline (--offline, VQCLIP_OFFLINE or HF_HUB_OFFLINE), every model the run config `cfg`
    names must be on this machine: a named VQGAN bundled, converted or downloaded, each CLIP's
    tagged weights cached. A missing one is a ModelError saying how to get it, before any model
    loads. Online, nothing is checked here: a missing model is downloaded when it loads."""
    from vqclip.models.cache import Cache, offline_requested

    if not offline_requested():
        return
    if cfg.generator == "vqgan" and cfg.vqgan.config is None:
        from vqclip.models.catalog import get_entry
        from vqclip.models.store import check_on_this_machine

        check_on_this_machine(get_entry(cfg.vqgan.model, kind="vqgan"), Cache.default())
    for _, section in clip_sections(cfg):
        model_name, pretrained = _open_clip_names(section)
        if pretrained and not Path(pretrained).is_file():
            _cached_clip_weights(model_name, pretrained)


def load_clip_model(section: Any, device: torch.device) -> tuple[Perceptor, dict[str, Any]]:
    """Load the CLIP the config names (registry names such as shapes_clip included)."""
    from vqclip.models.cache import offline_requested  # brings in the download code: import late

    model_name, pretrained = _open_clip_names(section)
    if pretrained and not Path(pretrained).is_file() and offline_requested():
        pretrained = str(_cached_clip_weights(model_name, pretrained))
    perceptor = load_perceptor(model_name, pretrained, device)
    info: dict[str, Any] = {"name": section.model, "pretrained": section.pretrained}
    if pretrained and Path(pretrained).is_file():
        info["pretrained_sha256"] = cached_sha256(pretrained)
    return perceptor, info


def _amount(size: int | None) -> str:
    if not size:
        return "size unknown"
    return f"{size / 1e6:.1f} MB" if size < 10e6 else f"{size / 1e6:,.0f} MB"


def _vqgan_status(section: Any) -> str:
    from vqclip.models.cache import Cache
    from vqclip.models.catalog import get_entry

    if section.config is not None:
        checkpoint = Path(section.checkpoint)
        size = checkpoint.stat().st_size if checkpoint.is_file() else None
        return f"VQGAN {checkpoint.name} ({_amount(size)})"
    try:
        entry = get_entry(section.model, kind="vqgan")
    except ModelError:
        return f"VQGAN {section.model}"  # loading it says what is wrong
    if entry.bundled:
        return f"VQGAN {entry.name} (bundled)"
    where = "cached" if Cache.default().converted_files(entry.name) else "to download"
    return f"VQGAN {entry.name} ({_amount(entry.size)}, {where})"


def _clip_status(model: str, pretrained: str | None) -> str:
    from vqclip.models.catalog import get_entry, resolve_clip

    if model.startswith(SELF_CONTAINED_CLIP):
        return f"CLIP {model}"
    try:
        entry = get_entry(model, kind="clip")
    except ModelError:
        entry = None
    if entry is not None and entry.bundled:
        return f"CLIP {model} (bundled)"
    name, tag = resolve_clip(model, pretrained)
    if not tag or Path(tag).is_file():
        return f"CLIP {name}" + (f" ({Path(tag).name})" if tag else "")
    from vqclip.models.clip_cache import cached_weights

    try:
        where = "cached" if cached_weights(name, tag) else "to download"
    except Exception:  # noqa: BLE001 - an unknown tag: loading it says what is wrong
        where = "unknown tag"
    return f"CLIP {name}/{tag} ({where})"


def describe_models(cfg: Any) -> str:
    """Which models a run loads, their size and whether they are bundled, cached or to download,
    read from the catalog and the cache without loading anything (for a status line)."""
    parts = [_vqgan_status(cfg.vqgan)] if cfg.generator == "vqgan" else []
    parts += [_clip_status(member.model, member.pretrained) for _, member in clip_sections(cfg)]
    return ", ".join(parts)

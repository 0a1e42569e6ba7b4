"""CLIP weights in open_clip's own cache (the Hugging Face hub cache): status and download."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vqclip.errors import DownloadError, ModelError, first_line
from vqclip.models.cache import folder_size
from vqclip.suggest import unknown_name

if TYPE_CHECKING:
    from vqclip.models.entry import ModelEntry

# open_clip fetches the safetensors file when a hub repo has one, else the .bin.
_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def list_open_clip() -> list[str]:
    """Every open_clip pretrained pair as MODEL/TAG."""
    import open_clip

    return [f"{model}/{tag}" for model, tag in open_clip.list_pretrained()]


def _split(name: str) -> tuple[str, str]:
    model, _, tag = name.partition("/")
    if not model or not tag:
        raise ModelError(f"{name!r}: expected an open_clip MODEL/TAG such as ViT-B-32/openai")
    return model, tag


def pretrained_cfg(model: str, tag: str, key: str = "pretrained") -> dict[str, Any]:
    """open_clip's entry of the weights `tag` of `model`; a tag it has none for is an unknown
    name, given as `key`, among the model's tags."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        listed = None if tags else f"none, open_clip has no weights for {model}"
        raise ModelError(unknown_name(key, tag, tags, listed=listed))
    return cfg


def cached_weights(model: str, tag: str) -> Path | None:
    """The cached weights file of an open_clip MODEL/TAG, or None."""
    from huggingface_hub import try_to_load_from_cache

    cfg = pretrained_cfg(model, tag)
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)  # "org/repo/" or "org/repo/file.bin"
        for candidate in ([filename] if filename else []) + list(_HUB_FILES):
            found = try_to_load_from_cache(repo, candidate)
            if isinstance(found, str):
                return Path(found)
    url = cfg.get("url", "")
    if url:
        path = Path("~/.cache/clip").expanduser() / os.path.basename(url)
        if path.is_file():
            return path
    return None


def open_clip_status(name: str) -> dict[str, Any]:
    """What `models list` shows for an open_clip MODEL/TAG."""
    try:
        path = cached_weights(*_split(name))
    except ModelError:
        path = None
    return {"cached": path is not None, "size": path.stat().st_size if path else None,
            "verified": "open_clip cache", "path": str(path) if path else None,
            "licence": "", "source": "open_clip"}


def registry_clip_status(entry: ModelEntry) -> dict[str, Any]:
    """What `models list` shows for a registry CLIP entry (a local folder or an alias)."""
    if entry.path is not None:
        present = (entry.path / "open_clip_config.json").is_file()
        return {"cached": present, "size": folder_size(entry.path) or None,
                "verified": "bundled", "path": str(entry.path)}
    status = open_clip_status(f"{entry.model}/{entry.pretrained}")
    return {k: status[k] for k in ("cached", "size", "verified", "path")}


def download_open_clip(name: str, *, offline: bool) -> Path:
    """Fetch an open_clip MODEL/TAG into open_clip's cache; its file's path."""
    model, tag = _split(name)
    cfg = pretrained_cfg(model, tag)
    found = cached_weights(model, tag)
    if found is not None:
        return found
    if offline:
        raise ModelError(f"CLIP {name} is not cached and offline mode is on; run "
                         f"`vqclip models download {name}` while online")
    import open_clip

    try:
        return Path(open_clip.download_pretrained(cfg))
    except Exception as err:  # hub and url downloads raise many types; one line is enough
        first = first_line(err)
        raise DownloadError(f"could not download CLIP {name}: {first}") from None


def download_registry_clip(entry: ModelEntry, *, offline: bool) -> Path:
    """A registry CLIP: its bundled folder, or the open_clip weights it aliases."""
    if entry.path is not None:
        if not (entry.path / "open_clip_config.json").is_file():
            raise ModelError(f"CLIP {entry.name!r}: {entry.path} is not an open_clip local-dir "
                             "folder (open_clip_config.json is missing)")
        return entry.path
    return download_open_clip(f"{entry.model}/{entry.pretrained}", offline=offline)

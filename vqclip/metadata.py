"""What a final PNG records about its run: a `vqclip` JSON chunk and an A1111 `parameters` chunk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from vqclip import __version__
from vqclip.errors import UsageError

CHUNK = "vqclip"


def build_record(config: dict[str, Any], models: dict[str, Any],
                 batch: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON stored in the image: version, prompt, seed, resolved config, models, and the
    batch it was made in (size, index, seeds) when it was one of several."""
    record = {
        "version": __version__,
        "prompt": config["prompt"],
        "seed": config["seed"],
        "config": config,
        "models": models,
    }
    if batch is not None:
        record["batch"] = batch
    return record


def a1111_parameters(record: dict[str, Any]) -> str:
    """The `parameters` text A1111-aware tools show: prompt line, then a settings line."""
    config = record["config"]
    width, height = config["size"]
    models = record["models"]
    generator = models.get(config.get("generator", "vqgan"), {}).get("name", "?")
    clips = models.get("clip", {})
    clip = "+".join(c["name"] for c in clips) if isinstance(clips, list) else clips.get("name", "?")
    settings = [
        f"Steps: {config['steps']}",
        f"Seed: {config['seed']}",
        f"Size: {width}x{height}",
        f"Model: {generator}",
        f"CLIP: {clip}",
        f"Cutn: {config['cutn']}",
        f"Lr: {config['lr']}",
        f"Optimizer: {config['optimizer']['name']}",
        f"Version: vqclip {record['version']}",
    ]
    return f"{config['prompt']}\n" + ", ".join(settings)


def png_info(record: dict[str, Any]) -> PngImagePlugin.PngInfo:
    """PNG text chunks for a record: iTXt `vqclip` (JSON, UTF-8) and tEXt-style `parameters`."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(CHUNK, json.dumps(record, sort_keys=True))
    info.add_itxt("parameters", a1111_parameters(record))
    return info


def read_record(path: str | Path) -> dict[str, Any]:
    """The record stored in an image written by vqclip; a usage error if there is none."""
    try:
        with Image.open(path) as image:
            image.load()
            text = image.info.get(CHUNK)
    except FileNotFoundError:
        raise UsageError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UsageError(f"cannot read image {path}: {err}") from None
    if text is None:
        raise UsageError(f"{path} has no vqclip settings (was it written by vqclip?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise UsageError(f"{path}: the vqclip chunk is not valid JSON") from None

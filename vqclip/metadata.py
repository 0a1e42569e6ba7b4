"""What a final PNG records about its run: a `vqclip` JSON chunk and an A1111 `parameters` chunk."""

from __future__ import annotations

import json
import re
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


def _setting(value: Any) -> str:
    """A value as A1111-reading tools split the settings line: no comma, colon or line break inside."""
    return " ".join(re.sub(r"[,:\r\n]", " ", str(value)).split())


def _model_label(name: str) -> str:
    """A model's short name: a local-dir: CLIP by its folder, an hf-hub: one by its repository."""
    if name.startswith("local-dir:"):
        return Path(name.removeprefix("local-dir:")).name
    return name.removeprefix("hf-hub:")


def a1111_parameters(record: dict[str, Any]) -> str:
    """The `parameters` text A1111-aware tools read: prompt line, negative prompt line, settings line.

    The settings follow A1111's order (Steps, Sampler, Seed, Size, Model hash, Model), the
    optimizer standing in for the sampler; vqclip's own keys come after. There is no CFG scale.
    """
    config = record["config"]
    width, height = config["size"]
    models = record["models"]
    generator = models.get(config.get("generator", "vqgan"), {})
    clips = models.get("clip", {})
    clip = "+".join(_model_label(c["name"]) for c in clips) if isinstance(clips, list) \
        else _model_label(clips.get("name", "?"))
    settings = [
        ("Steps", config["steps"]),
        ("Sampler", config["optimizer"]["name"]),
        ("Seed", config["seed"]),
        ("Size", f"{width}x{height}"),
    ]
    if generator.get("checkpoint_sha256"):
        settings.append(("Model hash", generator["checkpoint_sha256"][:10]))
    settings += [
        ("Model", _model_label(generator.get("name", config.get("generator", "?")))),
        ("CLIP", clip),
        ("Cutn", config["cutn"]),
        ("Cut pow", config["cut_pow"]),
        ("Lr", config["lr"]),
        ("Version", f"vqclip {record['version']}"),
    ]
    lines = [config["prompt"]]
    if config.get("negative"):
        lines.append(f"Negative prompt: {config['negative']}")
    lines.append(", ".join(f"{key}: {_setting(value)}" for key, value in settings))
    return "\n".join(lines)


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

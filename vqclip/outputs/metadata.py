"""What a final PNG records about its run: a `vqclip` JSON chunk and an A1111 `parameters` chunk."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from PIL import PngImagePlugin, UnidentifiedImageError

from vqclip.errors import UsageError
from vqclip.images import UnusableImage, open_image, read_image_file
from vqclip.models.sources import clip_label
from vqclip.version import __version__

CHUNK = "vqclip"
# what `show` prints of a record's config, and the types it must have
RECORD_KEYS: dict[str, tuple[type, ...]] = {
    "prompt": (str,), "seed": (int, type(None)), "size": (list,), "steps": (int,),
    "cutn": (int,), "lr": (float, int),
}


def build_record(config: dict[str, Any], models: dict[str, Any], batch: dict[str, Any] | None = None,
                 inputs: dict[str, str] | None = None, *,
                 candidates: dict[str, Any] | None = None, start: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The JSON stored in the image: version, prompt, seed, resolved config, models, the batch it
    was made in (size, index, seeds) when it was one of several, the sha256 of its input image
    files by path, with --candidates the race it won (every seed's score, the winner), and with
    a start picked among several (`init_noise: shapes`) every choice's score and the pick."""
    record = {
        "version": __version__,
        "prompt": config["prompt"],
        "seed": config["seed"],
        "config": config,
        "models": models,
    }
    if batch is not None:
        record["batch"] = batch
    if inputs:
        record["inputs"] = inputs
    if candidates is not None:
        record["candidates"] = candidates
    if start is not None:
        record["start"] = start
    return record


def _setting(value: Any) -> str:
    """A value as A1111-reading tools split the settings line: no comma, colon or line break inside."""
    return " ".join(re.sub(r"[,:\r\n]", " ", str(value)).split())


def _model_label(model: Any, fallback: str = "?") -> str:
    """A recorded model's short name (`fallback` without one): a local-dir: CLIP by its folder,
    an hf-hub: one by its repository."""
    return clip_label(str(model.get("name", fallback)) if isinstance(model, dict) else fallback)


def a1111_parameters(record: dict[str, Any]) -> str:
    """The `parameters` text A1111-aware tools read: prompt line, negative prompt line, settings line.

    The settings follow A1111's order (Steps, Sampler, Seed, Size, Model hash, Model), the
    optimizer standing in for the sampler; vqclip's own keys come after. There is no CFG scale.
    """
    config = record["config"]
    width, height = config["size"]
    models = record.get("models", {})
    generator = models.get(config.get("generator", "vqgan"))
    generator = generator if isinstance(generator, dict) else {}
    clips = models.get("clip")
    clip = "+".join(_model_label(c) for c in clips) if isinstance(clips, list) else _model_label(clips)
    settings = [
        ("Steps", config["steps"]),
        ("Sampler", config["optimizer"]["name"]),
        ("Seed", config["seed"]),
        ("Size", f"{width}x{height}"),
    ]
    if generator.get("checkpoint_sha256"):
        settings.append(("Model hash", str(generator["checkpoint_sha256"])[:10]))
    settings += [
        ("Model", _model_label(generator, str(config.get("generator", "?")))),
        ("CLIP", clip),
        ("Cutn", config["cutn"]),
        ("Cut pow", config.get("cut_pow", "?")),
        ("Lr", config["lr"]),
        ("Version", f"vqclip {record.get('version', '?')}"),
    ]
    lines = [config["prompt"]]
    if isinstance(config.get("negative"), str) and config["negative"]:
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
    """The record stored in an image written by vqclip; a usage error if there is none, or
    if it is not the shape vqclip writes."""
    try:
        with open_image(read_image_file(path)) as image:
            image.load()
            text = image.info.get(CHUNK)
    except FileNotFoundError:
        raise UsageError(f"image not found: {path}") from None
    except (UnidentifiedImageError, UnusableImage, ValueError) as err:
        raise UsageError(f"cannot read image {path}: {err}") from None
    except OSError as err:
        raise UsageError(f"cannot read image {path}: {err.strerror or err}") from None
    if text is None:
        raise UsageError(f"{path} has no vqclip settings (was it written by vqclip?)")
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        raise UsageError(f"{path}: the vqclip chunk is not valid JSON") from None
    problem = _record_problem(record)
    if problem:
        raise UsageError(f"{path}: the vqclip chunk is not a settings record ({problem})")
    return record


def _record_problem(record: Any) -> str | None:
    """What is wrong with the shape of a record read from an image, or None."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    config = record.get("config")
    if not isinstance(config, dict):
        return "no config object"
    if not isinstance(record.get("models", {}), dict):
        return "models is not an object"
    for key, kinds in RECORD_KEYS.items():
        if not isinstance(config.get(key), kinds) or isinstance(config.get(key), bool):
            return f"config.{key} is missing or not a {kinds[0].__name__}"
    size = config["size"]
    if len(size) != 2 or not all(isinstance(side, int) for side in size):
        return "config.size is not [width, height]"
    if not isinstance(config.get("optimizer"), dict) or "name" not in config["optimizer"]:
        return "config.optimizer has no name"
    return None

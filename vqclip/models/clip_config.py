"""A CLIP described from configs alone: open_clip's model configs, read as the JSON files it
ships (importing open_clip takes seconds), a local-dir folder's open_clip_config.json, a
hub repo's config in the hub cache, and the header of a .safetensors weights file."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from vqclip.errors import ConfigError, ModelError
from vqclip.files import not_a_file
from vqclip.models.catalog import load_registry, resolve_clip
from vqclip.models.checkpoint import safetensors_shapes
from vqclip.models.facts import ClipFacts
from vqclip.models.sources import HF_HUB, LOCAL_DIR, SELF_CONTAINED_CLIP
from vqclip.suggest import unknown_name

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def clip_facts(key: str, name: str, pretrained: str | None) -> ClipFacts:
    """The CLIP of config section `key` (`clip` or `clip.models.N`) named `name`, with its tag or
    weights file `pretrained`; an unknown name or a missing file is an error naming the key."""
    model, tag = resolve_clip(name, pretrained)
    files: list[Path] = []
    if model.startswith(LOCAL_DIR):
        folder = Path(model[len(LOCAL_DIR):])
        config_path = folder / "open_clip_config.json"
        if not folder.is_dir():
            raise ModelError(f"{key}.model={name}: folder not found: {folder}")
        if not config_path.is_file():
            raise ModelError(f"{key}.model={name}: {folder} is not an open_clip local-dir folder "
                             "(open_clip_config.json is missing)")
        model_cfg = _read_json(config_path, key, name).get("model_cfg")
        files = [config_path, *_weights_in(folder)]
    elif model.startswith(HF_HUB):
        # Read from the hub cache only (checking never downloads): before the first download
        # the repo's config, and so its sizes, are unknown until the model loads.
        config_path = _hub_cached_config(model[len(HF_HUB):])
        model_cfg = _read_json(config_path, key, name).get("model_cfg") if config_path else None
        files = [config_path] if config_path else []
    else:
        model_cfg = open_clip_model_config(model)
        if model_cfg is None:
            known = sorted({*open_clip_model_names(),
                            *(n for n, e in load_registry().items() if e.kind == "clip")})
            # The hundreds of valid names are left to the command that lists them.
            raise ConfigError(unknown_name(f"{key}.model", name, known, listed=(
                "a registry CLIP or an open_clip model (`vqclip models list --all-clip` lists them)")))
    if tag and _is_path(tag):
        if (why := not_a_file(tag)) is not None:
            raise ModelError(f"{key}.pretrained={tag}: {why}")
        files.append(Path(tag))
    input_size, embed_dim = _sizes(model_cfg)
    facts = ClipFacts(key, name, model, tag, input_size, embed_dim, tuple(files))
    _check_weights_fit(facts)
    return facts


def check_clip_tag(facts: ClipFacts) -> None:
    """An open_clip tag must name weights open_clip knows for the model; this imports open_clip
    (seconds), so it runs after every quicker check."""
    if not facts.pretrained or _is_path(facts.pretrained) or facts.model.startswith(SELF_CONTAINED_CLIP):
        return
    from vqclip.models.clip_cache import pretrained_cfg

    try:
        pretrained_cfg(facts.model.replace("/", "-"), facts.pretrained, f"{facts.key}.pretrained")
    except ModelError as err:
        raise ConfigError(str(err)) from None


def open_clip_model_config(name: str) -> dict[str, Any] | None:
    """open_clip's config of model `name` ("ViT-B/32" is "ViT-B-32" there, as in open_clip), or
    None. Once open_clip is imported its registry answers, which also holds the configs added
    with `open_clip.add_model_config`; before, the JSON files it ships."""
    name = name.replace("/", "-")
    if "open_clip" in sys.modules:
        import open_clip

        return open_clip.get_model_config(name)
    folder = _configs_dir()
    path = folder / f"{name}.json" if folder is not None else None
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def open_clip_model_names() -> list[str]:
    """Every model name open_clip has a config for."""
    if "open_clip" in sys.modules:
        import open_clip

        return list(open_clip.list_models())
    folder = _configs_dir()
    return sorted(path.stem for path in folder.glob("*.json")) if folder is not None else []


def _configs_dir() -> Path | None:
    spec = importlib.util.find_spec("open_clip")  # finds the package without running it
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) / "model_configs" if locations else None


def _hub_cached_config(repo: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "open_clip_config.json")
    return Path(found) if isinstance(found, str) else None


def _read_json(path: Path, key: str, name: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{key}.model={name}: {path} is not readable JSON: {err}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{key}.model={name}: {path} is not a JSON object")
    return data


def _weights_in(folder: Path) -> list[Path]:
    """The weights file open_clip takes from a local-dir folder (safetensors first)."""
    found = sorted((p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file()),
                   key=lambda p: (p.suffix != ".safetensors", p.name))
    return found[:1]


def _is_path(tag: str) -> bool:
    """A weights file rather than an open_clip tag (tags hold no slashes or file suffixes)."""
    return Path(tag).is_file() or "/" in tag or "\\" in tag or tag.lower().endswith(_WEIGHT_SUFFIXES)


def _sizes(model_cfg: Any) -> tuple[int | None, int | None]:
    """(input size, embedding length) from an open_clip model config; None where it is silent."""
    if not isinstance(model_cfg, dict):
        return None, None
    vision = model_cfg.get("vision_cfg")
    size = vision.get("image_size") if isinstance(vision, dict) else None
    size = size[0] if isinstance(size, (list, tuple)) and size else size
    embed = model_cfg.get("embed_dim")
    return (size if isinstance(size, int) else None), (embed if isinstance(embed, int) else None)


def _check_weights_fit(facts: ClipFacts) -> None:
    """A .safetensors weights file whose text projection (read from its header) makes
    embeddings of another length than the config says is refused before it loads."""
    if facts.embed_dim is None:
        return
    for path in facts.files:
        if path.suffix != ".safetensors":
            continue
        shape = safetensors_shapes(path).get("text_projection")
        if shape and shape[-1] != facts.embed_dim:
            raise ModelError(f"{facts.key}: weights {path} make embeddings of {shape[-1]}, but the "
                             f"config of {facts.model} says {facts.embed_dim}")

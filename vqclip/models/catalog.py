"""Named models as data: the built-in table, the user's registry files, and name resolution.

Sources, later ones winning for the same name: the table in known_models.yaml, then
$VQCLIP_HOME/models.yaml, then a `--registry FILE`. CLIP names that no registry holds go to
open_clip unchanged (its own `list_pretrained()` is the registry for those).
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vqclip.errors import ConfigError, ModelError, first_line
from vqclip.models.cache import Cache, offline_requested, vqclip_home
from vqclip.models.download import is_url
from vqclip.models.entry import ModelEntry
from vqclip.models.sources import SELF_CONTAINED_CLIP
from vqclip.models.store import ensure_vqgan
from vqclip.suggest import unknown_name

__all__ = [
    "ModelEntry",
    "get_entry",
    "load_registry",
    "resolve_clip",
    "resolve_vqgan",
    "vqclip_home",
]

KINDS = ("vqgan", "clip")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEYS = {
    "kind", "description", "config", "checkpoint", "sha256", "config_sha256", "size",
    "licence", "license", "source", "path", "model", "pretrained", "factor", "n_embed", "embed_dim",
}
FACTS = ("factor", "n_embed", "embed_dim")  # a VQGAN's architecture, as its config states it
BUILTIN = "built-in registry (vqclip/models/known_models.yaml)"


def _local(value: str, base: Path) -> str:
    """A URL unchanged, a local path made absolute against the registry file's folder."""
    if is_url(value):
        return value
    path = Path(os.path.expandvars(value)).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _parse_entry(name: str, raw: Any, origin: str, base: Path) -> ModelEntry:
    where = f"{origin}: models.{name}"

    def bad(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}.{key}: {problem}")

    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{origin}: models.{name}: a model name may hold letters, digits, _ . -")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(raw).__name__}")
    for key in raw:
        if key not in _KEYS:
            raise ConfigError(f"{where}: {unknown_name('key', key, sorted(_KEYS))}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{origin}: {unknown_name(f'models.{name}.kind', kind, KINDS)}")
    for key in ("description", "config", "sha256", "config_sha256", "licence", "license",
                "source", "path", "model", "pretrained"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise bad(key, f"must be a string, got {type(raw[key]).__name__}")

    checkpoint = raw.get("checkpoint")
    if isinstance(checkpoint, str):
        checkpoint = [checkpoint]
    if checkpoint is not None and (
        not isinstance(checkpoint, list)
        or not checkpoint
        or not all(isinstance(c, str) and c for c in checkpoint)
    ):
        raise bad("checkpoint", "must be a URL or path, or a non-empty list of them")
    hashes = {}
    for key in ("sha256", "config_sha256"):
        value = raw.get(key)
        if value is not None:
            value = value.strip().lower().removeprefix("sha256:")
            if not _HEX64.match(value):
                raise bad(key, "must be 64 hexadecimal digits")
        hashes[key] = value
    size = raw.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise bad("size", f"must be a positive number of bytes, got {size!r}")

    facts = {key: raw.get(key) for key in FACTS}
    for key, value in facts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise bad(key, f"must be a positive whole number, got {value!r}")
    if facts["factor"] is not None and facts["factor"] & (facts["factor"] - 1):
        raise bad("factor", f"must be a power of two (2 ** (len(ch_mult) - 1)), got {facts['factor']}")

    path = raw.get("path")
    if kind == "vqgan":
        if path is None and (raw.get("config") is None or checkpoint is None):
            raise bad("checkpoint" if raw.get("config") else "config",
                      "a vqgan needs `config` and `checkpoint` (or `path` to a folder)")
        if path is not None and (raw.get("config") or checkpoint):
            raise bad("path", "give either `path` or `config` + `checkpoint`, not both")
        for key in ("model", "pretrained"):
            if raw.get(key) is not None:
                raise bad(key, "only a clip entry takes this key")
    else:
        if (path is None) == (raw.get("model") is None):
            raise bad("model", "a clip needs either `path` (a local-dir folder) or `model`")
        for key in ("config", "checkpoint", "sha256", "config_sha256", *FACTS):
            if raw.get(key) is not None:
                raise bad(key, "only a vqgan entry takes this key")

    return ModelEntry(
        name=name,
        kind=kind,
        origin=origin,
        config=_local(raw["config"], base) if raw.get("config") else None,
        checkpoint=tuple(_local(c, base) for c in checkpoint or ()),
        sha256=hashes["sha256"],
        config_sha256=hashes["config_sha256"],
        size=size,
        path=Path(_local(path, base)) if path else None,
        model=raw.get("model"),
        pretrained=raw.get("pretrained"),
        **facts,
        licence=raw.get("licence") or raw.get("license") or "",
        source=raw.get("source") or "",
        description=raw.get("description") or "",
    )


def parse_registry(text: str, origin: str, base: Path) -> dict[str, ModelEntry]:
    """Entries of one registry document; ConfigError naming `origin` and the key if malformed."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = first_line(err, "syntax error")
        raise ConfigError(f"{origin}: not valid YAML: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping with a `models` key")
    for key in data:
        if key != "models":
            raise ConfigError(f"{origin}: {unknown_name('key', key, ['models'])}")
    models = data.get("models") or {}
    if not isinstance(models, dict):
        raise ConfigError(f"{origin}: models: expected a mapping of model names to entries")
    return {name: _parse_entry(name, raw, origin, base) for name, raw in models.items()}


def _read_registry_file(path: Path) -> dict[str, ModelEntry]:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read registry file {path}: {err.strerror or err}") from None
    return parse_registry(text, str(path), path.parent.resolve())


def builtin_registry() -> dict[str, ModelEntry]:
    """The models vqclip knows out of the box."""
    package = resources.files("vqclip")
    text = (package / "models" / "known_models.yaml").read_text()
    return parse_registry(text, BUILTIN, Path(str(package)))


def load_registry(registry_file: str | os.PathLike[str] | None = None) -> dict[str, ModelEntry]:
    """All named models: built-in < $VQCLIP_HOME/models.yaml < `registry_file`."""
    entries = builtin_registry()
    user = vqclip_home() / "models.yaml"
    if user.is_file():
        entries.update(_read_registry_file(user))
    if registry_file is not None:
        path = Path(registry_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"registry file {path} does not exist")
        entries.update(_read_registry_file(path))
    return entries


def get_entry(
    name: str, *, kind: str | None = None, registry_file: str | os.PathLike[str] | None = None
) -> ModelEntry:
    """The entry called `name` (of `kind` if given); ModelError listing known names if none."""
    entries = load_registry(registry_file)
    entry = entries.get(name)
    if entry is None or (kind is not None and entry.kind != kind):
        known = sorted(n for n, e in entries.items() if kind is None or e.kind == kind)
        raise ModelError(unknown_name(f"{kind}.model" if kind else "model", name, known))
    return entry


def resolve_vqgan(
    name: str,
    *,
    registry_file: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> tuple[Path, Path]:
    """(config, checkpoint) for `load_vqgan`; downloads and converts on first use unless offline."""
    entry = get_entry(name, kind="vqgan", registry_file=registry_file)
    return ensure_vqgan(entry, Cache.default(), offline=offline_requested(offline),
                        progress=progress)


def resolve_clip(
    model: str,
    pretrained: str | None,
    *,
    registry_file: str | os.PathLike[str] | None = None,
) -> tuple[str, str | None]:
    """open_clip (model, pretrained) for a registry CLIP name; any other name passes through."""
    if model.startswith(SELF_CONTAINED_CLIP):
        return model, pretrained
    entry = load_registry(registry_file).get(model)
    if entry is None:
        return model, pretrained
    if entry.kind != "clip":
        raise ModelError(f"{model!r} is a {entry.kind} model, not a CLIP")
    if entry.path is None:
        return entry.model or model, entry.pretrained
    if not (entry.path / "open_clip_config.json").is_file():
        raise ModelError(
            f"CLIP {model!r}: {entry.path} is not an open_clip local-dir folder "
            "(open_clip_config.json is missing)"
        )
    return f"local-dir:{entry.path}", None

"""A run's models described without reading their weights or downloading anything: the VQGAN's
factor and codebook, each CLIP's input size and embedding length, and their local files.

The facts come from the model's own config where a local copy exists (the user's files, a
bundled folder, the cache), else from the registry entry (known_models.yaml states them for the
known VQGANs); CLIP's from open_clip's model configs and local-dir folders. A fact that only the
weights or an undownloaded config hold is None here: a run checks it once the model has loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vqclip.errors import ModelError
from vqclip.files import not_a_file
from vqclip.models.cache import Cache
from vqclip.models.catalog import get_entry
from vqclip.models.checkpoint import safetensors_shapes
from vqclip.models.clip_config import clip_facts
from vqclip.models.download import is_url
from vqclip.models.entry import ModelEntry
from vqclip.models.facts import ClipFacts, ModelFacts, VQGANFacts
from vqclip.models.sources import clip_sections
from vqclip.models.vqgan import VQGANSpec, read_spec

__all__ = ["ClipFacts", "ModelFacts", "VQGANFacts", "resolve_models", "vqgan_facts"]


def resolve_models(cfg: Any) -> ModelFacts:
    """What the run `cfg` describes would load: its VQGAN (when it draws with one) and CLIPs."""
    vqgan = vqgan_facts(cfg.vqgan) if cfg.generator == "vqgan" else None
    return ModelFacts(vqgan, tuple(clip_facts(key, member.model, member.pretrained)
                                   for key, member in clip_sections(cfg)))


def vqgan_facts(section: Any) -> VQGANFacts:
    """The VQGAN of a `vqgan` config section: by paths (their config read) or by registry name."""
    if section.config is not None:
        config, checkpoint = Path(section.config), Path(section.checkpoint)
        for label, path in (("vqgan.config", config), ("vqgan.checkpoint", checkpoint)):
            if (why := not_a_file(path)) is not None:
                raise ModelError(f"{label}: {why}: {path}")
        spec = read_spec(config)
        check_checkpoint_fits(spec, checkpoint)
        return VQGANFacts.of_spec(checkpoint.name, spec, f"config {config}", (config, checkpoint))
    return _registry_vqgan(get_entry(section.model, kind="vqgan"))


def _registry_vqgan(entry: ModelEntry) -> VQGANFacts:
    """A named VQGAN: its config where a local copy is (bundled, converted in the cache, the
    user's file, a downloaded original), else the entry's own facts."""
    if entry.path is not None:
        config, weights = entry.path / "config.json", entry.path / "model.safetensors"
        if not (config.is_file() and weights.is_file()):
            raise ModelError(f"model {entry.name!r}: {entry.path} lacks config.json and "
                             "model.safetensors (bundled weights not built yet?)")
        return _of_entry_config(entry, config, (config, weights))
    cache = Cache.default()
    converted = cache.converted_files(entry.name)
    if converted is not None:
        return _of_entry_config(entry, converted[0], converted)
    config = _local_config(entry, cache)
    if config is not None:
        return _of_entry_config(entry, config, (config,))
    known = {"config": entry.config_sha256 or cache.pin(entry.name, "config"),
             "checkpoint": entry.sha256 or cache.pin(entry.name, "checkpoint")}
    return VQGANFacts(entry.name, entry.factor, entry.n_embed, entry.embed_dim,
                      f"registry entry ({entry.origin})", (),
                      {role: digest for role, digest in known.items() if digest})


def _of_entry_config(entry: ModelEntry, config: Path, files: tuple[Path, ...]) -> VQGANFacts:
    """The facts a named VQGAN's config states, which its entry, where it states them, must match."""
    spec = read_spec(config)
    if (wrong := entry.contradiction(spec.factor, spec.n_embed, spec.embed_dim)) is not None:
        key, stated, actual = wrong
        raise ModelError(f"model {entry.name!r}: its registry entry ({entry.origin}) says {key} "
                         f"{stated}, but its config {config} says {actual}; correct the entry")
    return VQGANFacts.of_spec(entry.name, spec, f"config {config}", files)


def _local_config(entry: ModelEntry, cache: Cache) -> Path | None:
    """The entry's config file on this machine: the user's own path, or the downloaded original."""
    source = entry.config or ""
    if not is_url(source):
        path = Path(source)
        if (why := not_a_file(path)) is not None:
            raise ModelError(f"model {entry.name!r}: config {path}: {why} (from {entry.origin})")
        return path
    for name in ("config.yaml", "config.json"):
        path = cache.source_dir(entry.name) / name
        if path.is_file():
            return path
    return None


def check_checkpoint_fits(spec: VQGANSpec, checkpoint: Path) -> None:
    """A .safetensors checkpoint whose codebook (read from its header) has another shape than
    the config says is refused. A pickle's shapes are only known by loading it."""
    if checkpoint.suffix.lower() != ".safetensors":
        return
    shapes = safetensors_shapes(checkpoint)
    for key in ("quantize.embedding.weight", "quantize.embed.weight"):
        if key in shapes and tuple(shapes[key]) != (spec.n_embed, spec.embed_dim):
            raise ModelError(f"vqgan.checkpoint {checkpoint}: its codebook is {tuple(shapes[key])}, but "
                             f"its config says {spec.n_embed} codes of {spec.embed_dim}")

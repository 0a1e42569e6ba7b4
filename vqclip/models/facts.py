"""What is known of a run's models before any weight is read: plain data, no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class VQGANFacts:
    """A VQGAN as its config (or registry entry) states it; None where neither says."""

    name: str
    factor: int | None  # pixels per latent position along each side
    n_embed: int | None  # codebook entries
    embed_dim: int | None  # length of a codebook vector
    source: str  # where the facts were read: "config PATH" or "registry entry (FILE)"
    files: tuple[Path, ...] = ()  # the local files known now; none before a download
    # sha256 by role ("config", "checkpoint") where the registry or a pin states it; the run
    # records the checksum of every file it loads in the image's metadata.
    sha256: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_spec(cls, name: str, spec: Any, source: str, files: tuple[Path, ...]) -> VQGANFacts:
        """The facts of a VQGANSpec read from a config file."""
        return cls(name, spec.factor, spec.n_embed, spec.embed_dim, source, tuple(files))


@dataclass(frozen=True)
class ClipFacts:
    """A CLIP as open_clip's config for it states it; None where no local config says."""

    key: str  # its config section: "clip" or "clip.models.N"
    name: str  # as the config names it
    model: str  # the open_clip model name (local-dir:PATH and hf-hub:REPO included)
    pretrained: str | None  # the open_clip tag or weights file
    input_size: int | None  # side of the square images it embeds
    embed_dim: int | None  # length of its embeddings
    files: tuple[Path, ...] = ()  # the local files known now (config, weights)


@dataclass(frozen=True)
class ModelFacts:
    """Every model of a run: the VQGAN (None for a generator without a model) and each CLIP."""

    vqgan: VQGANFacts | None
    clips: tuple[ClipFacts, ...]

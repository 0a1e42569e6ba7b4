"""One named model of a registry: where its files come from, how to check them, and what is
known of it before its weights are read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vqclip.models.download import is_url


@dataclass(frozen=True)
class ModelEntry:
    """One named model: where its files come from, how to check them, what its config says."""

    name: str
    kind: str
    origin: str  # the registry file that defined it
    config: str | None = None  # URL or absolute path
    checkpoint: tuple[str, ...] = ()  # URLs or absolute paths, tried in order
    sha256: str | None = None  # of the checkpoint
    config_sha256: str | None = None
    size: int | None = None  # approximate download size in bytes
    path: Path | None = None  # a local folder: converted VQGAN, or open_clip local-dir
    model: str | None = None  # CLIP alias: open_clip model name ...
    pretrained: str | None = None  # ... and tag or weights file
    # What a VQGAN's config says, known here before its files are fetched (None: not given).
    factor: int | None = None  # pixels per latent position along each side
    n_embed: int | None = None  # codebook entries
    embed_dim: int | None = None  # length of a codebook vector
    licence: str = ""
    source: str = ""
    description: str = field(default="", compare=False)

    @property
    def bundled(self) -> bool:
        """True when the files are a local folder (shipped with vqclip or the user's)."""
        return self.path is not None

    @property
    def urls(self) -> list[str]:
        """Every remote URL among the config and checkpoints."""
        return [u for u in (self.config, *self.checkpoint) if u and is_url(u)]

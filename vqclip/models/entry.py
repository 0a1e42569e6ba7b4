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

    def contradiction(self, factor: int, n_embed: int, embed_dim: int) -> tuple[str, int, int] | None:
        """(key, stated, actual) of the first VQGAN fact this entry states that the model's
        config contradicts; None when every stated fact agrees."""
        for key, stated, actual in (("factor", self.factor, factor), ("n_embed", self.n_embed, n_embed),
                                    ("embed_dim", self.embed_dim, embed_dim)):
            if stated is not None and stated != actual:
                return key, stated, actual
        return None

    @property
    def urls(self) -> list[str]:
        """Every remote URL among the config and checkpoints."""
        return [u for u in (self.config, *self.checkpoint) if u and is_url(u)]

"""Gallery thumbnails, made once per image version: a rerun only makes those of new images."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from vqclip.gallery.tree import Tree
from vqclip.outputs.sheet import save_image_atomic

THUMB_SIZE = 192  # pixels on the longer side
MAX_IMAGE = 256 * 1024 * 1024  # bytes of an image file the gallery decodes


@dataclass
class Thumbnails:
    """The thumbnail folder, and what this pass made, kept and removed."""

    folder: Path
    tree: Tree
    made: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)

    def thumbnail(self, image: Path, run_id: str) -> Path | None:
        """The thumbnail of `image`, made unless this version of it has one already; None when
        it is not a regular file of the tree or not an image."""
        real = self.tree.regular_file(image)
        if real is None:
            return None
        stat = os.stat(real)
        # a resumed run replaces final.png: its size or time changes, and so does the name
        version = hashlib.sha256(f"{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:8]
        path = self.folder / f"{run_id}-{version}.jpg"
        if path.is_file():
            self.kept.append(path)
            return path
        data = self.tree.read_bytes(image, MAX_IMAGE)
        try:
            with Image.open(io.BytesIO(data or b"")) as source:
                thumb = source.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return None
        thumb.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
        if max(thumb.size) < THUMB_SIZE:  # small images stay sharp, not blurred, when enlarged
            scale = THUMB_SIZE // max(thumb.size) or 1
            thumb = thumb.resize((thumb.width * scale, thumb.height * scale), Image.Resampling.NEAREST)
        save_image_atomic(thumb, path, overwrite=True)
        self.made.append(path)
        return path

    def remove_unused(self) -> None:
        """Delete thumbnails of images that are gone or were replaced."""
        used = set(self.made) | set(self.kept)
        for path in sorted(self.folder.glob("*.jpg")):
            if path not in used:
                path.unlink()
                self.removed.append(path)

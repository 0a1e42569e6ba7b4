"""What classify, search and score share: finding images, CLIP preprocessing, batched embedding."""

from __future__ import annotations

import glob
import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vqclip.errors import UsageError, first_line
from vqclip.images import UnusableImage, open_image, read_image_file
from vqclip.models.clip import Perceptor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
INDEX_DIRNAME = ".vqclip-index"
DEFAULT_TEMPLATE = "{}"
TEXT_BATCH = 256
ProgressCallback = Callable[[int, int], None]  # (images done, images in total)


@dataclass(frozen=True)
class Skipped:
    """A file that could not be used, and why."""

    path: Path
    reason: str

    def to_json(self) -> dict[str, str]:
        """The --json form: {"image": path, "reason": text}."""
        return {"image": str(self.path), "reason": self.reason}


@dataclass
class LoadedImage:
    """One file after loading: its content hash (when asked), CLIP-ready pixels, or the error."""

    path: Path
    sha256: str | None = None
    pixels: np.ndarray | None = None  # (S, S, 3) uint8, None when not decoded
    error: str | None = None


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def images_in_folder(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively and sorted; hidden files and folders are skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        # hidden folders include our own .vqclip-index; sorting makes the walk reproducible
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / name for name in sorted(files) if _is_image_name(name))
    return found


def find_images(specs: Sequence[str | Path]) -> list[Path]:
    """Expand files, folders (recursive) and glob patterns into image paths, in order, once each.

    A named file is taken whatever its suffix; folders and globs keep only image suffixes.
    A missing path, an empty folder or a glob that matches nothing is a UsageError naming it.
    """
    if not specs:
        raise UsageError("no images given")
    paths: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = images_in_folder(path)
            if not found:
                raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {spec}")
        elif path.is_file():
            found = [path]
        elif glob.has_magic(str(spec)):
            found = []
            for match in sorted(glob.glob(str(spec), recursive=True)):
                match_path = Path(match)
                if match_path.is_dir():
                    found.extend(images_in_folder(match_path))
                elif match_path.is_file() and _is_image_name(match_path.name):
                    found.append(match_path)
            if not found:
                raise UsageError(f"no images match {str(spec)!r}")
        else:
            raise UsageError(f"image not found: {spec}")
        paths.extend(found)
    return list(dict.fromkeys(paths))  # the same file named twice is used once


def decode_for_clip(data: bytes, size: int) -> np.ndarray:
    """CLIP's preprocessing: shorter side resized to `size` (bicubic), centre crop; (S,S,3) uint8."""
    with open_image(data) as image:
        # JPEG only: decode at a reduced scale that still covers `size` (much faster for photos)
        image.draft("RGB", (size, size))
        image = image.convert("RGB")
    scale = size / min(image.size)
    width = max(size, round(image.width * scale))
    height = max(size, round(image.height * scale))
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _load_one(path: Path, size: int, hash_files: bool,
              needs_pixels: Callable[[str], bool] | None) -> LoadedImage:
    try:
        data = read_image_file(path)
    except UnusableImage as err:
        return LoadedImage(path, error=str(err))
    except OSError as err:
        return LoadedImage(path, error=f"cannot read: {err.strerror or err}")
    digest = hashlib.sha256(data).hexdigest() if hash_files else None
    if digest is not None and needs_pixels is not None and not needs_pixels(digest):
        return LoadedImage(path, sha256=digest)
    try:
        pixels = decode_for_clip(data, size)
    except UnidentifiedImageError:
        return LoadedImage(path, sha256=digest, error="not a readable image: unknown format or corrupt")
    except UnusableImage as err:
        return LoadedImage(path, sha256=digest, error=str(err))
    except Exception as err:  # noqa: BLE001 - any decoder failure means "not a usable image"
        reason = first_line(err)
        return LoadedImage(path, sha256=digest, error=f"not a readable image: {reason}")
    return LoadedImage(path, sha256=digest, pixels=pixels)


def load_images(
    paths: Sequence[Path],
    size: int,
    *,
    batch_size: int = 32,
    hash_files: bool = False,
    needs_pixels: Callable[[str], bool] | None = None,
    workers: int | None = None,
) -> Iterator[list[LoadedImage]]:
    """Read, hash and decode files on a thread pool, in order, one batch at a time.

    The next batch is decoded while the caller embeds this one (PIL releases the GIL).
    With `hash_files`, `needs_pixels(sha256)` False skips decoding (already embedded).
    """
    check_batch_size(batch_size)
    workers = workers or min(4, os.cpu_count() or 1)
    chunks = [list(paths[i:i + batch_size]) for i in range(0, len(paths), batch_size)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vqclip-load") as pool:
        pending: deque[list[Future[LoadedImage]]] = deque()

        def submit(chunk: list[Path]) -> None:
            pending.append([pool.submit(_load_one, p, size, hash_files, needs_pixels) for p in chunk])

        for chunk in chunks[:2]:
            submit(chunk)
        for index in range(len(chunks)):
            batch = [future.result() for future in pending.popleft()]
            if index + 2 < len(chunks):
                submit(chunks[index + 2])
            yield batch


def embed_pixels(perceptor: Perceptor, pixels: Sequence[np.ndarray]) -> torch.Tensor:
    """Unit-length CLIP embeddings (B, D) on the CPU of CLIP-ready (S, S, 3) uint8 images."""
    batch = torch.from_numpy(np.stack(pixels)).to(perceptor.device)
    images = batch.permute(0, 3, 1, 2).float().div_(255)
    with torch.inference_mode():
        return perceptor.encode_image(images).float().cpu()


def embed_files(
    perceptor: Perceptor,
    paths: Sequence[Path],
    *,
    batch_size: int = 32,
    on_progress: ProgressCallback | None = None,
) -> tuple[list[Path], torch.Tensor, list[Skipped]]:
    """Embed image files; returns the paths that worked, their (N, D) embeddings, the skipped."""
    used: list[Path] = []
    chunks: list[torch.Tensor] = []
    skipped: list[Skipped] = []
    done = 0
    if on_progress is not None:
        on_progress(0, len(paths))
    for batch in load_images(paths, perceptor.input_size, batch_size=batch_size):
        good = [item for item in batch if item.pixels is not None]
        skipped.extend(Skipped(item.path, item.error or "unreadable") for item in batch
                       if item.pixels is None)
        if good:
            chunks.append(embed_pixels(perceptor, [item.pixels for item in good]))
            used.extend(item.path for item in good)
        done += len(batch)
        if on_progress is not None:
            on_progress(done, len(paths))
    if not used:
        names = ", ".join(str(s.path) for s in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        raise UsageError(f"none of the images could be read: {names}")
    return used, torch.cat(chunks), skipped


def check_batch_size(batch_size: int) -> None:
    """Refuse a --batch-size below 1."""
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: must be at least 1")


def check_top(top: int) -> None:
    """Refuse a negative --top (0 means every label or hit)."""
    if top < 0:
        raise UsageError(f"--top {top}: must be 0 (all) or more")


def check_templates(templates: Sequence[str]) -> list[str]:
    """Templates as given, or the default; each must hold one "{}" for the label."""
    templates = list(templates) or [DEFAULT_TEMPLATE]
    for template in templates:
        if template.count("{}") != 1:
            raise UsageError(f'--template {template!r}: must contain "{{}}" once, where the label goes')
    return list(dict.fromkeys(templates))


def encode_texts(perceptor: Perceptor, texts: Sequence[str]) -> torch.Tensor:
    """Unit-length text embeddings (N, D) on the CPU, encoded in batches."""
    chunks = [perceptor.encode_text(list(texts[i:i + TEXT_BATCH])).float().cpu()
              for i in range(0, len(texts), TEXT_BATCH)]
    return torch.cat(chunks)


def label_embeddings(perceptor: Perceptor, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """One embedding per label: the renormalized mean over templates (prompt ensembling).

    Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
    Supervision", section 3.1.4: average the normalized text embeddings of each class.
    """
    texts = [template.replace("{}", label) for label in labels for template in templates]
    embeddings = encode_texts(perceptor, texts).view(len(labels), len(templates), -1)
    return torch.nn.functional.normalize(embeddings.mean(dim=1), dim=-1)


def logit_scale(perceptor: Perceptor) -> float:
    """CLIP's learned softmax temperature (exp of logit_scale), or 100 when the model has none."""
    scale = getattr(perceptor.model, "logit_scale", None)
    if isinstance(scale, torch.Tensor):
        return float(scale.detach().float().exp().cpu())
    return 100.0

"""Image files and tensors: load and fit to a size, solid canvases, tensor <-> PIL."""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageColor, UnidentifiedImageError

from vqclip.errors import UsageError

_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_FILE_BYTES = 256 * 2**20  # no image file vqclip reads is larger
MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # where Pillow starts warning of a decompression bomb


class UnusableImage(Exception):
    """A file that must not or cannot be decoded: not a regular file, too large, a bomb."""


def read_image_file(path: str | Path) -> bytes:
    """The bytes of a regular file (a symlink is followed only to one), at most MAX_FILE_BYTES.

    Never blocks on a FIFO nor reads a device; raises UnusableImage or OSError saying why."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnusableImage("not a regular file (a device, FIFO or socket)")
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise UnusableImage(f"larger than {MAX_FILE_BYTES // 2**20} MiB")
    return data


def open_image(data: bytes) -> Image.Image:
    """Open encoded image bytes, refusing more than MAX_PIXELS pixels before any is decoded."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise UnusableImage(f"a decompression bomb: {err}") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise UnusableImage(f"{width}x{height} is more than {MAX_PIXELS} pixels "
                            "(a decompression bomb?)")
    return image


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB; a missing, unreadable, special or oversized file (or one of
    too many pixels) is a usage error naming it."""
    try:
        with open_image(read_image_file(path)) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise UsageError(f"image not found: {path}") from None
    except (UnidentifiedImageError, UnusableImage) as err:
        raise UsageError(f"cannot read image {path}: {err}") from None
    except OSError as err:
        raise UsageError(f"cannot read image {path}: {err.strerror or err}") from None


def fit_to_size(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover width x height, keeping the aspect ratio, then crop the centre."""
    scale = max(width / image.width, height / image.height)
    resized = image.resize(
        (max(width, round(image.width * scale)), max(height, round(image.height * scale))),
        Image.Resampling.LANCZOS,
    )
    left = (resized.width - width) // 2
    top = (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def init_canvas(spec: str, width: int, height: int) -> torch.Tensor:
    """A (1, 3, H, W) [0, 1] tensor from an image path or a "#rrggbb" solid color."""
    if _HEX_COLOR.match(spec):
        image = Image.new("RGB", (width, height), ImageColor.getrgb(spec))
    else:
        image = fit_to_size(load_image(spec), width, height)
    return pil_to_tensor(image)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (1, 3, H, W) float tensor in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) tensor in [0, 1] -> RGB PIL image (rounded to 8 bits)."""
    if image.dim() == 4:
        image = image[0]
    array = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), "RGB")


"""Judge generated shapes images by pixel statistics alone, independent of any model.

Used by the quality tests and benchmarks: the dominant color of the bright pixels, and how
round the largest region of the asked color is (its overlap with a disk versus a square of
the same area).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from vqclip.shapes.data import PALETTE

BRIGHT = 60  # a pixel whose brightest channel is below this counts as background


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def nearest_colors(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: index into PALETTE of the nearest color, and whether the pixel is bright."""
    pixels = _pixels(image)
    palette = np.array(list(PALETTE.values()), dtype=np.float32)
    distances = np.linalg.norm(pixels[:, :, None, :] - palette[None, None], axis=-1)
    return distances.argmin(axis=-1), pixels.max(axis=-1) >= BRIGHT


def dominant_color(image: Image.Image) -> str | None:
    """The palette color most bright pixels are nearest to; None for an all-dark image."""
    nearest, bright = nearest_colors(image)
    if not bright.any():
        return None
    counts = np.bincount(nearest[bright], minlength=len(PALETTE))
    return list(PALETTE)[int(counts.argmax())]


def color_mask(image: Image.Image, color: str) -> np.ndarray:
    """Bright pixels nearest to `color`."""
    nearest, bright = nearest_colors(image)
    return bright & (nearest == list(PALETTE).index(color))


def largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of a boolean mask (empty if the mask is)."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    best, best_size, current = 0, 0, 0
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start]:
            continue
        current += 1
        labels[start] = current
        stack, size = [start], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] \
                        and not labels[ny, nx]:
                    labels[ny, nx] = current
                    stack.append((ny, nx))
        if size > best_size:
            best, best_size = current, size
    return labels == best if best else np.zeros_like(mask)


def roundness(region: np.ndarray) -> float:
    """IoU with a disk minus IoU with an axis-aligned square, both of the region's area and centre.

    Positive for round regions, negative for square ones; 0 for an empty region.
    """
    area = int(region.sum())
    if area == 0:
        return 0.0
    ys, xs = np.nonzero(region)
    cy, cx = ys.mean(), xs.mean()
    grid_y, grid_x = np.mgrid[: region.shape[0], : region.shape[1]]
    disk = (grid_y - cy) ** 2 + (grid_x - cx) ** 2 <= area / np.pi
    half = np.sqrt(area) / 2
    square = (np.abs(grid_y - cy) <= half) & (np.abs(grid_x - cx) <= half)

    def iou(template: np.ndarray) -> float:
        return float((region & template).sum() / max((region | template).sum(), 1))

    return iou(disk) - iou(square)

"""Judge generated shapes images by pixel statistics alone, independent of any model.

Used by the quality tests and benchmarks: the dominant color of the bright pixels, how round
the largest region of the asked color is (its overlap with a disk versus a square of the same
area), which shape its geometry says it is, how many objects the image holds and whether the
object lies inside the frame. Shapes are drawn upright (data.py), so the box around a region
is the shape's own box.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    return _dominant(*nearest_colors(image))


def _dominant(nearest: np.ndarray, bright: np.ndarray) -> str | None:
    if not bright.any():
        return None
    counts = np.bincount(nearest[bright], minlength=len(PALETTE))
    return list(PALETTE)[int(counts.argmax())]


def color_mask(image: Image.Image, color: str) -> np.ndarray:
    """Bright pixels nearest to `color`."""
    nearest, bright = nearest_colors(image)
    return bright & (nearest == list(PALETTE).index(color))


def regions(mask: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """4-connected regions of a boolean mask: a label per pixel (0 outside) and each one's size."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    sizes: list[int] = []
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start]:
            continue
        current = len(sizes) + 1
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
        sizes.append(size)
    return labels, sizes


def largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of a boolean mask (empty if the mask is)."""
    labels, sizes = regions(mask)
    if not sizes:
        return np.zeros_like(mask)
    return labels == int(np.argmax(sizes)) + 1


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


MIN_OBJECT_PIXELS = 20  # bright specks smaller than this are noise, not objects


def _hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of (N, 2) points (monotone chain, then the shoelace formula)."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return 0.0

    def half(sequence: list[tuple[float, float]]) -> list[tuple[float, float]]:
        chain: list[tuple[float, float]] = []
        for p in sequence:
            while len(chain) >= 2 and ((chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1])
                                       - (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])) <= 0:
                chain.pop()
            chain.append(p)
        return chain

    hull = np.array(half(pts)[:-1] + half(pts[::-1])[:-1])
    x, y = hull[:, 0], hull[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def shape_features(region: np.ndarray) -> tuple[float, float]:
    """(fill, solidity) of a region: its share of its bounding box and of its convex hull.

    Pixels count as unit squares (their four corners go into the hull), so a solid square
    has both near 1: a circle fills about pi/4 of its box, a triangle half; a star and a
    cross fill much less of their hull than convex shapes do.
    """
    ys, xs = np.nonzero(region)
    if len(xs) == 0:
        return 0.0, 0.0
    area = float(len(xs))
    box = float((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
    corners = np.concatenate([np.stack([xs + dx, ys + dy], axis=1) for dx in (0, 1) for dy in (0, 1)])
    return area / box, area / max(_hull_area(corners), area)


def shape_of(region: np.ndarray) -> str | None:
    """The shape a region's geometry says it is: circle, square, triangle, star or cross."""
    fill, solidity = shape_features(region)
    if fill == 0:
        return None
    # Thresholds halfway between the ranges drawn shapes of every size fall in (the test checks them).
    if solidity < 0.84:
        return "star" if fill < 0.51 else "cross"
    if fill > 0.9:
        return "square"
    return "circle" if fill > 0.65 else "triangle"


@dataclass(frozen=True)
class Verdict:
    """What the pixels of one image say about a prompt "a COLOR SHAPE"."""

    color: bool  # the bright pixels are mostly the asked color
    shape: bool  # the largest region of that color has the asked shape's geometry
    single: bool  # exactly one object (bright region of MIN_OBJECT_PIXELS or more)
    inside: bool  # that region does not touch the image's edge

    @property
    def right(self) -> bool:
        """Every criterion holds."""
        return self.color and self.shape and self.single and self.inside


def judge(image: Image.Image, color: str, shape: str) -> Verdict:
    """Judge one image against "a COLOR SHAPE" by its pixels alone."""
    nearest, bright = nearest_colors(image)
    region = largest_region(bright & (nearest == list(PALETTE).index(color)))
    _, sizes = regions(bright)
    ys, xs = np.nonzero(region)
    inside = bool(len(xs)) and xs.min() > 0 and ys.min() > 0 \
        and xs.max() < region.shape[1] - 1 and ys.max() < region.shape[0] - 1
    return Verdict(color=_dominant(nearest, bright) == color, shape=shape_of(region) == shape,
                   single=sum(size >= MIN_OBJECT_PIXELS for size in sizes) == 1, inside=inside)

"""Judge generated shapes images by pixel statistics alone, independent of any model.

Used by the quality tests and benchmarks: the dominant color of the bright pixels, how round
the largest region of the asked color is (its overlap with a disk versus a square of the same
area), which shape's clean outline it overlaps most when fitted to its box, how many objects
the image holds and whether the object lies inside the frame. Shapes are drawn upright
(data.py), so the box around a region is the shape's own box.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from vqclip.shapes.data import PALETTE, SHAPES, Scene, ShapeObject, render_mask

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


# How far an outline is moved while it is fitted to a region: its size (times the size that gives
# it the region's box area) and its centre (pixels each way).
FIT_SCALES = (0.9, 1.0, 1.1)
FIT_SHIFTS = (-1.0, 0.0, 1.0)
# The least overlap a region needs with its best-fitting outline to be that shape: below the
# least (0.72) of the shapes VQGAN's reconstructions of clean shapes of radius 0.18 and above
# (benchmarks/vqgan_ceiling.py --features).
MATCH_FLOOR = 0.7


@cache
def _outline_box(shape: str) -> tuple[float, float, float, float]:
    """A shape's box as drawn at radius 1: width, height and its centre's offset from the shape's."""
    side, radius = 1000, 0.4
    drawn = np.asarray(render_mask(_alone(shape, 0.5, 0.5, radius), size=side)) >= 128
    width, height, box_x, box_y = _box(drawn)
    scale = radius * side
    return width / scale, height / scale, (box_x - side / 2) / scale, (box_y - side / 2) / scale


def _box(region: np.ndarray) -> tuple[int, int, float, float]:
    """Width, height and centre (x, y) of a non-empty region's box, pixels as unit squares."""
    ys, xs = np.nonzero(region)
    return (int(xs.max() + 1 - xs.min()), int(ys.max() + 1 - ys.min()),
            (xs.max() + 1 + xs.min()) / 2, (ys.max() + 1 + ys.min()) / 2)


def _alone(shape: str, cx: float, cy: float, radius: float) -> Scene:
    return Scene("black", (ShapeObject(shape, "white", PALETTE["white"], cx, cy, radius),))


def shape_match(region: np.ndarray, shape: str) -> float:
    """How well a region is `shape`: its IoU with the shape's clean outline, drawn upright as
    data.py draws it, at the proportions it is drawn with, fitted to the region's box (the best
    of a few sizes around the one whose box has the region's box area, and of shifts of a pixel).
    0 for an empty region. The region is a square image's."""
    if not region.any():
        return 0.0
    width, height, off_x, off_y = _outline_box(shape)
    box_w, box_h, box_x, box_y = _box(region)
    side = region.shape[1]
    best = 0.0
    for scale in FIT_SCALES:
        radius = scale * float(np.sqrt(box_w * box_h / (width * height)))
        for dx in FIT_SHIFTS:
            for dy in FIT_SHIFTS:
                scene = _alone(shape, (box_x - off_x * radius + dx) / side,
                               (box_y - off_y * radius + dy) / side, radius / side)
                outline = np.asarray(render_mask(scene, size=side)) >= 128
                best = max(best, float((region & outline).sum() / (region | outline).sum()))
    return best


def shape_of(region: np.ndarray) -> str | None:
    """The shape whose fitted outline a region overlaps most (shape_match), if by MATCH_FLOOR or
    more; None for an empty region or a ragged one that no outline fits."""
    if not region.any():
        return None
    matches = {shape: shape_match(region, shape) for shape in SHAPES}
    best = max(matches, key=matches.__getitem__)
    return best if matches[best] >= MATCH_FLOOR else None


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


def _asked_region(nearest: np.ndarray, bright: np.ndarray, color: str) -> np.ndarray:
    """The largest region of bright pixels nearest the asked color."""
    return largest_region(bright & (nearest == list(PALETTE).index(color)))


def outline_match(image: Image.Image, color: str, shape: str) -> float:
    """How near an image's largest region of the asked color is to the asked shape
    (shape_match): the judge calls it that shape from MATCH_FLOOR, if no other shape fits better."""
    return shape_match(_asked_region(*nearest_colors(image), color), shape)


def judge(image: Image.Image, color: str, shape: str) -> Verdict:
    """Judge one image against "a COLOR SHAPE" by its pixels alone."""
    nearest, bright = nearest_colors(image)
    region = _asked_region(nearest, bright, color)
    _, sizes = regions(bright)
    ys, xs = np.nonzero(region)
    inside = bool(len(xs) and xs.min() > 0 and ys.min() > 0
                  and xs.max() < region.shape[1] - 1 and ys.max() < region.shape[0] - 1)
    return Verdict(color=_dominant(nearest, bright) == color, shape=shape_of(region) == shape,
                   single=sum(size >= MIN_OBJECT_PIXELS for size in sizes) == 1, inside=inside)

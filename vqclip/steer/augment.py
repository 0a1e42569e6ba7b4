"""Cutout augmentations by name, each one batched tensor op over all cutouts at once.

Geometric augmentations (flip, affine, perspective) change the sampling grid, so they cost
nothing beyond the one `grid_sample` that makes the cutouts. Photometric ones (jitter, noise,
erasing, sharpness) act on the (cutn, 3, S, S) batch. Every random number comes from a `Draw`
of numbers drawn from the image's `torch.Generator` before the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from vqclip.registry import Registry


class Draw:
    """The random numbers of one batch of cutouts, handed out in order from numbers drawn
    before the step: `uniforms` (K, U) and `normals` (K, N), one row per image, each row
    cut into `per_image` rows of results. Static slices of given tensors, so a step that
    draws through it has no generator call in it (dynamo and CUDA graphs take it whole).

    With no tensors it only counts what is asked for (`used`), on the meta device.
    """

    def __init__(self, uniforms: torch.Tensor | None, normals: torch.Tensor | None,
                 per_image: int) -> None:
        self.uniforms = uniforms
        self.normals = normals
        self.per_image = per_image
        self.images = 1 if uniforms is None else uniforms.shape[0]
        self.device = torch.device("meta") if uniforms is None else uniforms.device
        self.used = [0, 0]  # numbers taken per image: uniform, normal

    @property
    def count(self) -> int:
        """Rows of every result: the cutouts of all images."""
        return self.images * self.per_image

    def _take(self, which: int, shape: tuple[int, ...]) -> torch.Tensor:
        size = self.per_image * math.prod(shape)
        start = self.used[which]
        self.used[which] = start + size
        source = self.uniforms if which == 0 else self.normals
        if source is None:
            return torch.zeros((self.count, *shape), device="meta")
        return source[:, start:start + size].reshape(self.count, *shape)

    def uniform(self, *shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        """Uniform numbers in [low, high), shape (count, *shape)."""
        numbers = self._take(0, shape)
        if low == 0.0:  # no kernel spent on a scale of one or an offset of zero
            return numbers if high == 1.0 else numbers * high
        return numbers * (high - low) + low

    def normal(self, *shape: int) -> torch.Tensor:
        """Standard normal numbers, shape (count, *shape)."""
        return self._take(1, shape)


def flip(theta: torch.Tensor, draw: Draw, strength: float) -> torch.Tensor:
    """Mirror half of the cutouts left-right."""
    first = theta[:, :, :1]
    mirrored = torch.where(draw.uniform(low=0, high=1).lt(0.5).view(-1, 1, 1), -first, first)
    return torch.cat([mirrored, theta[:, :, 1:]], dim=-1)


def affine(theta: torch.Tensor, draw: Draw, strength: float) -> torch.Tensor:
    """Rotate by up to 15*strength degrees and shift by up to strength/2 of the cutout."""
    most = math.radians(15.0) * strength
    angle = draw.uniform(low=-most, high=most)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([cos, -sin, sin, cos], -1).view(-1, 2, 2)
    linear = theta[:, :, :2] @ rotation
    shift = draw.uniform(2, low=-strength / 2, high=strength / 2)
    moved = torch.addcmul(theta[:, :, 2], shift, theta[:, :, :2].diagonal(dim1=1, dim2=2).abs())
    return torch.cat([linear, moved.unsqueeze(-1)], dim=-1)


def perspective(grid: torch.Tensor, draw: Draw, strength: float) -> torch.Tensor:
    """Move each cutout's corners by up to strength/4 of its size, bilinearly in between."""
    corners = draw.uniform(2, 2, 2) * (strength / 4)  # (n, 2 rows, 2 cols, xy)
    size = grid.shape[1]
    offsets = F.interpolate(corners.permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                            align_corners=True)
    span = (grid[:, -1:, -1:, :] - grid[:, :1, :1, :]).abs() / 2  # cutout half-size per axis
    return grid + offsets.permute(0, 2, 3, 1) * span


def jitter(cutouts: torch.Tensor, draw: Draw, strength: float) -> torch.Tensor:
    """Random brightness, contrast and saturation, each up to +-strength."""
    brightness = draw.uniform(1, 1, 1) * strength
    contrast = 1 + draw.uniform(1, 1, 1) * strength
    saturation = 1 + draw.uniform(1, 1, 1) * strength
    gray = cutouts.mean(dim=1, keepdim=True)
    mean = cutouts.mean(dim=(1, 2, 3), keepdim=True)
    out = gray + (cutouts - gray) * saturation
    return (out - mean) * contrast + mean + brightness


def noise(cutouts: torch.Tensor, draw: Draw, strength: float) -> torch.Tensor:
    """Gaussian noise whose standard deviation is drawn per cutout in [0, strength), kept in [0, 1].

    Clamped like a real noisy image: CLIP never saw negative pixels.
    """
    sigma = draw.uniform(1, 1, 1, low=0.0, high=strength)
    return torch.addcmul(cutouts, sigma, draw.normal(*cutouts.shape[1:])).clamp(0.0, 1.0)


def erasing(cutouts: torch.Tensor, draw: Draw, strength: float) -> torch.Tensor:
    """Replace a random rectangle (up to `strength` of each side) of each cutout with gray."""
    n, _, size, _ = cutouts.shape
    extent = draw.uniform(2, low=0.0, high=strength)
    start = draw.uniform(2, low=0.0, high=1.0) * (1 - extent)
    coords = (torch.arange(size, device=cutouts.device) + 0.5) / size
    inside_y = (coords >= start[:, :1]) & (coords < start[:, :1] + extent[:, :1])
    inside_x = (coords >= start[:, 1:]) & (coords < start[:, 1:] + extent[:, 1:])
    mask = (inside_y.unsqueeze(2) & inside_x.unsqueeze(1)).unsqueeze(1)
    return torch.where(mask, torch.full_like(cutouts, 0.5), cutouts)


def sharpness(cutouts: torch.Tensor, draw: Draw, strength: float) -> torch.Tensor:
    """Sharpen or soften by a random amount in [-strength, strength) (unsharp mask)."""
    blurred = F.avg_pool2d(F.pad(cutouts, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    amount = draw.uniform(1, 1, 1) * strength
    return cutouts + amount * (cutouts - blurred)


@dataclass(frozen=True)
class Augmentation:
    """An augmentation and where it acts: on the crops' affine matrices (`theta`), on the
    sampling grid (`grid`) or on the sampled cutouts (`pixels`); `apply` takes a strength
    (its default `strength`, set under `augment.NAME`, from 0 to `most`) unless `strength`
    is None."""

    acts_on: str
    apply: Callable[[torch.Tensor, Draw, float], torch.Tensor]
    strength: float | None = None
    most: float = math.inf


AUGMENTATIONS: Registry[Augmentation] = Registry("augmentations")
for _name, _augmentation in sorted({
    "flip": Augmentation("theta", flip), "affine": Augmentation("theta", affine, 0.5),
    "perspective": Augmentation("grid", perspective, 0.2),
    "jitter": Augmentation("pixels", jitter, 0.1), "noise": Augmentation("pixels", noise, 0.1),
    "erasing": Augmentation("pixels", erasing, 0.25, most=1.0),
    "sharpness": Augmentation("pixels", sharpness, 0.3),
}.items()):
    AUGMENTATIONS.add(_name, _augmentation)


def augment_strengths(**chosen: float) -> SimpleNamespace:
    """The strength of each augmentation that takes one: its default, or as `chosen`."""
    defaults = {name: AUGMENTATIONS[name].strength for name in AUGMENTATIONS
                if AUGMENTATIONS[name].strength is not None}
    return SimpleNamespace(**{**defaults, **chosen})

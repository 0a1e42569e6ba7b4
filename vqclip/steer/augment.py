"""Cutout augmentations by name, each one batched tensor op over all cutouts at once.

Geometric augmentations (flip, affine, perspective) change the sampling grid, so they cost
nothing beyond the one `grid_sample` that makes the cutouts. Photometric ones (jitter, noise,
erasing, sharpness) act on the (cutn, 3, S, S) batch. Every random draw comes from the run's
`torch.Generator`, on the image's device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vqclip.registry import Registry


@dataclass
class Draw:
    """Random numbers for one batch of cutouts, from the run's generator."""

    generator: torch.Generator
    device: torch.device
    count: int

    def uniform(self, *shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        """Uniform numbers in [low, high), shape (count, *shape)."""
        raw = torch.rand((self.count, *shape), generator=self.generator, device=self.device)
        return raw * (high - low) + low

    def normal(self, *shape: int) -> torch.Tensor:
        """Standard normal numbers, shape (count, *shape)."""
        return torch.randn((self.count, *shape), generator=self.generator, device=self.device)


def flip(theta: torch.Tensor, draw: Draw, strength: float) -> torch.Tensor:
    """Mirror half of the cutouts left-right."""
    sign = torch.where(draw.uniform(low=0, high=1) < 0.5, -1.0, 1.0)
    theta = theta.clone()
    theta[:, :, 0] = theta[:, :, 0] * sign.unsqueeze(1)
    return theta


def affine(theta: torch.Tensor, draw: Draw, strength: float) -> torch.Tensor:
    """Rotate by up to 15*strength degrees and shift by up to strength/2 of the cutout."""
    angle = draw.uniform() * math.radians(15.0) * strength
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    linear = theta[:, :, :2] @ rotation
    shift = draw.uniform(2) * (strength / 2) * theta[:, :, :2].diagonal(dim1=1, dim2=2).abs()
    return torch.cat([linear, (theta[:, :, 2] + shift).unsqueeze(-1)], dim=-1)


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
    noisy = cutouts + sigma * torch.randn(cutouts.shape, generator=draw.generator, device=draw.device)
    return noisy.clamp(0.0, 1.0)


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
    sampling grid (`grid`) or on the sampled cutouts (`pixels`)."""

    acts_on: str
    apply: Callable[[torch.Tensor, Draw, float], torch.Tensor]


AUGMENTATIONS: Registry[Augmentation] = Registry("augmentations")
for _name, _augmentation in sorted({
    "flip": Augmentation("theta", flip), "affine": Augmentation("theta", affine),
    "perspective": Augmentation("grid", perspective),
    "jitter": Augmentation("pixels", jitter), "noise": Augmentation("pixels", noise),
    "erasing": Augmentation("pixels", erasing), "sharpness": Augmentation("pixels", sharpness),
}.items()):
    AUGMENTATIONS.add(_name, _augmentation)

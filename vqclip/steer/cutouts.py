"""Random cutouts of the image, resized to CLIP's input and augmented, in one batched resampling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from vqclip.registry import Registry
from vqclip.steer.augment import AUGMENTATIONS, Draw

# Each crop's side as a fraction of the image's short side: (cutouts, draw, short side) -> (cutn,)
CUT_METHODS: Registry[Callable[[Cutouts, Draw, int], torch.Tensor]] = Registry("cut_method")
# What grid_sample reads past the image's edge, by the config's name.
CUT_PADDINGS: Registry[str] = Registry("cut_padding")
for _name in ("reflection", "zeros", "border"):
    CUT_PADDINGS.add(_name, _name)


class Cutouts:
    """Draws `cutn` crops of side `rand**cut_pow` between a minimum and the full image.

    `random` is the notebook's method: small crops let CLIP judge detail, large ones the
    composition. `pooled` gives every cutout the whole image (the peers' default), augmented;
    `mixed` gives half the cutouts the whole image and half random crops.
    All crops and geometric augmentations become one sampling grid and one `grid_sample`,
    sampled at twice the output size and average-pooled once, which keeps large crops from
    aliasing without an image pyramid. Where an augmentation looks past the image's edge,
    `padding` says what CLIP sees there: the image mirrored (`reflection`), black (`zeros`,
    right for images on a black background) or the edge pixels repeated (`border`).
    """

    def __init__(
        self,
        cut_size: int,
        cutn: int,
        *,
        method: str = "random",
        cut_pow: float = 1.0,
        cut_min: float = 0.0,
        cut_full: bool = False,
        padding: str = "reflection",
        augmentations: list[str] = (),
        strengths: Any = None,
    ) -> None:
        self.sides = CUT_METHODS.get(method)
        self.padding = CUT_PADDINGS.get(padding)
        self.augmentations = [(name, AUGMENTATIONS.get(name)) for name in augmentations]
        self.cut_size = cut_size
        self.cutn = cutn
        self.method = method
        self.cut_pow = cut_pow
        self.cut_min = cut_min
        self.cut_full = cut_full
        self.strengths = strengths

    def _strength(self, name: str) -> float:
        return float(getattr(self.strengths, name, 1.0)) if self.strengths is not None else 1.0

    def _crop_theta(self, height: int, width: int, draw: Draw) -> torch.Tensor:
        short = min(height, width)
        side = self.sides(self, draw, short)
        if self.cut_full:
            side[0] = 1.0
        scale_x = side * short / width
        scale_y = side * short / height
        # Centres keep each crop inside the image (normalized [-1, 1] coordinates).
        centre_x = draw.uniform() * (1 - scale_x)
        centre_y = draw.uniform() * (1 - scale_y)
        theta = torch.zeros(self.cutn, 2, 3, device=draw.device)
        theta[:, 0, 0] = scale_x
        theta[:, 1, 1] = scale_y
        theta[:, 0, 2] = centre_x
        theta[:, 1, 2] = centre_y
        return theta

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(1, 3, H, W) image in [0, 1] -> (cutn, 3, S, S) augmented cutouts, in fp32.

        Cut in fp32 even under autocast: a bf16 sampling coordinate is only good to about a
        pixel at 512 pixels, so bf16 cutouts would shift and their gradient would land on every
        second or fourth pixel. The sampling is a small part of a step.
        """
        with torch.autocast(image.device.type, enabled=False):
            return self._cut(image.float(), generator)

    def _cut(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _, channels, height, width = image.shape
        draw = Draw(generator, image.device, self.cutn)
        theta = self._crop_theta(height, width, draw)
        theta = self._augment("theta", theta, draw)
        fine = 2 * self.cut_size
        grid = F.affine_grid(theta, [self.cutn, channels, fine, fine], align_corners=False)
        grid = self._augment("grid", grid, draw)
        batch = image.expand(self.cutn, -1, -1, -1)
        cutouts = F.grid_sample(batch, grid, mode="bilinear", padding_mode=self.padding,
                                align_corners=False)
        cutouts = F.avg_pool2d(cutouts, 2)
        return self._augment("pixels", cutouts, draw)

    def _augment(self, acts_on: str, data: torch.Tensor, draw: Draw) -> torch.Tensor:
        """Apply, in the configured order, the augmentations that act on `acts_on`."""
        for name, augmentation in self.augmentations:
            if augmentation.acts_on == acts_on:
                data = augmentation.apply(data, draw, self._strength(name))
        return data


@CUT_METHODS.register("random")
def random_sides(cutouts: Cutouts, draw: Draw, short: int) -> torch.Tensor:
    """The notebook's crops: sides from CLIP's input size (or cut_min) to the whole image,
    skewed toward small ones by cut_pow."""
    smallest = max(cutouts.cut_min, min(cutouts.cut_size / short, 1.0))
    return draw.uniform(low=0, high=1).pow(cutouts.cut_pow) * (1.0 - smallest) + smallest


@CUT_METHODS.register("pooled")
def whole_image(cutouts: Cutouts, draw: Draw, short: int) -> torch.Tensor:
    """Every cutout sees the whole image (the peers' default); only augmentations differ."""
    return torch.ones(cutouts.cutn, device=draw.device)


@CUT_METHODS.register("mixed")
def mixed_sides(cutouts: Cutouts, draw: Draw, short: int) -> torch.Tensor:
    """Half the cutouts see the whole image, half are the notebook's random crops: Disco
    Diffusion's MakeCutoutsDango mix of "overview" and "inner" cuts (the composition and the
    detail judged in one batch)."""
    sides = random_sides(cutouts, draw, short)
    sides[: cutouts.cutn // 2] = 1.0
    return sides

"""Random cutouts of the image, resized to CLIP's input and augmented, in one batched resampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqclip.config import AugmentConfig


class Cutouts:
    """Draws `cutn` crops of side `rand**cut_pow` between a minimum and the full image.

    The crops are the notebook's method (not pooled copies of the whole image): small crops let
    CLIP judge detail, large ones the composition. All crops, flips and shifts are one affine grid
    and one `grid_sample`, sampled at twice the output size and average-pooled once, which keeps
    large crops from aliasing without a pyramid.
    """

    def __init__(
        self,
        cut_size: int,
        cutn: int,
        *,
        cut_pow: float = 1.0,
        cut_min: float = 0.0,
        cut_full: bool = False,
        augment: AugmentConfig | None = None,
    ) -> None:
        self.cut_size = cut_size
        self.cutn = cutn
        self.cut_pow = cut_pow
        self.cut_min = cut_min
        self.cut_full = cut_full
        self.augment = augment or AugmentConfig(flip=False, noise=0.0, translate=0.0)

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(1, 3, H, W) image in [0, 1] -> (cutn, 3, S, S) augmented cutouts."""
        _, channels, height, width = image.shape
        device = image.device
        rand = lambda *shape: torch.rand(shape, generator=generator, device=device)  # noqa: E731

        # Crop side as a fraction of the shorter image side.
        short = min(height, width)
        smallest = max(self.cut_min, min(self.cut_size / short, 1.0))
        side = rand(self.cutn).pow(self.cut_pow) * (1.0 - smallest) + smallest
        if self.cut_full:
            side[0] = 1.0
        scale_x = side * short / width
        scale_y = side * short / height
        # Crop centres keep the crop inside the image (in normalized [-1, 1] coordinates).
        centre_x = (rand(self.cutn) * 2 - 1) * (1 - scale_x)
        centre_y = (rand(self.cutn) * 2 - 1) * (1 - scale_y)
        shift = self.augment.translate
        if shift:
            centre_x = centre_x + (rand(self.cutn) * 2 - 1) * shift
            centre_y = centre_y + (rand(self.cutn) * 2 - 1) * shift
        flip = torch.ones(self.cutn, device=device)
        if self.augment.flip:
            flip = torch.where(rand(self.cutn) < 0.5, -flip, flip)

        theta = torch.zeros(self.cutn, 2, 3, device=device)
        theta[:, 0, 0] = scale_x * flip
        theta[:, 0, 2] = centre_x
        theta[:, 1, 1] = scale_y
        theta[:, 1, 2] = centre_y
        fine = 2 * self.cut_size
        grid = F.affine_grid(theta, [self.cutn, channels, fine, fine], align_corners=False)
        batch = image.expand(self.cutn, -1, -1, -1)
        cutouts = F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection",
                                align_corners=False)
        cutouts = F.avg_pool2d(cutouts, 2)

        if self.augment.noise:
            strength = rand(self.cutn, 1, 1, 1) * self.augment.noise
            noise = torch.randn(cutouts.shape, generator=generator, device=device)
            cutouts = cutouts + strength * noise
        return cutouts

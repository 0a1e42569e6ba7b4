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
        self._counts: dict[int, tuple[int, int]] = {}  # random_counts by cutn

    def _strength(self, name: str) -> float:
        return float(getattr(self.strengths, name, 1.0)) if self.strengths is not None else 1.0

    def _crop_theta(self, height: int, width: int, draw: Draw) -> torch.Tensor:
        short = min(height, width)
        side = self.sides(self, draw, short)
        if self.cut_full:  # the first cutout of each image sees all of it
            rest = side.view(draw.images, self.cutn)[:, 1:]
            side = torch.cat([side.new_ones(draw.images, 1), rest], dim=1).view(-1)
        scale_x = side if width == short else side * (short / width)
        scale_y = side if height == short else side * (short / height)
        # Centres keep each crop inside the image (normalized [-1, 1] coordinates): a number
        # u in [0, 1) puts it at (2u - 1)(1 - scale), one fused multiply-add of -(1 - scale).
        room_x = 1 - scale_x
        room_y = room_x if scale_y is scale_x else 1 - scale_y
        centre_x = torch.addcmul(-room_x, draw.uniform(low=0, high=1), room_x, value=2)
        centre_y = torch.addcmul(-room_y, draw.uniform(low=0, high=1), room_y, value=2)
        zero = torch.zeros_like(scale_x)
        return torch.stack([scale_x, zero, centre_x, zero, scale_y, centre_y], -1).view(-1, 2, 3)

    def random_counts(self) -> tuple[int, int]:
        """How many uniform and normal numbers one image's cutouts take per step (traced once
        on the meta device: the counts depend on the settings, not on the image)."""
        if self.cutn not in self._counts:
            draw = Draw(None, None, self.cutn)
            with torch.autocast("cpu", enabled=False):
                self._cut(torch.zeros(1, 3, 8, 8, device="meta"), draw)
            self._counts[self.cutn] = tuple(draw.used)
        return self._counts[self.cutn]

    def draw_numbers(self, generators: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's random numbers for one image per generator: uniforms (K, U) and
        normals (K, N), drawn as one call of each kind per generator."""
        uniform, normal = self.random_counts()
        device = generators[0].device
        if len(generators) == 1:  # one row: no stacking kernel
            return (torch.rand(uniform, generator=generators[0], device=device).unsqueeze(0),
                    torch.randn(normal, generator=generators[0], device=device).unsqueeze(0))
        uniforms = torch.stack([torch.rand(uniform, generator=g, device=device) for g in generators])
        normals = torch.stack([torch.randn(normal, generator=g, device=device) for g in generators])
        return uniforms, normals

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(1, 3, H, W) image in [0, 1] -> (cutn, 3, S, S) augmented cutouts, in fp32, with
        random numbers from `generator`."""
        return self.cut(image, *self.draw_numbers([generator]))

    def cut(self, images: torch.Tensor, uniforms: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        """(K, 3, H, W) images in [0, 1] -> (K * cutn, 3, S, S) augmented cutouts (image by
        image), in fp32, from `draw_numbers` output.

        Cut in fp32 even under autocast: a bf16 sampling coordinate is only good to about a
        pixel at 512 pixels, so bf16 cutouts would shift and their gradient would land on every
        second or fourth pixel. The sampling is a small part of a step.
        """
        with torch.autocast(images.device.type, enabled=False):
            return self._cut(images.float(), Draw(uniforms, normals, self.cutn))

    def _cut(self, images: torch.Tensor, draw: Draw) -> torch.Tensor:
        count, channels, height, width = images.shape
        theta = self._crop_theta(height, width, draw)
        theta = self._augment("theta", theta, draw)
        fine = 2 * self.cut_size
        grid = F.affine_grid(theta, [draw.count, channels, fine, fine], align_corners=False)
        grid = self._augment("grid", grid, draw)
        # Each image's cutouts side by side in one tall grid: one grid_sample reads all K
        # images without copying any of them once per cutout.
        grid = grid.reshape(count, self.cutn * fine, fine, 2)
        cutouts = F.grid_sample(images, grid, mode="bilinear", padding_mode=self.padding,
                                align_corners=False)
        cutouts = F.avg_pool2d(cutouts, 2)  # (K, 3, cutn * S, S): no window spans two cutouts
        size = self.cut_size
        cutouts = cutouts.view(count, channels, self.cutn, size, size).transpose(1, 2)
        cutouts = cutouts.reshape(draw.count, channels, size, size)
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
    numbers = draw.uniform(low=0, high=1)
    if cutouts.cut_pow != 1.0:
        numbers = numbers.pow(cutouts.cut_pow)
    return numbers * (1.0 - smallest) + smallest


@CUT_METHODS.register("pooled")
def whole_image(cutouts: Cutouts, draw: Draw, short: int) -> torch.Tensor:
    """Every cutout sees the whole image (the peers' default); only augmentations differ."""
    return torch.ones(draw.count, device=draw.device)


@CUT_METHODS.register("mixed")
def mixed_sides(cutouts: Cutouts, draw: Draw, short: int) -> torch.Tensor:
    """Half the cutouts see the whole image, half are the notebook's random crops: Disco
    Diffusion's MakeCutoutsDango mix of "overview" and "inner" cuts (the composition and the
    detail judged in one batch)."""
    sides = random_sides(cutouts, draw, short)
    whole = torch.arange(cutouts.cutn, device=draw.device) < cutouts.cutn // 2
    return torch.where(whole.repeat(draw.images), 1.0, sides)

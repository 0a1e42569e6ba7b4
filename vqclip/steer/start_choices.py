"""Starts of several choices: the shapes world's shapes, each in each of its colors, centred on black.

`init_noise: shapes` offers them all; before the first step the run's CLIP scores each as the
generator draws it and the run starts from the one its prompts fit best (vqclip.run.start_pick).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vqclip.shapes.data import PALETTE, SHAPES, Scene, ShapeObject, render_scene, to_tensor

# A shape's extent from its centre as a share of the short side: the size the shapes VQGAN
# redraws every shape at so that the pixel judge names it (BENCHMARKS.md, "Why stars and
# squares fall short").
START_RADIUS = 0.25


@dataclass(frozen=True)
class StartChoices:
    """Named start canvases, all offered to a run: "COLOR SHAPE" for each color and shape."""

    colors: tuple[str, ...]
    shapes: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{color} {shape}" for color in self.colors for shape in self.shapes)

    def draw(self, width: int, height: int) -> torch.Tensor:
        """(C, 3, H, W) canvases in the order of `names`, each shape centred in the frame."""
        side = min(width, height)
        canvases = torch.zeros(len(self.names), 3, height, width)
        top, left = (height - side) // 2, (width - side) // 2
        for index, name in enumerate(self.names):
            color, shape = name.split(" ")
            drawn = ShapeObject(shape, color, PALETTE[color], 0.5, 0.5, START_RADIUS)
            canvases[index, :, top:top + side, left:left + side] = to_tensor(
                render_scene(Scene("black", (drawn,)), size=side))
        return canvases


SHAPE_STARTS = StartChoices(tuple(PALETTE), SHAPES)

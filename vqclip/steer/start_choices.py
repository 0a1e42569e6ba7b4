"""Starts of several choices: the shapes world's shapes, each in each of its colors, centred on black.

`init_noise: shapes` offers them all; before the first step the run's CLIP scores each as the
generator draws it and the run starts from the one its prompts fit best (vqclip.run.start_pick).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vqclip.shapes.data import COLORS, SHAPES, draw_shape


@dataclass(frozen=True)
class StartChoices:
    """Named start canvases, all offered to a run: "COLOR SHAPE" for each color and shape, drawn
    at the shapes world's default radius. Redrawn by the shapes VQGAN at 64 px, the pixel judge
    passes every one of the 45 (BENCHMARKS.md, "A start the CLIP picks among the world's
    shapes", step 0)."""

    colors: tuple[str, ...]
    shapes: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{color} {shape}" for color in self.colors for shape in self.shapes)

    def draw(self, width: int, height: int) -> torch.Tensor:
        """(C, 3, H, W) canvases in the order of `names`, each shape centred in the frame."""
        side = min(width, height)
        top, left = (height - side) // 2, (width - side) // 2
        canvases = torch.zeros(len(self.names), 3, height, width)
        drawn = (draw_shape(shape, color, size=side, as_tensor=True)
                 for color in self.colors for shape in self.shapes)
        for canvas, shape in zip(canvases, drawn, strict=True):
            canvas[:, top:top + side, left:left + side] = shape
        return canvases


SHAPE_STARTS = StartChoices(COLORS, SHAPES)

"""The pixel judge, validated on drawn shapes whose truth is known, before it judges generated ones."""

from __future__ import annotations

import numpy as np
import pytest

from vqclip.shapes.data import COLORS, PALETTE, SHAPES, Scene, ShapeObject, draw_shape, render_scene
from vqclip.shapes.pixel_judge import judge


def test_drawn_single_shapes_of_every_kind_size_and_place_are_judged_right() -> None:
    rng = np.random.default_rng(7)
    wrong = []
    for _ in range(300):
        shape, color = SHAPES[rng.integers(len(SHAPES))], COLORS[rng.integers(len(COLORS))]
        radius = rng.uniform(0.09, 0.38)
        center = tuple(rng.uniform(radius + 0.02, 0.98 - radius, size=2))
        verdict = judge(draw_shape(shape, color, radius=radius, center=center), color, shape)
        if not verdict.right:
            wrong.append((shape, color, round(radius, 2), verdict))
    assert len(wrong) <= 6, wrong  # 98 %


@pytest.mark.parametrize("shape", ["circle", "square", "triangle", "star"])
def test_each_shape_is_told_from_the_others(shape) -> None:
    image = draw_shape(shape, "red", radius=0.3)
    assert judge(image, "red", shape).shape
    assert not any(judge(image, "red", other).shape for other in SHAPES if other != shape)


def test_wrong_color_two_objects_and_a_cut_shape_fail_their_criteria() -> None:
    blue = draw_shape("circle", "blue", radius=0.3)
    assert not judge(blue, "red", "circle").color

    two = render_scene(Scene("black", tuple(
        ShapeObject("circle", "red", PALETTE["red"], cx, 0.5, 0.15) for cx in (0.25, 0.75))))
    verdict = judge(two, "red", "circle")
    assert verdict.color and not verdict.single and not verdict.right

    cut = draw_shape("square", "red", radius=0.3, center=(0.1, 0.5))
    assert not judge(cut, "red", "square").inside

"""The pixel judge, validated on drawn shapes whose truth is known, before it judges generated ones."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vqclip.shapes.data import COLORS, PALETTE, SHAPES, Scene, ShapeObject, draw_shape, render_scene
from vqclip.shapes.pixel_judge import MATCH_FLOOR, judge, outline_match, shape_of


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


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_is_told_from_the_others(shape) -> None:
    image = draw_shape(shape, "red", radius=0.3)
    assert judge(image, "red", shape).shape
    assert not any(judge(image, "red", other).shape for other in SHAPES if other != shape)


def test_a_right_verdict_is_plain_bools_that_a_verdicts_file_can_hold() -> None:
    verdict = judge(draw_shape("cross", "blue", radius=0.25), "blue", "cross")
    assert verdict.right
    line = json.loads(json.dumps({**asdict(verdict), "right": verdict.right}))
    assert line == {"color": True, "shape": True, "single": True, "inside": True, "right": True}


def test_outline_match_is_high_for_the_drawn_shape_low_for_another_color_or_shape() -> None:
    star = draw_shape("star", "green", radius=0.25)
    assert outline_match(star, "green", "star") >= 0.85
    assert outline_match(star, "green", "cross") < MATCH_FLOOR
    assert outline_match(star, "red", "star") == 0.0


def test_a_bar_a_four_pointed_star_and_a_notched_blob_are_none_of_the_shapes_they_resemble() -> None:
    """Fill and solidity alone once called these a square, a star and a cross."""
    bar = np.zeros((64, 64), dtype=bool)
    bar[20:44, 24:36] = True
    assert shape_of(bar) != "square"

    angles = np.radians(np.arange(8) * 45.0 - 90)
    radii = np.where(np.arange(8) % 2 == 0, 18.0, 6.0)
    four_points = [(32 + r * np.cos(a), 32 + r * np.sin(a)) for r, a in zip(radii, angles, strict=True)]
    assert shape_of(_polygon_region(four_points)) not in ("star", "cross")

    notched = np.zeros((64, 64), dtype=bool)
    notched[18:46, 18:46] = True
    notched[28:38, 32:46] = False
    assert shape_of(notched) != "cross"


def _polygon_region(points: list[tuple[float, float]]) -> np.ndarray:
    canvas = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=255)
    return np.asarray(canvas) >= 128


def test_wrong_color_two_objects_and_a_cut_shape_fail_their_criteria() -> None:
    blue = draw_shape("circle", "blue", radius=0.3)
    assert not judge(blue, "red", "circle").color

    two = render_scene(Scene("black", tuple(
        ShapeObject("circle", "red", PALETTE["red"], cx, 0.5, 0.15) for cx in (0.25, 0.75))))
    verdict = judge(two, "red", "circle")
    assert verdict.color and not verdict.single and not verdict.right

    cut = draw_shape("square", "red", radius=0.3, center=(0.1, 0.5))
    assert not judge(cut, "red", "square").inside

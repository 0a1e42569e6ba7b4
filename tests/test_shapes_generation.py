"""Generation on the bundled shapes models, judged by pixel statistics (no model in the judge)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vqclip.cli.app import app
from vqclip.images import tensor_to_pil
from vqclip.outputs.metadata import read_record
from vqclip.run.build import build
from vqclip.run.config import build_config
from vqclip.run.prepare import prepare
from vqclip.shapes.data import COLORS, PALETTE, SHAPES, article, draw_shape
from vqclip.shapes.pixel_judge import (
    color_mask,
    dominant_color,
    judge,
    largest_region,
    nearest_colors,
    roundness,
)
from vqclip.steer.losses import LossContext, border
from vqclip.steer.start_choices import SHAPE_STARTS


def generate(tmp_path, prompt: str, *items: str, steps: int = 80):
    cfg, _ = build_config(preset="shapes", dotlist=[f"prompt={prompt}", f"out={tmp_path}",
                                                    f"steps={steps}", *items])
    return build(prepare(cfg)).execute()


def hex_color(name: str) -> str:
    return "#" + "".join(f"{c:02x}" for c in PALETTE[name])


@pytest.mark.parametrize("color", ["red", "blue", "yellow"])
def test_solid_init_image_gives_that_color_at_step_0(tmp_path, color) -> None:
    result = generate(tmp_path, "a circle", f"init_image='{hex_color(color)}'", "save_every=1",
                      steps=1)
    with Image.open(result.run_dir / "frames" / "000000.png") as frame:
        pixels = np.asarray(frame.convert("RGB"), dtype=np.float32)
    assert dominant_color(Image.fromarray(pixels.astype(np.uint8))) == color
    assert np.abs(pixels.mean(axis=(0, 1)) - np.array(PALETTE[color])).max() < 40


def test_the_border_loss_is_zero_for_a_shape_inside_and_grows_as_it_crosses_the_edge() -> None:
    def loss(center: tuple[float, float]) -> float:
        image = draw_shape("square", "red", radius=0.2, center=center, as_tensor=True)[None]
        return float(border(LossContext(image, [], [])))

    inside, touching, across = loss((0.5, 0.5)), loss((0.21, 0.5)), loss((0.1, 0.5))
    assert inside == 0.0 < touching < across


def test_the_spot_start_is_a_dim_spot_in_the_centre(tmp_path) -> None:
    result = generate(tmp_path, "a red square", "seed=0", "save_every=1", "init_image=null",
                      "init_noise=spot", steps=1)
    with Image.open(result.run_dir / "frames" / "000000.png") as frame:
        pixels = np.asarray(frame.convert("RGB"), dtype=np.float32)
    centre, corners = pixels[24:40, 24:40].mean(), pixels[:8, :8].mean()
    assert 10 < centre < 80 and corners < 8


def test_the_shape_starts_are_every_shape_in_every_color_centred_on_black() -> None:
    canvases = SHAPE_STARTS.draw(96, 64)
    assert canvases.shape == (len(COLORS) * len(SHAPES), 3, 64, 96)
    assert float(canvases[..., :16].abs().max()) == float(canvases[..., -16:].abs().max()) == 0.0
    for name, canvas in zip(SHAPE_STARTS.names, canvases, strict=True):
        color, shape = name.split()
        assert judge(tensor_to_pil(canvas[:, :, 16:80]), color, shape).right, name


@pytest.mark.parametrize(("prompt", "start"), [("a red star", "red star"),
                                               ("a green triangle", "green triangle"),
                                               ("a blue cross", "blue cross")])
def test_a_run_from_the_shapes_starts_from_the_one_its_prompt_asks_for(tmp_path, prompt, start) -> None:
    result = generate(tmp_path, prompt, "init_noise=shapes", "save_every=1", steps=1)
    record = read_record(result.image)["start"]
    assert record["picked"] == start
    assert min(record["choices"], key=record["choices"].get) == start
    assert len(record["choices"]) == len(COLORS) * len(SHAPES)
    color, shape = start.split()
    with Image.open(result.run_dir / "frames" / "000000.png") as frame:
        assert judge(frame.convert("RGB"), color, shape).right


def test_an_image_prompt_alone_picks_the_start_it_shows(tmp_path) -> None:
    picture = tmp_path / "blue-triangle.png"
    draw_shape("triangle", "blue", radius=0.3, center=(0.4, 0.6)).save(picture)
    result = generate(tmp_path, "''", "init_noise=shapes", f"image_prompts=['{picture}']", steps=1)
    assert read_record(result.image)["start"]["picked"] == "blue triangle"


def test_the_command_line_says_which_start_it_picked(tmp_path) -> None:
    result = CliRunner().invoke(app, ["generate", "a blue cross", "--preset", "shapes", "--steps", "1",
                                      "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "starting from the blue cross, the lowest CLIP loss of 45 starts" in result.stderr


def test_an_init_image_overrides_the_shape_starts_and_nothing_is_picked(tmp_path) -> None:
    result = generate(tmp_path, "a red star", "init_noise=shapes", f"init_image='{hex_color('blue')}'",
                      "save_every=1", steps=1)
    assert "start" not in read_record(result.image)
    with Image.open(result.run_dir / "frames" / "000000.png") as frame:
        assert dominant_color(frame.convert("RGB")) == "blue"


def test_candidates_race_from_the_picked_start(tmp_path) -> None:
    result = generate(tmp_path, "a yellow square", "init_noise=shapes", "candidates=2",
                      "candidate_steps=1", steps=2)
    record = read_record(result.image)
    assert record["start"]["picked"] == "yellow square"
    assert record["candidates"]["winner"] == result.winner


QUALITY_SEED = 1


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Images of the shapes preset at its own settings and step count, generated once per prompt."""
    out = tmp_path_factory.mktemp("drawn")
    images: dict[str, Image.Image] = {}
    steps = build_config(preset="shapes")[0].steps

    def draw(prompt: str) -> Image.Image:
        if prompt not in images:
            with Image.open(generate(out, prompt, f"seed={QUALITY_SEED}", "save_every=0",
                                     steps=steps).image) as image:
                images[prompt] = image.convert("RGB")
        return images[prompt]

    return draw


# The colors that pass for every seed in benchmarks/shapes_quality.py; cyan and yellow do not
# yet (BENCHMARKS.md). Long, as every test of the preset's full length but the quality floor
# (tests/test_shapes_quality.py), which judges the color and shape of 15 images in the fast suite.
@pytest.mark.long
@pytest.mark.parametrize("color", ["red", "orange", "green", "blue", "purple", "pink"])
def test_the_asked_color_dominates_the_image(drawn, color) -> None:
    assert dominant_color(drawn(f"{article(color)} {color} circle")) == color


@pytest.mark.long
def test_a_circle_prompt_draws_a_rounder_region_than_a_square_prompt(drawn) -> None:
    circle, square = (
        roundness(largest_region(color_mask(drawn(f"a red {shape}"), "red")))
        for shape in ("circle", "square")
    )
    assert circle > square


def color_share(image: Image.Image, color: str) -> float:
    nearest, bright = nearest_colors(image)
    return float((bright & (nearest == list(PALETTE).index(color))).mean())


@pytest.mark.long
def test_story_mode_switched_at_half_ends_with_the_second_prompts_color(tmp_path) -> None:
    # 300 steps: switched at 75 of 150 the blue square wins in 2 of 4 seeds (BENCHMARKS.md).
    # Measured with the preset's earlier 24 cutouts at a constant lr 0.1; at its 8 cutouts and lr
    # 0.2 this seed's second half ends green, not blue (story mode is not yet measured at the
    # preset's later settings). From the spot, as then: the preset's start is the first prompt's
    # shape.
    result = generate(tmp_path, "a red square ^ a blue square", "seed=0", "save_every=150",
                      "cutn=24", "lr=0.1", "lr_schedule.options.floor=1.0", "init_noise=spot", steps=300)
    lines = [json.loads(x) for x in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert {"event": "prompt_switch", "step": 150, "prompt": "a blue square"} in lines
    with Image.open(result.run_dir / "frames" / "000150.png") as at_switch, \
            Image.open(result.image) as final:
        assert dominant_color(at_switch) != "blue"
        assert dominant_color(final) == "blue"
        assert color_share(final, "blue") > color_share(at_switch, "blue") + 0.01


@pytest.mark.long
def test_negative_prompt_lowers_similarity_to_that_text(tmp_path) -> None:
    from vqclip.tasks import load_task_perceptor, score_images

    plain = generate(tmp_path, "a circle", "seed=5")
    pushed = generate(tmp_path, "a circle", "seed=5", "negative='a red circle'")
    cfg, _ = build_config(preset="shapes")
    perceptor, info = load_task_perceptor(cfg.clip, cfg.device)
    scores = score_images(perceptor, info, [plain.image, pushed.image], ["a red circle"])
    without, with_negative = (r.similarities[0] for r in scores.results)
    assert with_negative < without - 0.02


def test_the_vivid_loss_falls_as_a_shape_brightens_and_leaves_the_dark_ground_alone() -> None:
    from vqclip.steer.losses import VividOptions, vivid

    bright = draw_shape("square", "yellow", radius=0.2, as_tensor=True)[None]

    def loss(image) -> float:
        return float(vivid(LossContext(image, [], []), VividOptions()))

    assert loss(bright * 0.6) > loss(bright * 0.8) > loss(bright) >= 0
    assert loss(bright * 0.2) == 0.0  # nothing lit: a dark image is left alone
    image = (bright * 0.6).requires_grad_(True)
    vivid(LossContext(image, [], []), VividOptions()).sum().backward()
    shape = bright.amax(dim=1, keepdim=True).expand_as(bright) > 0
    assert (image.grad[shape] <= 0).all() and image.grad[shape].min() < 0  # brighter lowers it
    assert (image.grad[~shape] == 0).all()  # the black ground gets no pull

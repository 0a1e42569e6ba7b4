"""The shapes dataset: deterministic, covers its vocabulary, captions tell the truth."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from vqclip.shapes.data import (
    BACKGROUNDS,
    BLOB,
    COLORS,
    PALETTE,
    SHAPES,
    Claim,
    HardNegatives,
    batch_for_seed,
    blobbed,
    blurred,
    caption_scene,
    cut_off,
    darkened,
    draw_shape,
    make_batch,
    ragged,
    random_multi_scene,
    random_single_scene,
    render_mask,
    render_scene,
    softened,
    view_scene,
)
from vqclip.shapes.pixel_judge import judge


def test_same_seed_same_batch() -> None:
    a = batch_for_seed(24, 7, augment=True, with_masks=True)
    b = batch_for_seed(24, 7, augment=True, with_masks=True)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.masks, b.masks)
    assert a.captions == b.captions
    assert all(torch.equal(a.labels[k], b.labels[k]) for k in a.labels)


def test_different_seeds_differ() -> None:
    assert not torch.equal(batch_for_seed(8, 1).images, batch_for_seed(8, 2).images)


def test_batch_layout() -> None:
    batch = batch_for_seed(16, 3, with_masks=True)
    assert batch.images.shape == (16, 3, 64, 64)
    assert batch.images.dtype == torch.float32
    assert 0.0 <= float(batch.images.min()) and float(batch.images.max()) <= 1.0
    assert batch.masks is not None and batch.masks.shape == (16, 1, 64, 64)
    assert len(batch.captions) == 16 and all(isinstance(c, str) for c in batch.captions)
    single = batch.labels["count"] == 1
    assert bool((batch.labels["shape"][single] >= 0).all())
    assert bool((batch.labels["shape"][~single] == -1).all())


def test_covers_every_shape_color_background_and_count() -> None:
    batch = batch_for_seed(600, 11)
    singles = batch.labels["count"] == 1
    assert set(batch.labels["shape"][singles].tolist()) == set(range(len(SHAPES)))
    assert set(batch.labels["color"][singles].tolist()) == set(range(len(COLORS)))
    assert {s.background for s in batch.scenes} == set(BACKGROUNDS)
    assert any(s.second_background for s in batch.scenes)  # two-tone backgrounds
    assert set(batch.labels["count"].tolist()) >= {1, 2, 3, 4}
    assert len(COLORS) >= 8 and len(SHAPES) >= 5


def test_caption_phrasings() -> None:
    captions = set(batch_for_seed(600, 5).captions)
    patterns = [
        r"^an? \w+ (circle|square|triangle|star|cross)$",
        r"^an? (small|medium|large) \w+ \w+ (at|on|in) the [\w ]+$",
        r"^an? \w+ \w+ on an? [\w ]+ background$",
        r"^(two|three|four) \w+ \w+(s|es)$",
        r"^(one|a single) \w+ \w+$",
    ]
    for pattern in patterns:
        assert any(re.match(pattern, c) for c in captions), pattern


def test_every_caption_is_true_of_its_own_image() -> None:
    batch = batch_for_seed(200, 13, augment=True)
    positives = batch.positives()
    assert bool(positives.diagonal().all())


def test_one_object_captions_reject_several_copies() -> None:
    rng = np.random.default_rng(0)
    scene = random_multi_scene(rng)
    while len({(o.shape, o.color) for o in scene.objects}) != 1:
        scene = random_multi_scene(rng)
    obj = scene.objects[0]
    assert not Claim(count=1, shape=obj.shape, color=obj.color).matches(scene)
    assert Claim(at_least=2, shape=obj.shape, color=obj.color).matches(scene)


def test_dark_shapes_are_dimmer_and_only_dark_captions_fit_them() -> None:
    rng = np.random.default_rng(3)
    scene = random_single_scene(rng)
    dark = darkened(scene, rng)
    (bright_obj,), (dark_obj,) = scene.objects, dark.objects
    assert max(dark_obj.rgb) < 0.61 * max(bright_obj.rgb)
    color, shape = bright_obj.color, bright_obj.shape
    assert not Claim(count=1, shape=shape, color=color, dark=False).matches(dark)
    assert Claim(count=1, shape=shape, color=color, dark=True).matches(dark)
    assert Claim(count=1, shape=shape).matches(dark)  # "a circle" is true of a dark circle too
    for _ in range(20):
        caption, claim = caption_scene(dark, rng)
        assert claim.matches(dark)
        assert (color in caption) == (f"dark {color}" in caption)


def test_dark_fraction_darkens_one_shape_scenes_on_black_only() -> None:
    batch = make_batch(200, np.random.default_rng(5), dark_fraction=1.0)
    for scene in batch.scenes:
        darkened_here = any(o.dark for o in scene.objects)
        eligible = (len(scene.objects) == 1 and scene.background_word == "black"
                    and scene.objects[0].color != "white")
        assert darkened_here == eligible
    assert bool(batch.positives().diagonal().all())


@pytest.mark.parametrize("make", [cut_off, blurred, blobbed])
def test_hard_negatives_are_untrue_of_the_plain_caption(make) -> None:
    rng = np.random.default_rng(4)
    for _ in range(20):
        scene = random_single_scene(rng)
        obj = scene.objects[0]
        plain = Claim(count=1, shape=obj.shape, color=obj.color, dark=False, whole=True, blurry=False)
        assert plain.matches(scene)
        negative = make(scene, rng)
        assert not plain.matches(negative)
        caption, claim = caption_scene(negative, rng)
        assert claim.matches(negative), caption
        # "a green shape" is true of a green blob and of the square it was
        assert claim.matches(scene) == (make is blobbed and claim.shape is None), caption
        if make is cut_off:
            assert caption.startswith("part of ") and not negative.objects[0].whole
        if make is blurred:
            assert caption.startswith("a blurry picture of ") and "picture of a picture" not in caption
        if make is blobbed:
            assert negative.objects[0].shape == BLOB and (BLOB in caption or "shape" in caption)


@pytest.mark.parametrize("shape", ["square", "triangle", "star", "cross"])
def test_a_softened_shape_is_a_blob_the_pixel_judge_no_longer_calls_that_shape(shape: str) -> None:
    rng = np.random.default_rng(10)
    for _ in range(15):
        scene = random_single_scene(rng)
        cx, cy = rng.uniform(0.4, 0.6, size=2)
        obj = replace(scene.objects[0], shape=shape, radius=float(rng.uniform(0.17, 0.38)),
                      cx=float(cx), cy=float(cy))
        scene = replace(scene, objects=(obj,), background="black", second_background=None)
        negative = softened(scene, rng)
        assert negative.objects[0].shape == BLOB
        assert not Claim(count=1, shape=shape, color=obj.color).matches(negative)
        caption, claim = caption_scene(negative, rng)
        assert claim.matches(negative), caption
        assert (np.asarray(render_mask(negative)) > 127).sum() >= 50
        assert judge(render_scene(scene), obj.color, shape).shape
        assert not judge(render_scene(negative), obj.color, shape).shape


@pytest.mark.parametrize("shape", ["square", "triangle", "star", "cross"])
def test_a_ragged_shape_is_a_blob_the_pixel_judge_mostly_no_longer_calls_that_shape(shape: str) -> None:
    rng = np.random.default_rng(12)
    judged_shape = 0
    for _ in range(20):
        scene = random_single_scene(rng)
        obj = replace(scene.objects[0], shape=shape, radius=float(rng.uniform(0.17, 0.3)), cx=0.5, cy=0.5)
        scene = replace(scene, objects=(obj,), background="black", second_background=None)
        negative = ragged(scene, rng)
        assert negative.objects[0].shape == BLOB and negative.objects[0].traced == shape
        assert not Claim(count=1, shape=shape, color=obj.color).matches(negative)
        caption, claim = caption_scene(negative, rng)
        assert claim.matches(negative), caption
        assert (np.asarray(render_mask(negative)) > 127).sum() >= 50
        assert judge(render_scene(scene), obj.color, shape).shape
        judged_shape += judge(render_scene(negative), obj.color, shape).shape
    assert judged_shape <= 8


@pytest.mark.parametrize("spoil", [softened, ragged])
def test_softening_or_ragging_leaves_circles_and_small_shapes_as_they_are(spoil) -> None:
    rng = np.random.default_rng(11)
    for _ in range(30):
        scene = random_single_scene(rng)
        obj = scene.objects[0]
        kept = obj.shape == "circle" or obj.size_word == "small"
        assert (spoil(scene, rng) == scene) == kept


def test_without_hard_negatives_captions_are_as_the_shipped_clip_learned_them() -> None:
    rng = np.random.default_rng(9)
    scene = cut_off(random_single_scene(rng), rng)
    for _ in range(20):
        caption, claim = caption_scene(scene, rng, spoilers=False)
        assert not caption.startswith("part of") and claim.whole is None and claim.blurry is None


def test_a_cut_off_shape_shows_part_of_itself_at_the_edge() -> None:
    rng = np.random.default_rng(6)
    for _ in range(20):
        scene = cut_off(random_single_scene(rng), rng)
        mask = np.asarray(render_mask(scene)) > 127
        edges = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert edges.any() and mask.sum() > 10


def test_hard_negatives_in_a_batch_keep_every_caption_true_and_blobs_unlabelled() -> None:
    batch = make_batch(120, np.random.default_rng(8), multi_fraction=0.0,
                       hard_negatives=HardNegatives(blob=0.3, cut=0.3, blur=0.3))
    assert bool(batch.positives().diagonal().all())
    blobs = [s.objects[0].shape == BLOB for s in batch.scenes]
    assert 10 < sum(blobs) < 60
    labels = batch.labels["shape"].tolist()
    assert all((label == -1) == blob for label, blob in zip(labels, blobs, strict=True))
    assert any(not s.objects[0].whole for s in batch.scenes) and any(s.blur for s in batch.scenes)


def test_mirroring_moves_left_to_right() -> None:
    rng = np.random.default_rng(1)
    scene = random_single_scene(rng)
    while scene.objects[0].position_word != "left":
        scene = random_single_scene(rng)
    mirrored = view_scene(scene, 0.0, 0.0, 1.0, flip=True)
    assert mirrored.objects[0].position_word == "right"
    text, claim = caption_scene(mirrored, rng)
    assert claim.matches(mirrored) and text


@pytest.mark.parametrize("color", COLORS)
def test_draw_shape_pixels_have_the_palette_color(color: str) -> None:
    img = draw_shape("square", color, background="black", radius=0.3, as_tensor=True)
    assert isinstance(img, torch.Tensor) and img.shape == (3, 64, 64)
    center = img[:, 24:40, 24:40].mean(dim=(1, 2)) * 255
    assert torch.allclose(center, torch.tensor(PALETTE[color], dtype=torch.float32), atol=1.0)
    assert float(img[:, :4, :4].max()) == 0.0  # the corner stays background


def test_draw_shape_pil_and_every_shape() -> None:
    for shape in SHAPES:
        img = draw_shape(shape, "red", size=32, background="white")
        assert img.size == (32, 32) and img.mode == "RGB"
        assert img.getpixel((16, 16)) != (255, 255, 255)


def test_draw_shape_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="^shape='hexagon': unknown name; .*valid: .*circle"):
        draw_shape("hexagon", "red")
    with pytest.raises(ValueError, match="^color='teal': unknown name; "):
        draw_shape("circle", "teal")
    with pytest.raises(ValueError, match="^background='plaid': unknown name; "):
        draw_shape("circle", "red", background="plaid")


def test_multi_fraction_zero_gives_single_shapes() -> None:
    batch = make_batch(50, np.random.default_rng(2), multi_fraction=0.0)
    assert bool((batch.labels["count"] == 1).all())

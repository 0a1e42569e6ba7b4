"""Steered negatives: images the CLIP in training steers the shapes VQGAN to, as blob captions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vqclip.shapes.data import (
    BLOB,
    PALETTE,
    SIZE_RADII,
    Scene,
    ShapeObject,
    make_batch,
    render_scene,
    to_tensor,
)
from vqclip.shapes.steered import (
    Steered,
    SteeredNegatives,
    aligned_twin,
    start_images,
    steer,
    steer_round,
)
from vqclip.shapes.train_clip import (
    ClipTrainConfig,
    adversarial_images,
    build_clip,
    clip_model_config,
    load_clip,
    multi_positive_loss,
    normalize,
    save_clip,
    saved_model_config,
    train_clip,
    with_steered,
)
from vqclip.shapes.train_vqgan import load_shapes_vqgan

WEIGHTS = Path(__file__).resolve().parent.parent / "vqclip" / "weights"


@pytest.fixture(scope="module")
def models() -> tuple:
    clip, tokenizer = load_clip(WEIGHTS / "shapes_clip")
    vqgan = load_shapes_vqgan(WEIGHTS / "shapes_vqgan").requires_grad_(False)
    return clip, tokenizer, vqgan


def _similarity(clip, tokenizer, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        image = clip.encode_image(normalize(images), normalize=True)
        text = clip.encode_text(tokenizer(prompts), normalize=True)
    return (image * text).sum(-1)


def test_steering_draws_toward_the_prompt_and_leaves_the_clip_alone(models: tuple) -> None:
    clip, tokenizer, vqgan = models
    prompts = ["a red circle", "a blue square"]
    before = {k: v.clone() for k, v in clip.state_dict().items()}
    images = steer(clip, vqgan, prompts, SteeredNegatives(steps=30, views=2),
                   torch.Generator().manual_seed(0), normalize)
    assert images.shape == (2, 3, 64, 64)
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    black = ((vqgan.decode(vqgan.quantize_latent(vqgan.encode(torch.full_like(images, -1.0)))[0])
              + 1) / 2).clamp(0, 1)
    assert (_similarity(clip, tokenizer, images, prompts)
            > _similarity(clip, tokenizer, black, prompts) + 0.1).all()
    assert all(torch.equal(v, before[k]) for k, v in clip.state_dict().items())


def test_steering_can_start_from_the_presets_spot(models: tuple) -> None:
    from vqclip.steer.generators import INIT_NOISE

    clip, _, vqgan = models
    spot = INIT_NOISE["spot"](64, 64, torch.Generator())
    assert torch.equal(start_images("spot", 2, 64), spot.expand(2, -1, -1, -1))
    standing = SteeredNegatives(steps=1, views=1, lr=0.0)  # Adam at lr 0: the start, decoded
    drawn = {start: steer(clip, vqgan, ["a red circle"], replace(standing, start=start),
                          torch.Generator().manual_seed(0), normalize)[0]
             for start in ("black", "spot")}
    centre = (slice(None), slice(28, 36), slice(28, 36))
    assert float(drawn["spot"][centre].mean()) > float(drawn["black"][centre].mean()) + 0.03


def test_a_round_keeps_only_what_the_judge_does_not_call_the_asked_shape(models: tuple) -> None:
    clip, _, vqgan = models
    standing = SteeredNegatives(images=6, steps=1, views=1, lr=0.0)  # the starts, decoded
    kept = {start: steer_round(clip, vqgan, replace(standing, start=start), np.random.default_rng(3),
                               torch.Generator().manual_seed(0), normalize)
            for start in ("black", "shape")}
    assert len(kept["black"]) == 6  # black is no shape: every image is a negative
    assert kept["shape"] == []  # a clean shape through the VQGAN is still that shape
    with pytest.raises(ValueError, match="start image per prompt"):
        steer(clip, vqgan, ["a red star"], replace(standing, start="shape"),
              torch.Generator().manual_seed(0), normalize)


def test_a_steered_image_is_true_only_of_blob_captions_of_its_color(models: tuple) -> None:
    _, _, vqgan = models
    rng = np.random.default_rng(0)
    batch = make_batch(8, rng)
    steered = [Steered(torch.rand(3, 64, 64), "red", "star"),
               Steered(torch.rand(3, 64, 64), "blue", "cross")]
    seen = with_steered(batch, steered, rng, vqgan, 0.5, torch.Generator().manual_seed(0))
    assert seen.images.shape == (12, 3, 64, 64)
    assert seen.captions[8:] == ["a red star", "a blue cross", "a red blob", "a blue blob"]
    assert torch.equal(seen.images[10], steered[0].image)
    steered_rows = seen.positives[10:]
    assert steered_rows[0].nonzero().flatten().tolist() == [10]
    assert steered_rows[1].nonzero().flatten().tolist() == [11]
    # The clean twin of "a red star" is one, and no other image is a blob.
    assert seen.positives[8, 8] and not seen.positives[:10, 10:].any()
    assert seen.positives.any(dim=0).all() and seen.positives.any(dim=1).all()
    assert BLOB not in " ".join(seen.captions[:10])


def _red_circle_drawn_for_a_star() -> Steered:
    circle = ShapeObject("circle", "red", PALETTE["red"], 0.3, 0.65, 0.15)
    return Steered(to_tensor(render_scene(Scene("black", (circle,)))), "red", "star")


def test_an_aligned_twin_lies_over_what_was_drawn() -> None:
    rng = np.random.default_rng(0)
    star = aligned_twin(_red_circle_drawn_for_a_star(), rng).objects[0]
    assert (star.shape, star.color) == ("star", "red")
    assert star.cx == pytest.approx(0.3, abs=0.02) and star.cy == pytest.approx(0.65, abs=0.02)
    assert star.radius == pytest.approx(0.15, abs=0.02)
    # Nothing of the asked color drawn: a star of a size the CLIP learned, somewhere inside.
    lost = aligned_twin(Steered(torch.zeros(3, 64, 64), "red", "star"), rng).objects[0]
    assert SIZE_RADII["small"][0] <= lost.radius <= SIZE_RADII["large"][1]
    assert lost.radius <= lost.cx <= 1 - lost.radius and lost.radius <= lost.cy <= 1 - lost.radius


def test_a_morph_is_true_of_the_shape_and_of_a_blob_in_the_shares_of_its_blend(models: tuple) -> None:
    _, _, vqgan = models
    rng = np.random.default_rng(0)
    batch = make_batch(8, rng)
    drawn = _red_circle_drawn_for_a_star()
    seen = with_steered(batch, [drawn], rng, vqgan, 0.0, torch.Generator().manual_seed(0), morphs=True)
    assert seen.images.shape == (11, 3, 64, 64)
    assert seen.captions[8:] == ["a red star", "a red blob"]
    twin, steered, blend = seen.images[8], seen.images[9], seen.images[10]
    assert torch.equal(steered, drawn.image)
    share = float(seen.positives[10, 8])
    assert 0.2 <= share <= 0.8
    assert float(seen.positives[10, 9]) == pytest.approx(1 - share)
    assert torch.allclose(blend, (1 - share) * steered + share * twin, atol=1e-6)
    # The twin is a star where the circle was: its pixels lie in the circle's box.
    rows, cols = torch.nonzero(twin.max(0).values > 0.5, as_tuple=True)
    assert 30 <= float(rows.float().mean()) <= 53 and 9 <= float(cols.float().mean()) <= 29


def test_training_on_steered_negatives(models: tuple) -> None:
    clip, _, vqgan = models
    start, _ = load_clip(WEIGHTS / "shapes_clip")
    steered = SteeredNegatives(per_step=2, refresh_every=2, images=2, steps=2, views=1)
    cfg = ClipTrainConfig(steps=3, batch_size=12, lr=3e-4, steered=steered)
    with pytest.raises(ValueError, match="VQGAN"):
        train_clip(cfg, start=start)
    losses: list[float] = []
    trained = train_clip(cfg, start=start, vqgan=vqgan, on_step=lambda _, loss: losses.append(loss))
    assert len(losses) == 3 and all(np.isfinite(losses))
    changed = [not torch.equal(a, b.float()) for a, b in
               zip(trained.state_dict().values(), clip.state_dict().values(), strict=True)]
    assert any(changed)


@pytest.mark.parametrize("option", [["--steer-every", "0"], ["--steered", "64"], ["--steer-steps", "x"],
                                    ["--steer-start", "white"], ["--steered", "43", "--steer-morphs"]])
def test_train_refuses_a_bad_steering_option_before_training(option: list[str], tmp_path, capsys) -> None:
    from vqclip.shapes.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["train", "--only", "clip", "--steered", "4", *option, "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    assert option[0] in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", [["--soft-negatives", "1.5"], ["--hard-negatives", "-0.1"],
                                    ["--hard-negatives", "0.3", "--soft-negatives", "0.2"],
                                    ["--soft-negatives", "0.6", "--ragged-negatives", "0.6"],
                                    ["--adversarial", "-1"], ["--adversarial", "inf"]])
def test_train_refuses_bad_negative_fractions_and_radii_before_training(
        option: list[str], tmp_path, capsys) -> None:
    from vqclip.shapes.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["train", "--only", "clip", *option, "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    assert option[-2] in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_adversarial_images_stay_within_the_radius_and_raise_the_loss(models: tuple) -> None:
    clip, tokenizer, _ = models
    batch = make_batch(8, np.random.default_rng(3), multi_fraction=0.0, augment=False)
    positives = batch.positives()
    with torch.no_grad():
        text = clip.encode_text(tokenizer(batch.captions), normalize=True)
    scale = clip.logit_scale.exp().detach()

    def loss(images: torch.Tensor) -> float:
        with torch.no_grad():
            image = clip.encode_image(normalize(images), normalize=True)
        return float(multi_positive_loss(image, text, positives, scale))

    moved = adversarial_images(clip, batch.images, text, positives, radius=1.0, steps=3)
    lengths = (moved - batch.images).flatten(1).norm(dim=1)
    assert (lengths <= 1.0 + 1e-4).all() and (lengths > 0.5).all()
    assert moved.min() >= 0 and moved.max() <= 1
    assert loss(moved) > loss(batch.images) + 0.1
    assert all(p.grad is None for p in clip.parameters())


def test_training_on_adversarial_images(models: tuple) -> None:
    clip, _, _ = models
    start, _ = load_clip(WEIGHTS / "shapes_clip")
    losses: list[float] = []
    trained = train_clip(ClipTrainConfig(steps=2, batch_size=12, lr=3e-4, adversarial=1.0),
                         start=start, on_step=lambda _, loss: losses.append(loss))
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert any(not torch.equal(a, b.float()) for a, b in
               zip(trained.state_dict().values(), clip.state_dict().values(), strict=True))


def _resnet_clip_config() -> dict:
    cfg = clip_model_config()
    cfg["vision_cfg"] = {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 16}
    return cfg


def test_steering_leaves_a_batch_norm_towers_running_statistics_alone(models: tuple) -> None:
    _, _, vqgan = models
    clip = build_clip(_resnet_clip_config(), seed=0).train()
    before = {k: v.clone() for k, v in clip.state_dict().items() if "running" in k}
    steer(clip, vqgan, ["a red star"], SteeredNegatives(steps=2, views=2),
          torch.Generator().manual_seed(0), normalize)
    assert clip.training
    assert before and all(torch.equal(clip.state_dict()[k], v) for k, v in before.items())


def test_training_on_from_a_saved_clip_keeps_its_architecture(tmp_path) -> None:
    from vqclip.shapes.__main__ import main

    cfg = _resnet_clip_config()
    save_clip(build_clip(cfg, seed=0), tmp_path / "start", cfg)
    assert main(["train", "--only", "clip", "--clip-from", str(tmp_path / "start"), "--clip-steps", "1",
                 "--n", "10", "--out", str(tmp_path / "out")]) == 0
    assert saved_model_config(tmp_path / "out" / "shapes_clip") == saved_model_config(tmp_path / "start")
    trained, _ = load_clip(tmp_path / "out" / "shapes_clip")
    assert trained.visual.layer1[0].bn1.num_features == 16

"""The shipped shapes models: the CLIP knows colors and shapes, the VQGAN redraws them."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch

from vqclip.images import pil_to_tensor, tensor_to_pil
from vqclip.models.vqgan import load_vqgan
from vqclip.shapes.data import COLORS, SHAPES, draw_shape
from vqclip.shapes.evaluate import (
    preference_accuracy,
    reconstruct,
    reconstruction_quality,
    zero_shot_accuracy,
)
from vqclip.shapes.pixel_judge import judge
from vqclip.shapes.train_clip import CLIP_MEAN, CLIP_STD

WEIGHTS = Path(__file__).resolve().parent.parent / "vqclip" / "weights"
CLIP_DIR = WEIGHTS / "shapes_clip"
VQGAN_DIR = WEIGHTS / "shapes_vqgan"
# Seeds used neither in training (SeedSequence spawns) nor by `python -m vqclip.shapes evaluate`.
HELD_OUT_SEED = 424_242
# Measured on the shipped VQGAN: 26.6 dB and 8.1/255 on 500 images (see MODEL_CARD.md);
# the floors leave room for the smaller, different sample drawn here.
PSNR_FLOOR = 25.0
COLOR_ERROR_CEILING = 12.0


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The shipped CLIP through open_clip's own local-dir loader, offline."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    try:
        name = f"local-dir:{CLIP_DIR}"
        model, _, preprocess = open_clip.create_model_and_transforms(name)
        tokenizer = open_clip.get_tokenizer(name)
    finally:
        mp.undo()
    return model.eval(), tokenizer, preprocess


@pytest.fixture(scope="module")
def vqgan() -> torch.nn.Module:
    return load_vqgan(VQGAN_DIR / "config.json", VQGAN_DIR / "model.safetensors")


def _normalize_with(model: torch.nn.Module):
    cfg = model.visual.preprocess_cfg
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    return lambda images: (images - mean) / std


def test_shipped_files_and_sizes() -> None:
    expected = [CLIP_DIR / "open_clip_config.json", CLIP_DIR / "open_clip_model.safetensors",
                VQGAN_DIR / "config.json", VQGAN_DIR / "model.safetensors",
                WEIGHTS / "MODEL_CARD.md"]
    for path in expected:
        assert path.is_file(), path
    total = sum(p.stat().st_size for d in (CLIP_DIR, VQGAN_DIR) for p in d.iterdir())
    assert total <= 20 * 1024 * 1024
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in expected)  # readable by all


def test_clip_config_records_its_normalization(clip_model: tuple) -> None:
    model, _, _ = clip_model
    config = json.loads((CLIP_DIR / "open_clip_config.json").read_text())
    assert tuple(config["preprocess_cfg"]["mean"]) == pytest.approx(CLIP_MEAN)
    assert tuple(config["preprocess_cfg"]["std"]) == pytest.approx(CLIP_STD)
    assert tuple(model.visual.preprocess_cfg["mean"]) == pytest.approx(CLIP_MEAN)
    assert model.visual.image_size == (64, 64)
    assert config["model_cfg"]["text_cfg"]["vocab_size"] == 49408


def test_clip_zero_shot_on_held_out_images(clip_model: tuple) -> None:
    model, tokenizer, _ = clip_model
    result = zero_shot_accuracy(model, tokenizer, _normalize_with(model), n=200,
                                seed=HELD_OUT_SEED)
    assert result.color >= 0.95, result
    assert result.shape >= 0.80, result


def test_clip_survives_crops_and_flips(clip_model: tuple) -> None:
    model, tokenizer, _ = clip_model
    result = zero_shot_accuracy(model, tokenizer, _normalize_with(model), n=100,
                                seed=HELD_OUT_SEED + 1, augment=True)
    assert result.color >= 0.9, result
    assert result.shape >= 0.7, result


def test_clip_prefers_one_object_caption_for_one_object(clip_model: tuple) -> None:
    from vqclip.shapes.data import draw_shape

    model, tokenizer, _ = clip_model
    image = draw_shape("circle", "red", as_tensor=True).unsqueeze(0)
    with torch.no_grad():
        img = model.encode_image(_normalize_with(model)(image), normalize=True)
        txt = model.encode_text(tokenizer(["a red circle", "three red circles"]), normalize=True)
    scores = (img @ txt.t()).squeeze(0)
    assert scores[0] > scores[1]


def test_clip_prefers_the_whole_sharp_single_shape_to_a_spoiled_one(clip_model: tuple) -> None:
    model, tokenizer, _ = clip_model
    prefers = preference_accuracy(model, tokenizer, _normalize_with(model), n=100,
                                  seed=HELD_OUT_SEED + 2)
    # Measured on 500 images (MODEL_CARD.md): blob 89 %, blurred 93 %, two copies 87 %, cut off
    # by the frame only 69 %; the floors leave room for the smaller sample.
    assert prefers["blob"] >= 0.8 and prefers["blurred"] >= 0.85, prefers
    assert prefers["two copies"] >= 0.8 and prefers["cut off"] >= 0.55, prefers


def test_vqgan_reconstructs_held_out_images(vqgan: torch.nn.Module) -> None:
    result = reconstruction_quality(vqgan, n=64, seed=HELD_OUT_SEED)
    assert result.psnr >= PSNR_FLOOR, result
    assert result.color_error <= COLOR_ERROR_CEILING, result


@torch.no_grad()
def test_vqgan_redraws_clean_shapes_as_shapes_the_pixel_judge_still_names(vqgan: torch.nn.Module) -> None:
    """The judge's MATCH_FLOOR and outlines hold for what the VQGAN can draw: every shape of every
    color, at a size it carries (radius 0.25), is still judged that shape after a round trip."""
    wrong = []
    for shape in SHAPES:
        for color in COLORS:
            clean = draw_shape(shape, color, radius=0.25, center=(0.45, 0.55))
            redrawn = tensor_to_pil(reconstruct(vqgan, pil_to_tensor(clean))[0])
            if not judge(redrawn, color, shape).right:
                wrong.append(f"{color} {shape}")
    assert not wrong, wrong


def test_vqgan_decodes_a_black_canvas_cleanly(vqgan: torch.nn.Module) -> None:
    recon = reconstruct(vqgan, torch.zeros(1, 3, 64, 64))
    assert float(recon.max()) <= 0.1
    assert float(recon.mean()) <= 0.02


def test_vqgan_factor_and_codebook(vqgan: torch.nn.Module) -> None:
    z = vqgan.encode(torch.zeros(1, 3, 64, 64))
    assert z.shape == (1, 32, 16, 16)
    assert vqgan.codebook.shape == (256, 32)

"""Measure the shapes world's models: zero-shot color/shape accuracy and VQGAN reconstruction."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from vqclip.shapes.data import (
    COLORS,
    SHAPES,
    Scene,
    article,
    blobbed,
    blurred,
    cut_off,
    make_batch,
    random_single_scene,
    render_scene,
    to_tensor,
)

# Fresh images for evaluation come from seeds the training never uses (training uses
# SeedSequence([seed, 1]) / ([seed, 2]) spawns; these are plain small integers + offset).
EVAL_SEED = 1_000_003


@dataclass(frozen=True)
class ZeroShotResult:
    """Zero-shot accuracies (fractions) on single-shape images."""

    color: float
    shape: float
    joint: float
    n: int


@dataclass(frozen=True)
class ReconstructionResult:
    """VQGAN reconstruction quality: PSNR (dB), mean color error (0-255 scale) and black canvas."""

    psnr: float
    color_error: float
    black_canvas_max: float
    n: int


def class_prompts() -> tuple[list[str], list[tuple[int, int]]]:
    """One prompt per (color, shape) pair, e.g. 'a red circle', with its (color, shape) indices."""
    prompts, pairs = [], []
    for ci, color in enumerate(COLORS):
        for si, shape in enumerate(SHAPES):
            prompts.append(f"{article(color)} {color} {shape}")
            pairs.append((ci, si))
    return prompts, pairs


@torch.no_grad()
def zero_shot_accuracy(
    model: torch.nn.Module,
    tokenizer: Callable,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    *,
    n: int = 200,
    seed: int = EVAL_SEED,
    augment: bool = False,
    batch_size: int = 100,
) -> ZeroShotResult:
    """Classify fresh one-shape images among all 'a {color} {shape}' prompts; score each part."""
    prompts, pairs = class_prompts()
    text = model.encode_text(tokenizer(prompts), normalize=True)
    pair_t = torch.tensor(pairs)
    rng = np.random.default_rng(seed)
    color_ok = shape_ok = joint_ok = 0
    done = 0
    while done < n:
        batch = make_batch(min(batch_size, n - done), rng, multi_fraction=0.0, augment=augment)
        img = model.encode_image(normalize(batch.images), normalize=True)
        pred = pair_t[(img @ text.t()).argmax(1)]
        c_hit = pred[:, 0] == batch.labels["color"]
        s_hit = pred[:, 1] == batch.labels["shape"]
        color_ok += int(c_hit.sum())
        shape_ok += int(s_hit.sum())
        joint_ok += int((c_hit & s_hit).sum())
        done += len(batch.captions)
    return ZeroShotResult(color_ok / n, shape_ok / n, joint_ok / n, n)


def _copies(scene: Scene, rng: np.random.Generator) -> Scene:
    """The one-shape scene with a second copy of its shape, mirrored across the centre."""
    obj = scene.objects[0]
    return replace(scene, objects=(obj, replace(obj, cx=1 - obj.cx, cy=1 - obj.cy)))


# Versions of a one-shape scene that "a red square" is untrue of, by name.
SPOILERS: dict[str, Callable[[Scene, np.random.Generator], Scene]] = {
    "blob": blobbed, "cut off": cut_off, "blurred": blurred, "two copies": _copies,
}


@torch.no_grad()
def preference_accuracy(
    model: torch.nn.Module,
    tokenizer: Callable,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    *,
    n: int = 200,
    seed: int = EVAL_SEED,
) -> dict[str, float]:
    """Per spoiler: how often "a COLOR SHAPE" scores a fresh one-shape image above the same
    scene spoiled (a blob, cut off by the frame, blurred, two copies). A CLIP that steers
    generation toward what a pixel judge accepts should prefer the whole, sharp, single shape."""
    rng = np.random.default_rng(seed)
    scenes = []
    while len(scenes) < n:
        scene = random_single_scene(rng)
        obj = scene.objects[0]
        far = math.hypot(1 - 2 * obj.cx, 1 - 2 * obj.cy) > 4 * obj.radius + 0.05
        if scene.background == "black" and not scene.second_background and far:
            scenes.append(scene)  # on black, like generation; a mirrored copy that does not overlap
    texts = model.encode_text(tokenizer([f"{article(s.objects[0].color)} {s.objects[0].color} "
                                         f"{s.objects[0].shape}" for s in scenes]), normalize=True)

    def scores(of: list[Scene]) -> torch.Tensor:
        images = torch.stack([to_tensor(render_scene(s)) for s in of])
        return (model.encode_image(normalize(images), normalize=True) * texts).sum(1)

    clean = scores(scenes)
    return {name: float((clean > scores([spoil(s, rng) for s in scenes])).float().mean())
            for name, spoil in SPOILERS.items()}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio (dB) between image batches in [0,1], averaged per image."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def foreground_color_error(
    recon: torch.Tensor, target: torch.Tensor, masks: torch.Tensor
) -> float:
    """Mean absolute difference (0-255) between the shapes' mean colors in target and recon."""
    w = (masks > 0.9).float()
    area = w.flatten(1).sum(1).clamp_min(1.0)
    mean_t = (target * w).flatten(2).sum(2) / area[:, None]
    mean_r = (recon * w).flatten(2).sum(2) / area[:, None]
    return float((mean_t - mean_r).abs().mean() * 255)


@torch.no_grad()
def reconstruct(vqgan: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Encode, quantize and decode [0,1] images through a VQGAN; returns [0,1] images."""
    z = vqgan.encode(images * 2 - 1)
    z_q, _ = vqgan.quantize_latent(z)
    return ((vqgan.decode(z_q) + 1) / 2).clamp(0, 1)


@torch.no_grad()
def reconstruction_quality(
    vqgan: torch.nn.Module, *, n: int = 200, seed: int = EVAL_SEED, batch_size: int = 50
) -> ReconstructionResult:
    """PSNR and foreground color error of VQGAN reconstructions of fresh images."""
    rng = np.random.default_rng(seed)
    psnrs, errors = [], []
    done = 0
    while done < n:
        batch = make_batch(min(batch_size, n - done), rng, with_masks=True)
        recon = reconstruct(vqgan, batch.images)
        psnrs.append(psnr(recon, batch.images) * len(batch.captions))
        errors.append(foreground_color_error(recon, batch.images, batch.masks) * len(batch.captions))
        done += len(batch.captions)
    black = reconstruct(vqgan, torch.zeros(1, 3, 64, 64))
    return ReconstructionResult(sum(psnrs) / n, sum(errors) / n, float(black.max()), n)

"""Train the shapes world's small VQGAN as an autoencoder, in the order that keeps colors."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vqclip.models.vqgan import VQGAN, VQGANSpec, load_vqgan, save_vqgan
from vqclip.shapes.data import make_batch

log = logging.getLogger(__name__)


def vqgan_spec() -> VQGANSpec:
    """The small VQGAN: ch 32, ch_mult (1,2,2), one res block, 256 codes of dim 32, factor 4."""
    return VQGANSpec(embed_dim=32, n_embed=256, z_channels=32, resolution=64, in_channels=3,
                     out_ch=3, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=())


@dataclass(frozen=True)
class VqganTrainConfig:
    """Hyperparameters of the autoencoder training run."""

    steps: int = 1600
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = 30
    continuous_fraction: float = 0.35  # first phase: no quantization (see train_vqgan)
    foreground_weight: float = 5.0
    beta: float = 0.25  # commitment weight (VQ-VAE)
    kmeans_batches: int = 16
    kmeans_iters: int = 25
    blank_per_batch: int = 1  # empty black canvases, so the start of generation decodes clean
    # The network is convolutional, so most steps train on random crops of the images (a
    # quarter of the pixels: 4x cheaper on a CPU); the last steps see whole images.
    crop: int = 32
    full_size_fraction: float = 0.15
    seed: int = 0


def kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> torch.Tensor:
    """Lloyd's k-means on rows of x (N, D) from k random rows; empty clusters keep their center."""
    centers = x[torch.randperm(x.shape[0], generator=gen)[:k]].clone()
    for _ in range(iters):
        assign = torch.cdist(x, centers).argmin(1)
        sums = torch.zeros_like(centers).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1)
        centers = torch.where(counts > 0, sums / counts.clamp_min(1), centers)
    return centers


def _flat_latents(z: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B*h*w, C)."""
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def _batch(cfg: VqganTrainConfig, rng: np.random.Generator, crop: int | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [-1,1] and per-pixel loss weights (foreground_weight on shapes, 1 elsewhere)."""
    batch = make_batch(cfg.batch_size, rng, augment=True, with_masks=True)
    images, masks = batch.images, batch.masks
    assert masks is not None
    n_blank = cfg.blank_per_batch
    if n_blank:
        images[:n_blank] = 0.0
        masks[:n_blank] = 0.0
    if crop is not None and crop < images.shape[-1]:
        side = images.shape[-1]
        # Offsets on the latent grid (multiples of 4) keep crops aligned with the tokens.
        offsets = rng.integers(0, (side - crop) // 4 + 1, size=(len(images), 2)) * 4
        images = torch.stack([im[:, y:y + crop, x:x + crop]
                              for im, (y, x) in zip(images, offsets, strict=True)])
        masks = torch.stack([m[:, y:y + crop, x:x + crop]
                             for m, (y, x) in zip(masks, offsets, strict=True)])
    weights = 1.0 + (cfg.foreground_weight - 1.0) * masks
    return images * 2 - 1, weights


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
                        ) -> torch.Tensor:
    """Foreground-weighted L1 + MSE: L1 for sharp edges, MSE for PSNR."""
    err = recon - target
    return ((err.abs() + err.pow(2)) * weights).mean() / weights.mean()


@torch.no_grad()
def init_codebook(model: VQGAN, cfg: VqganTrainConfig, rng: np.random.Generator,
                  gen: torch.Generator) -> None:
    """Set the codebook to k-means centers of encoder outputs on fresh images."""
    latents = []
    for _ in range(cfg.kmeans_batches):
        images, _ = _batch(cfg, rng)
        latents.append(_flat_latents(model.encode(images)))
    x = torch.cat(latents)
    model.quantize.embedding.weight.copy_(kmeans(x, model.spec.n_embed, cfg.kmeans_iters, gen))


@torch.no_grad()
def restart_dead_codes(model: VQGAN, z: torch.Tensor, used: torch.Tensor,
                       gen: torch.Generator) -> int:
    """Move codes unused since the last call onto random current encoder outputs."""
    dead = (~used).nonzero().flatten()
    if len(dead):
        flat = _flat_latents(z.detach())
        pick = torch.randint(flat.shape[0], (len(dead),), generator=gen)
        model.quantize.embedding.weight[dead] = flat[pick]
    return len(dead)


def train_vqgan(
    cfg: VqganTrainConfig,
    *,
    spec: VQGANSpec | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> VQGAN:
    """Train the VQGAN: continuous autoencoder, k-means codebook init, then VQ with commitment.

    Plain VQ from random codes collapses to a few gray codes (colors lost); starting from a
    continuous autoencoder and clustering its latents gives a codebook that already spans
    the colors, and weighting shape pixels keeps small colored shapes from being ignored.
    """
    spec = spec or vqgan_spec()
    with torch.random.fork_rng(devices=[]):  # module init uses the global RNG
        torch.manual_seed(cfg.seed)
        model = VQGAN(spec)
    gen = torch.Generator().manual_seed(cfg.seed)
    seeds = np.random.SeedSequence([cfg.seed, 2]).spawn(cfg.steps + 1)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    switch = int(cfg.steps * cfg.continuous_fraction)
    full_from = int(cfg.steps * (1 - cfg.full_size_fraction))
    used = torch.zeros(spec.n_embed, dtype=torch.bool)
    model.train()
    for step in range(cfg.steps):
        if step == switch:
            init_codebook(model, cfg, np.random.default_rng(seeds[-1]), gen)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * _lr_factor(step, cfg.steps, cfg.warmup)
        images, weights = _batch(cfg, np.random.default_rng(seeds[step]),
                                 None if step >= full_from else cfg.crop)
        z = model.encode(images)
        stats: dict[str, float] = {}
        if step < switch:
            recon = model.decode(z)
            loss = rec = reconstruction_loss(recon, images, weights)
        else:
            z_q, idx = model.quantize_latent(z)
            codes = model.quantize.embedding(idx).permute(0, 3, 1, 2)
            # VQ-VAE losses (van den Oord et al. 2017): codes move to the encoder outputs,
            # the encoder commits to its codes (beta).
            vq = F.mse_loss(codes, z.detach()) + cfg.beta * F.mse_loss(z, codes.detach())
            recon = model.decode(z_q)
            rec = reconstruction_loss(recon, images, weights)
            loss = rec + vq
            used[idx.unique()] = True
            stats["vq"] = float(vq.detach())
            if (step - switch) % 50 == 49 and step < cfg.steps * 0.9:
                stats["restarted"] = restart_dead_codes(model, z, used, gen)
                used.zero_()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if on_step is not None:
            stats["rec"] = float(rec.detach())
            on_step(step, stats)
    return model.eval().requires_grad_(False)


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warmup, then cosine decay to a twentieth."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))


def save_shapes_vqgan(model: VQGAN, directory: str | Path) -> tuple[Path, Path]:
    """Save with save_vqgan, the weights in fp16 to halve the file (loading casts to fp32)."""
    config_path, weights_path = save_vqgan(copy.deepcopy(model).half(), directory)
    weights_path.chmod(0o644)  # written 0600; shipped package data must be world-readable
    return config_path, weights_path


def load_shapes_vqgan(directory: str | Path) -> VQGAN:
    """Load a saved shapes VQGAN (frozen, fp32, eval mode)."""
    directory = Path(directory)
    return load_vqgan(directory / "config.json", directory / "model.safetensors")


def log_progress(every: int = 50) -> Callable[[int, dict[str, float]], None]:
    """An on_step callback logging the losses and elapsed time every few steps."""
    start = time.perf_counter()

    def on_step(step: int, stats: dict[str, float]) -> None:
        if step % every == 0 or "restarted" in stats:
            parts = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                             for k, v in stats.items())
            log.info("vqgan step %d %s (%.1f s)", step, parts, time.perf_counter() - start)

    return on_step

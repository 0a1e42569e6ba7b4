"""Train the shapes world's small CLIP (open_clip's own CLIP class) and save it as a local-dir."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from vqclip.shapes.data import HardNegatives, ShapeBatch, make_batch

log = logging.getLogger(__name__)

# The OpenAI CLIP normalization: the shapes CLIP is trained with it, so generation code that
# reads mean/std from the model's preprocess config treats it like any other CLIP.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"


def clip_model_config(embed_dim: int = 96, image_size: int = 64) -> dict:
    """The small CLIP's open_clip model_cfg: ViT 64 px / patch 8 / width 128 / 3 layers."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": image_size, "layers": 3, "width": 128, "head_width": 32,
                       "patch_size": 8},
        # vocab 49408 and context 16 work with open_clip's default SimpleTokenizer.
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 128, "heads": 4,
                     "layers": 2},
    }


def preprocess_config(image_size: int = 64) -> dict:
    """The preprocess_cfg saved next to the model: the normalization it was trained with."""
    return {"size": image_size, "mean": list(CLIP_MEAN), "std": list(CLIP_STD),
            "interpolation": "bicubic", "resize_mode": "shortest"}


@dataclass(frozen=True)
class ClipTrainConfig:
    """Hyperparameters of the contrastive training run."""

    steps: int = 1600
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 50
    multi_fraction: float = 0.25
    shape_pairs: float = 0.5
    dark_fraction: float = 0.3
    # One-shape scenes made into a blob, cut off by the frame or blurred: untrue of "a red
    # square", meant to make CLIP's preference among generated images follow a pixel judge's.
    # Off by default: the shipped CLIP was trained without them (MODEL_CARD.md says what a
    # continued training with them measured).
    blob_fraction: float = 0.0
    cut_fraction: float = 0.0
    blur_fraction: float = 0.0
    max_noise: float = 0.1
    seed: int = 0


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Map [0,1] images to the CLIP's input normalization."""
    mean = torch.tensor(CLIP_MEAN, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std


def multi_positive_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, positives: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric contrastive loss whose target spreads evenly over every true caption/image."""
    logits = scale * image_emb @ text_emb.t()
    target = positives.float()
    loss_i = -(target / target.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1).mean()
    loss_t = -(target / target.sum(0, keepdim=True) * F.log_softmax(logits, 0)).sum(0).mean()
    return (loss_i + loss_t) / 2


def add_noise(images: torch.Tensor, max_noise: float, gen: torch.Generator) -> torch.Tensor:
    """Gaussian pixel noise of a random strength per image (up to max_noise), half the images."""
    b = images.shape[0]
    strength = torch.rand(b, 1, 1, 1, generator=gen) * max_noise
    strength = strength * (torch.rand(b, 1, 1, 1, generator=gen) < 0.5)
    noise = torch.randn(images.shape, generator=gen) * strength
    return (images + noise).clamp(0, 1)


def build_clip(model_cfg: dict, seed: int) -> open_clip.CLIP:
    """A freshly initialised CLIP from a model_cfg, its init fixed by the seed."""
    # open_clip initialises from the global RNG; fork it so the caller's state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.CLIP(**model_cfg)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only (not on gains, biases, embeddings or the logit scale)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_matrix = p.ndim >= 2 and "embedding" not in name and "token" not in name
        (decay if is_matrix else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def train_clip(
    cfg: ClipTrainConfig,
    *,
    model_cfg: dict | None = None,
    start: open_clip.CLIP | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> open_clip.CLIP:
    """Train the small CLIP contrastively on fresh shapes batches, from scratch or on from
    `start` (a model of `model_cfg`, trained further in place); returns it in eval mode."""
    model_cfg = model_cfg or clip_model_config()
    model = build_clip(model_cfg, cfg.seed) if start is None else start.float()
    tokenizer = open_clip.SimpleTokenizer(context_length=model_cfg["text_cfg"]["context_length"])
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(cfg.seed)
    seeds = np.random.SeedSequence([cfg.seed, 1]).spawn(cfg.steps)
    model.train()
    for step in range(cfg.steps):
        lr = cfg.lr * _lr_factor(step, cfg.steps, cfg.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        batch: ShapeBatch = make_batch(cfg.batch_size, np.random.default_rng(seeds[step]),
                                       multi_fraction=cfg.multi_fraction, augment=True,
                                       shape_pairs=cfg.shape_pairs,
                                       dark_fraction=cfg.dark_fraction,
                                       hard_negatives=HardNegatives(cfg.blob_fraction,
                                                                    cfg.cut_fraction,
                                                                    cfg.blur_fraction))
        images = normalize(add_noise(batch.images, cfg.max_noise, gen))
        img = model.encode_image(images, normalize=True)
        txt = model.encode_text(tokenizer(batch.captions), normalize=True)
        loss = multi_positive_loss(img, txt, batch.positives(), model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # CLIP's clamp: a temperature below 1/100 destabilises training
            model.logit_scale.clamp_(0, math.log(100))
        if on_step is not None:
            on_step(step, float(loss.detach()))
    return model.eval()


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warmup, then cosine decay to a tenth."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))


def save_clip(model: open_clip.CLIP, directory: str | Path, model_cfg: dict | None = None) -> Path:
    """Write the model as an open_clip local-dir (config + fp16 safetensors); returns the dir."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_cfg = model_cfg or clip_model_config()
    config = {"model_cfg": model_cfg,
              "preprocess_cfg": preprocess_config(model_cfg["vision_cfg"]["image_size"])}
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    # fp16 halves the file; open_clip copies it back into fp32 parameters on load.
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME))
    (directory / WEIGHTS_NAME).chmod(0o644)  # safetensors writes 0600; package data must be readable
    return directory


def load_clip(directory: str | Path) -> tuple[open_clip.CLIP, Callable]:
    """Load a saved shapes CLIP through open_clip's local-dir loader: (model in eval, tokenizer)."""
    name = f"local-dir:{Path(directory).resolve()}"
    model = open_clip.create_model(name, device="cpu")
    return model.eval(), open_clip.get_tokenizer(name)


def log_progress(every: int = 50) -> Callable[[int, float], None]:
    """An on_step callback logging loss and speed every few steps."""
    start = time.perf_counter()

    def on_step(step: int, loss: float) -> None:
        if step % every == 0:
            log.info("clip step %d loss %.4f (%.1f s)", step, loss, time.perf_counter() - start)

    return on_step

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

from vqclip.models.vqgan import VQGAN
from vqclip.shapes.data import BLOB, Claim, HardNegatives, ShapeBatch, article, make_batch
from vqclip.shapes.evaluate import reconstruct
from vqclip.shapes.steered import (
    Steered,
    SteeredNegatives,
    aligned_twin,
    blob_claim,
    clean_twin,
    morph,
    steer_round,
    twin_images,
)

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
    # One-shape scenes whose shape is softened into a blob (data.softened), or made ragged
    # (data.ragged); off by default too.
    soft_fraction: float = 0.0
    ragged_fraction: float = 0.0
    max_noise: float = 0.1
    # Adversarial training: each batch's images are moved, before the CLIP learns from them, to
    # where its loss is higher within this L2 radius per image (pixels in [0, 1]), by a few
    # steps of projected gradient ascent. 0 (the default) trains on the images as they are.
    adversarial: float = 0.0
    adversarial_steps: int = 3
    # With steered negatives: the share of the clean images seen through the VQGAN (encoded,
    # snapped to its codebook, decoded), so its texture alone does not tell them apart.
    reconstructed: float = 0.5
    steered: SteeredNegatives = SteeredNegatives()
    seed: int = 0


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Map [0,1] images to the CLIP's input normalization."""
    mean = torch.tensor(CLIP_MEAN, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean) / std


def multi_positive_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, positives: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric contrastive loss whose target spreads over every true caption/image in
    proportion to `positives` (1 true, 0 false, a share between for a blend)."""
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


def adversarial_images(model: open_clip.CLIP, images: torch.Tensor, text_emb: torch.Tensor,
                       positives: torch.Tensor, radius: float, steps: int) -> torch.Tensor:
    """`images` ([0, 1]) each moved by at most `radius` (L2, over all its pixels) to raise the
    contrastive loss against the fixed `text_emb`: `steps` steps of projected gradient ascent,
    each 2.5 * radius / steps along the normalized gradient, clamped to [0, 1]. The model's
    weights get no gradient from it."""
    scale = model.logit_scale.exp().detach()
    step_size = 2.5 * radius / steps
    delta = torch.zeros_like(images)
    for _ in range(steps):
        delta.requires_grad_(True)
        embeddings = model.encode_image(normalize(images + delta), normalize=True)
        loss = multi_positive_loss(embeddings, text_emb, positives, scale)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = delta + step_size * grad / norms
            lengths = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            delta = delta * (radius / lengths.clamp_min(radius))
            delta = (images + delta).clamp(0, 1) - images
    return (images + delta).detach()


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
    vqgan: VQGAN | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> open_clip.CLIP:
    """Train the small CLIP contrastively on fresh shapes batches, from scratch or on from
    `start` (a model of `model_cfg`, trained further in place); returns it in eval mode.
    `cfg.steered` needs the `vqgan` to steer (steered.py)."""
    if cfg.steered and vqgan is None:
        raise ValueError("steered negatives need the shapes VQGAN to steer")
    model_cfg = model_cfg or clip_model_config()
    model = build_clip(model_cfg, cfg.seed) if start is None else start.float()
    tokenizer = open_clip.SimpleTokenizer(context_length=model_cfg["text_cfg"]["context_length"])
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(cfg.seed)
    seeds = np.random.SeedSequence([cfg.seed, 1]).spawn(cfg.steps)
    steering = np.random.default_rng([cfg.seed, 2])
    pool: list[Steered] = []
    if vqgan is not None:
        vqgan.eval().requires_grad_(False)
    model.train()
    for step in range(cfg.steps):
        lr = cfg.lr * _lr_factor(step, cfg.steps, cfg.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        if cfg.steered and step % cfg.steered.refresh_every == 0:
            pool = (pool + steer_round(model, vqgan, cfg.steered, steering, gen, normalize)
                    )[-cfg.steered.pool:]
        rng = np.random.default_rng(seeds[step])
        batch: ShapeBatch = make_batch(cfg.batch_size - cfg.steered.batch_share(), rng,
                                       multi_fraction=cfg.multi_fraction, augment=True,
                                       shape_pairs=cfg.shape_pairs,
                                       dark_fraction=cfg.dark_fraction,
                                       hard_negatives=HardNegatives(cfg.blob_fraction,
                                                                    cfg.cut_fraction,
                                                                    cfg.blur_fraction,
                                                                    cfg.soft_fraction,
                                                                    cfg.ragged_fraction))
        # Rounds may keep no image (steering left every one the asked shape): no steered pairs then.
        if cfg.steered and pool:
            picks = [pool[i] for i in rng.choice(len(pool), cfg.steered.per_step)]
            seen = with_steered(batch, picks, rng, vqgan, cfg.reconstructed, gen,
                                cfg.steered.morphs)
        else:
            seen = _Batch(batch.images, batch.captions, batch.positives())
        images = add_noise(seen.images, cfg.max_noise, gen)
        txt = model.encode_text(tokenizer(seen.captions), normalize=True)
        if cfg.adversarial:
            images = adversarial_images(model, images, txt.detach(), seen.positives,
                                        cfg.adversarial, cfg.adversarial_steps)
        img = model.encode_image(normalize(images), normalize=True)
        loss = multi_positive_loss(img, txt, seen.positives, model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # CLIP's clamp: a temperature below 1/100 destabilises training
            model.logit_scale.clamp_(0, math.log(100))
        if on_step is not None:
            on_step(step, float(loss.detach()))
    return model.eval()


@dataclass
class _Batch:
    """What one training step sees: images, captions and which captions are true of which."""

    images: torch.Tensor
    captions: list[str]
    positives: torch.Tensor


def with_steered(batch: ShapeBatch, steered: list[Steered], rng: np.random.Generator,
                 vqgan: VQGAN, reconstructed: float, gen: torch.Generator,
                 morphs: bool = False) -> _Batch:
    """The batch with each steered image, captioned as a blob of its color, and a clean twin of
    what it was steered toward, captioned as such; `reconstructed` of the clean images (twins
    included) go through the VQGAN. With `morphs` each twin is placed over its steered image
    and a blend of the two is added, whose captions are true in the shares of the blend."""
    twins = [(aligned_twin if morphs else clean_twin)(item, rng) for item in steered]
    clean = torch.cat([batch.images, twin_images(twins, batch.images.shape[-1])])
    through = torch.rand(clean.shape[0], generator=gen) < reconstructed
    if through.any():
        clean[through] = reconstruct(vqgan, clean[through])
    claims = (list(batch.claims)
              + [Claim(count=1, shape=t.objects[0].shape, color=t.objects[0].color, dark=False)
                 for t in twins]
              + [Claim(count=1, shape=BLOB, color=item.color) for item in steered])
    captions = (list(batch.captions)
                + [f"{article(t.objects[0].color)} {t.objects[0].color} {t.objects[0].shape}"
                   for t in twins]
                + [f"{article(item.color)} {item.color} {BLOB}" for item in steered])
    twin_rows = [[float(c.matches(t)) for c in claims] for t in twins]
    blob_rows = [[float(blob_claim(c, item.color)) for c in claims] for item in steered]
    rows = [[float(c.matches(s)) for c in claims] for s in batch.scenes] + twin_rows + blob_rows
    images = [clean, torch.stack([item.image for item in steered])]
    if morphs:
        twin_renders = clean[len(batch.scenes):]
        blends = [morph(item, render, rng) for item, render in zip(steered, twin_renders, strict=True)]
        images.append(torch.stack([image for image, _ in blends]))
        rows += [[share * t + (1 - share) * b for t, b in zip(twin_row, blob_row, strict=True)]
                 for (_, share), twin_row, blob_row in zip(blends, twin_rows, blob_rows, strict=True)]
    return _Batch(torch.cat(images), captions, torch.tensor(rows))


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


def saved_model_config(directory: str | Path) -> dict:
    """The model_cfg a saved shapes CLIP was built from, as `save_clip` wrote it."""
    return json.loads((Path(directory) / CONFIG_NAME).read_text())["model_cfg"]


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

"""Negatives drawn by steering: what the shapes VQGAN makes when the CLIP in training steers it.

A CLIP trained on clean renders alone rates some of the ragged blobs that generation falls into
as high as a clean shape. Here a short VQGAN+CLIP run, steered by the CLIP being trained, draws
"a red star" from a black start, from the dim gray spot the shapes preset started from, or from
a clean red star (flip, shift and rotation, noise, a border prior: as the preset does). The
images it ends with that the pixel judge does not call a star are captioned "a red blob" and put
beside a clean render of a red star captioned "a red star", so the caption is trained to prefer
the clean shape to what steering drew for it; the next rounds are steered by the CLIP as it has
changed since. With morphs the twin is placed over the steered image and a blend of the two is
captioned as the star and as a blob in the blend's shares.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from vqclip.images import tensor_to_pil
from vqclip.models.vqgan import VQGAN
from vqclip.shapes.data import (
    BLOB,
    COLORS,
    PALETTE,
    SHAPES,
    SIZE_RADII,
    Claim,
    Scene,
    ShapeObject,
    article,
    random_single_scene,
    render_scene,
    to_tensor,
)
from vqclip.shapes.pixel_judge import color_mask, judge, largest_region
from vqclip.steer.generators import centre_spot
from vqclip.steer.losses import LossContext, border

Normalize = Callable[[torch.Tensor], torch.Tensor]  # [0, 1] images to the CLIP's input
BORDER_WEIGHT = 3.0  # the shapes preset's border prior
MIN_REGION = 4  # pixels of the asked color an aligned twin needs to be placed over
# The radii an aligned twin is clamped to: the span the CLIP learned sizes over.
ALIGNED_RADII = (SIZE_RADII["small"][0], SIZE_RADII["large"][1])
MORPH_SHARES = (0.2, 0.8)  # the range of a morph's share of the twin


@dataclass(frozen=True)
class SteeredNegatives:
    """How many steered images a training step sees, and how they are drawn."""

    per_step: int = 0  # steered images (each with a clean twin) in every training batch; 0: none
    refresh_every: int = 25  # training steps between two rounds of steering
    images: int = 24  # images one round draws
    steps: int = 50  # steering steps per round
    lr: float = 0.2
    views: int = 3  # augmented views of each image per steering step
    pool: int = 128  # the newest images kept to draw batches from
    start: str = "black"  # what steering starts from: "black", "spot" (the shapes preset's once) or
    # "shape" (a clean render of the asked shape)
    morphs: bool = False  # each steered image also blended with its twin, placed over it (morph)

    def __bool__(self) -> bool:
        return self.per_step > 0

    def batch_share(self) -> int:
        """The images of a training batch these take: each steered image, its twin, its morph."""
        return (3 if self.morphs else 2) * self.per_step


@dataclass(frozen=True)
class Steered:
    """One steered image and the prompt it was drawn for."""

    image: torch.Tensor  # (3, H, W) in [0, 1]
    color: str
    shape: str


def _views(images: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    """`count` views of each image, view-major ((count * B, 3, H, W)): mirrored half the time,
    rotated up to 7.5 degrees, shifted up to a quarter of the side (black past the edge), with
    Gaussian noise up to 0.1."""
    stacked = images.repeat(count, 1, 1, 1)
    n = stacked.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(7.5)
    mirror = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.25
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], -1),
                         torch.stack([sin * mirror, cos, shift[:, 1]], -1)], 1)
    grid = F.affine_grid(theta, list(stacked.shape), align_corners=False)
    moved = F.grid_sample(stacked, grid, padding_mode="zeros", align_corners=False)
    sigma = torch.rand(n, 1, 1, 1, generator=gen) * 0.1
    return (moved + sigma * torch.randn(moved.shape, generator=gen)).clamp(0, 1)


STARTS = ("black", "spot", "shape")


def start_images(start: str, count: int, side: int) -> torch.Tensor:
    """`count` start images in [0, 1], (count, 3, side, side): black, or black with the shapes
    preset's gray spot in the centre. "shape" starts differ by prompt: `steer_round` draws them."""
    if start == "shape":
        raise ValueError("steering from the shape needs a start image per prompt")
    if start == "spot":
        return centre_spot(side, side, torch.Generator()).expand(count, -1, -1, -1)
    return torch.zeros(count, 3, side, side)


def _decoded(vqgan: VQGAN, latent: torch.Tensor) -> torch.Tensor:
    """The latent snapped to the codebook and decoded, as [0, 1] images."""
    return ((vqgan.decode(vqgan.quantize_latent(latent)[0]) + 1) / 2).clamp(0, 1)


def clip_side(clip: open_clip.CLIP) -> int:
    """The side of the CLIP's square input, in pixels."""
    size = clip.visual.image_size
    return size[0] if isinstance(size, tuple) else size


def steer(clip: open_clip.CLIP, vqgan: VQGAN, prompts: list[str], cfg: SteeredNegatives,
          gen: torch.Generator, normalize: Normalize, starts: torch.Tensor | None = None
          ) -> torch.Tensor:
    """Draw one image per prompt by steering the VQGAN's latent from `starts` (one [0, 1] image
    per prompt; by default `cfg.start`'s) toward the CLIP's embedding of the prompt; returns
    (B, 3, H, W) in [0, 1]. The CLIP is not changed."""
    tokenizer = open_clip.SimpleTokenizer(context_length=clip.context_length)
    if starts is None:
        starts = start_images(cfg.start, len(prompts), clip_side(clip))
    with torch.no_grad():
        text = clip.encode_text(tokenizer(prompts), normalize=True)
        latent = vqgan.encode(starts * 2 - 1)
    latent = (latent + 0.01 * torch.randn(latent.shape, generator=gen)).requires_grad_(True)
    opt = torch.optim.Adam([latent], lr=cfg.lr)
    # In eval mode, as generation runs it: a tower with batch norm then neither normalizes by
    # the steered views' statistics nor adds them to its running ones.
    training = clip.training
    clip.eval()
    try:
        for _ in range(cfg.steps):
            images = _decoded(vqgan, latent)
            emb = clip.encode_image(normalize(_views(images, cfg.views, gen)), normalize=True)
            similarity = (emb.view(cfg.views, len(prompts), -1) * text).sum(-1).mean(0)
            edges = border(LossContext(images, [latent], []))
            loss = (1 - similarity).sum() + BORDER_WEIGHT * edges.sum()
            # The gradient of the latent alone: the CLIP's own gradients stay untouched.
            (latent.grad,) = torch.autograd.grad(loss, [latent])
            opt.step()
    finally:
        clip.train(training)
    with torch.no_grad():
        return _decoded(vqgan, latent)


def steer_round(clip: open_clip.CLIP, vqgan: VQGAN, cfg: SteeredNegatives,
                rng: np.random.Generator, gen: torch.Generator, normalize: Normalize
                ) -> list[Steered]:
    """One round: `cfg.images` random "a COLOR SHAPE" prompts, each drawn by `steer` (from a
    clean render of that shape when `cfg.start` is "shape"). Only the images the pixel judge
    does not call the asked shape are returned: the others would make "a COLOR blob" untrue."""
    kinds = [(COLORS[rng.integers(len(COLORS))], SHAPES[rng.integers(len(SHAPES))])
             for _ in range(cfg.images)]
    prompts = [f"{article(color)} {color} {shape}" for color, shape in kinds]
    starts = None
    if cfg.start == "shape":
        starts = twin_images([clean_scene(color, shape, rng) for color, shape in kinds],
                             clip_side(clip))
    images = steer(clip, vqgan, prompts, cfg, gen, normalize, starts)
    drawn = [Steered(image, color, shape) for image, (color, shape) in zip(images, kinds, strict=True)]
    return [item for item in drawn if not judge(tensor_to_pil(item.image), item.color, item.shape).shape]


def blob_claim(claim: Claim, color: str) -> bool:
    """Whether a caption's claim is true of an image steered toward `color`: only captions that
    name a blob of that color (or of no color), and nothing of size, place or background."""
    return (claim.shape == BLOB and claim.color in (None, color) and claim.count in (None, 1)
            and claim.objects is None and claim.size is None and claim.position is None
            and claim.background is None and claim.dark is not True)


def on_black(shape: str, color: str, cx: float, cy: float, radius: float) -> Scene:
    """One shape of that palette color on black."""
    return Scene("black", (ShapeObject(shape, color, PALETTE[color], cx, cy, radius),))


def clean_scene(color: str, shape: str, rng: np.random.Generator) -> Scene:
    """One whole shape of that color on black, at a random size and place."""
    radius = random_single_scene(rng).objects[0].radius
    margin = min(radius + 0.02, 0.5)
    cx, cy = rng.uniform(margin, 1 - margin, size=2)
    return on_black(shape, color, float(cx), float(cy), radius)


def clean_twin(item: Steered, rng: np.random.Generator) -> Scene:
    """A clean render of what `item` was steered toward."""
    return clean_scene(item.color, item.shape, rng)


def aligned_twin(item: Steered, rng: np.random.Generator) -> Scene:
    """A clean render of what `item` was steered toward, centred on its largest region of the
    asked color, its radius half the longer side of that region's box (clamped to ALIGNED_RADII);
    at a random size and place when the region has fewer than MIN_REGION pixels."""
    side = item.image.shape[-1]
    region = largest_region(color_mask(tensor_to_pil(item.image), item.color))
    ys, xs = np.nonzero(region)
    if len(xs) < MIN_REGION:
        return clean_twin(item, rng)
    radius = float(np.clip((max(np.ptp(xs), np.ptp(ys)) + 1) / (2 * side), *ALIGNED_RADII))
    cx, cy = (float(np.clip((v.mean() + 0.5) / side, radius, 1 - radius)) for v in (xs, ys))
    return on_black(item.shape, item.color, cx, cy, radius)


def morph(item: Steered, twin: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """The steered image blended toward its twin's render (`twin`, placed over it): the blend and
    the twin's share in it, uniform in MORPH_SHARES."""
    share = float(rng.uniform(*MORPH_SHARES))
    return (1 - share) * item.image + share * twin, share


def twin_images(scenes: list[Scene], size: int) -> torch.Tensor:
    """Render the clean twins."""
    return torch.stack([to_tensor(render_scene(s, size)) for s in scenes])

"""Losses: CLIP prompt losses (spherical distance) and a registry of image and latent regularizers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from vqclip.registry import Registry
from vqclip.steer.prompts import Prompt


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance of unit vectors, 2*asin(|a-b|/2)**2 (Crowson's notebook)."""
    return (a - b).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


class PromptLoss:
    """Pulls every cutout embedding toward (weight > 0) or away from (weight < 0) one target."""

    def __init__(self, prompt: Prompt, embedding: torch.Tensor, kind: str = "text") -> None:
        self.prompt = prompt
        self.embedding = embedding  # (D,) unit length
        self.name = f"{kind}:{prompt.text}"

    def __call__(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """Mean over cutouts of the signed distance, times |weight|; no pull past `stop`.

        (..., cutn, D) embeddings -> (...): one value per image of a batch."""
        weight = self.prompt.weight
        signed = spherical_distance(image_embeddings, self.embedding.unsqueeze(0))
        signed = signed * (1.0 if weight >= 0 else -1.0)
        # Below the stop threshold the value still counts but no longer pulls.
        signed = torch.where(signed >= self.prompt.stop, signed, signed.detach())
        return abs(weight) * signed.mean(dim=-1)


@dataclass
class LossContext:
    """What a regularizer may look at: the images, the parameters and where they started,
    each with the batch's K images along its first dimension."""

    image: torch.Tensor  # (K, 3, H, W) in [0, 1]
    parameters: list[torch.Tensor]
    initial: list[torch.Tensor]


# A regularizer gives one value per image of the batch, (K,).
Regularizer = Callable[[LossContext], torch.Tensor]
REGULARIZERS: Registry[Regularizer] = Registry("losses")


def per_image_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean of each image's values: (K, ...) -> (K,)."""
    return values.flatten(1).mean(dim=1)


@REGULARIZERS.register("init")
def init_loss(ctx: LossContext) -> torch.Tensor:
    """Mean squared distance of the parameters from their start (the init image's latent)."""
    parts = [per_image_mean((p - p0).pow(2)) for p, p0 in zip(ctx.parameters, ctx.initial, strict=True)]
    return torch.stack(parts).sum(dim=0)


@REGULARIZERS.register("saturation")
def saturation(ctx: LossContext) -> torch.Tensor:
    """Mean distance of each pixel from its gray: a positive weight desaturates.

    In fp32: under autocast the image is bf16, and autocast would leave these ops in it."""
    image = ctx.image.float()
    return per_image_mean((image - image.mean(dim=1, keepdim=True)).abs())


@REGULARIZERS.register("symmetry")
def symmetry(ctx: LossContext) -> torch.Tensor:
    """Mean squared difference between the image and its left-right mirror."""
    return per_image_mean((ctx.image - ctx.image.flip(-1)).pow(2))


@REGULARIZERS.register("tv")
def total_variation(ctx: LossContext) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels: smoothness."""
    image = ctx.image
    dy = per_image_mean((image[..., 1:, :] - image[..., :-1, :]).pow(2))
    dx = per_image_mean((image[..., :, 1:] - image[..., :, :-1]).pow(2))
    return dx + dy


BORDER_SHARE = 1 / 16  # the `border` band's width, as a share of each side


@REGULARIZERS.register("border")
def border(ctx: LossContext) -> torch.Tensor:
    """Mean brightness of a band along the image's edges (1/16 of each side): a positive
    weight keeps a subject on a dark ground inside the frame."""
    image = ctx.image.float()
    height, width = image.shape[-2:]
    band_y, band_x = max(1, round(height * BORDER_SHARE)), max(1, round(width * BORDER_SHARE))
    inside = torch.zeros((height, width), dtype=torch.bool, device=image.device)
    inside[band_y:height - band_y, band_x:width - band_x] = True
    return image.masked_fill(inside, 0).flatten(1).sum(dim=1) / (~inside).sum() / image.shape[1]


# A regularizer's weight over the run: (step, steps, until) -> fraction of its weight, where
# `until` is the share of the run a decay that ends early lasts.
DECAYS: Registry[Callable[[int, int, float], float]] = Registry("decay")
DECAYS.add("constant", lambda step, steps, until: 1.0)
DECAYS.add("linear", lambda step, steps, until: max(0.0, 1.0 - step / max(steps, 1)))


@DECAYS.register("early")
def early(step: int, steps: int, until: float) -> float:
    """Falls linearly from 1 to 0 at `until` of the run, then stays 0: an anchor that holds the
    start latent while the composition forms and then lets go. The Crowson notebook's
    `init_weight` pulls toward the start latent at a constant weight for the whole run."""
    end = max(until * steps, 1.0)
    return max(0.0, 1.0 - step / end)


@dataclass
class WeightedRegularizer:
    """A registered regularizer with its weight, constant or decaying (DECAYS) to zero."""

    name: str
    weight: float
    decay: str = "constant"
    until: float = 1.0

    def weight_at(self, step: int, steps: int) -> float:
        """The weight at `step`: its full weight times the decay's fraction there."""
        return self.weight * DECAYS[self.decay](step, steps, self.until)

    def unweighted(self, ctx: LossContext) -> torch.Tensor:
        """The regularizer's value per image, (K,), before its weight (which the engine
        applies as a device tensor, so that a decaying weight changes no traced constant)."""
        return REGULARIZERS[self.name](ctx)

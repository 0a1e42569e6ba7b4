"""Losses: CLIP prompt losses (spherical distance) and a registry of image and latent regularizers."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vqclip.errors import ConfigError, first_line
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
        if weight < 0:
            signed = -signed
        # Below the stop threshold the value still counts but no longer pulls.
        if self.prompt.stop > -math.inf:
            signed = torch.where(signed >= self.prompt.stop, signed, signed.detach())
        mean = signed.mean(dim=-1)
        return mean if abs(weight) == 1.0 else abs(weight) * mean


@dataclass
class LossContext:
    """What a regularizer may look at: the images, the parameters and where they started,
    each with the batch's K images along its first dimension."""

    image: torch.Tensor  # (K, 3, H, W) in [0, 1]
    parameters: list[torch.Tensor]
    initial: list[torch.Tensor]


# A regularizer gives one value per image of the batch, (K,): `loss(ctx)`, or `loss(ctx, options)`
# for one registered with an options dataclass (`@REGULARIZERS.register("name", options=...)`),
# whose fields a `losses:` item sets beside its name and weight.
Regularizer = Callable[..., torch.Tensor]
REGULARIZERS: Registry[Regularizer] = Registry("losses")


def per_image_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean of each image's values: (K, ...) -> (K,)."""
    return values.flatten(1).mean(dim=1)


@REGULARIZERS.register("init")
def init_loss(ctx: LossContext) -> torch.Tensor:
    """Mean squared distance of the parameters from their start (the init image's latent)."""
    parts = [per_image_mean((p - p0).pow(2)) for p, p0 in zip(ctx.parameters, ctx.initial, strict=True)]
    return parts[0] if len(parts) == 1 else torch.stack(parts).sum(dim=0)


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


@dataclass
class VividOptions:
    """`vivid`'s option: the brightness (of a pixel's brightest channel) above which it counts
    as lit."""

    lit: float = 0.35


@REGULARIZERS.register("vivid", options=VividOptions)
def vivid(ctx: LossContext, options: VividOptions) -> torch.Tensor:
    """How far the lit pixels (brightest channel above `lit`) fall short of full brightness, on
    average: a positive weight brings a shape on a dark ground to its full color, where a dim
    one reads as another (dim yellow as green, dim white as gray). The dark pixels are left
    alone. In fp32, as `saturation`."""
    value = ctx.image.float().amax(dim=1)
    lit = (value > options.lit).float()
    return (lit * (1 - value)).flatten(1).sum(dim=1) / lit.flatten(1).sum(dim=1).clamp(min=1)


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
    """A registered regularizer with its weight, constant or decaying (DECAYS) to zero, and its
    options (an instance of its options dataclass; None for their defaults, or for one that
    takes none)."""

    name: str
    weight: float
    decay: str = "constant"
    until: float = 1.0
    options: Any = None

    def weight_at(self, step: int, steps: int) -> float:
        """The weight at `step`: its full weight times the decay's fraction there."""
        return self.weight * DECAYS[self.decay](step, steps, self.until)

    def unweighted(self, ctx: LossContext) -> torch.Tensor:
        """The regularizer's value per image, (K,), before its weight (which the engine
        applies as a device tensor, so that a decaying weight changes no traced constant)."""
        loss, declared = REGULARIZERS[self.name], REGULARIZERS.options(self.name)
        if declared is None:
            return loss(ctx)
        return loss(ctx, self.options if self.options is not None else declared())


@dataclass
class LossItem:
    """The keys every `losses:` item has: a registered regularizer with its weight, constant or
    decaying to zero (`linear`: at the last step, `early`: at `until` of the run). The item's
    other keys are the options of that regularizer."""

    name: str = MISSING
    weight: float = 1.0
    decay: str = "constant"
    until: float = 0.5


ITEM_KEYS = tuple(f.name for f in fields(LossItem))


def read_loss(item: Any, key: str) -> WeightedRegularizer:
    """The regularizer a `losses:` item (a mapping) asks for, checked: its name, weight, decay,
    `until`, and its options over their defaults. A ConfigError names the bad key (`key`.KEY)."""
    if not isinstance(item, Mapping) and not OmegaConf.is_dict(item):
        raise ConfigError(f"{key}={item!r}: expected a mapping such as {{name: tv, weight: 0.5}}")
    if "name" not in item:
        raise ConfigError(f"{key}: no name; valid: {', '.join(REGULARIZERS)}")
    REGULARIZERS.check(str(item["name"]), f"{key}.name")  # str: a list is no name either
    options = REGULARIZERS.read_options(item["name"], item, key, also=ITEM_KEYS)
    try:
        common = OmegaConf.merge(OmegaConf.structured(LossItem),
                                 {name: item[name] for name in ITEM_KEYS if name in item})
    except OmegaConfBaseException as err:
        raise ConfigError(f"{key}.{getattr(err, 'full_key', '') or '?'}: {first_line(err)}") from None
    DECAYS.check(common.decay, f"{key}.decay")
    if not 0 < common.until <= 1:
        raise ConfigError(f"{key}.until={common.until}: must be a fraction above 0, at most 1")
    return WeightedRegularizer(common.name, common.weight, common.decay, common.until, options)


def loss_item(regularizer: WeightedRegularizer) -> dict[str, Any]:
    """The `losses:` item of `regularizer`, every option spelled out (as a resolved config keeps it)."""
    options = asdict(regularizer.options) if regularizer.options is not None else {}
    return {"name": regularizer.name, "weight": regularizer.weight, "decay": regularizer.decay,
            "until": regularizer.until, **options}

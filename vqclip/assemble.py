"""Build a run's parts from its config: the generator by name, the CLIP judges, the regularizers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig

from vqclip.config import nearby_sizes
from vqclip.cutouts import Cutouts
from vqclip.engine import Judge
from vqclip.errors import ConfigError
from vqclip.generators import FourierGenerator, ImageGenerator, PixelGenerator, VQGANGenerator
from vqclip.images import NOISE_CANVASES, init_canvas, noise_canvas
from vqclip.losses import PromptLoss, WeightedRegularizer
from vqclip.models.loading import load_clip_model, load_generator_model
from vqclip.targets import build_stages, image_prompt_losses

INIT_NOISE = ("tokens", *NOISE_CANVASES)
MakeGenerator = Callable[[torch.Tensor | None, list[torch.Generator]], ImageGenerator]
Maker = tuple[MakeGenerator, dict[str, Any]]  # and the generator's description


def check_size(width: int, height: int, factor: int) -> None:
    """Refuse a size the VQGAN cannot draw, naming the valid sizes nearby."""
    if width % factor == 0 and height % factor == 0:
        return
    widths, heights = nearby_sizes(width, factor), nearby_sizes(height, factor)
    options = ", ".join(f"{w}x{h}" for w in widths for h in heights)
    raise ConfigError(
        f"size {width}x{height}: both sides must be multiples of {factor} for this VQGAN; "
        f"nearby valid sizes: {options}"
    )


def starts_from_canvas(cfg: DictConfig) -> bool:
    """Whether the generator starts from a full-size image (the init image or a noise canvas)
    rather than from its own random start."""
    if cfg.init_noise not in INIT_NOISE:
        raise ConfigError(f"init_noise={cfg.init_noise!r}: valid: {', '.join(INIT_NOISE)}")
    return bool(cfg.init_image) or cfg.init_noise in NOISE_CANVASES


def start_images(cfg: DictConfig, rngs: list[torch.Generator]) -> torch.Tensor | None:
    """The init image, or a pixel/gradient noise canvas, once per random generator, (K, 3, H, W);
    None for the generator's own start."""
    if not starts_from_canvas(cfg):
        return None
    width, height = cfg.size
    if cfg.init_image:
        canvas = init_canvas(cfg.init_image, width, height).to(rngs[0].device)
        return canvas.expand(len(rngs), -1, -1, -1)
    return torch.cat([noise_canvas(cfg.init_noise, width, height, rng) for rng in rngs])


def _vqgan(cfg: DictConfig, device: torch.device) -> Maker:
    vqgan, info = load_generator_model(cfg.vqgan, device)
    width, height = cfg.size
    check_size(width, height, vqgan.factor)

    def make(start: torch.Tensor | None, rngs: list[torch.Generator]) -> ImageGenerator:
        if start is None:
            return VQGANGenerator.from_random_tokens(vqgan, width, height, rngs)
        return VQGANGenerator.from_image(vqgan, start)

    return make, info


def _pixel(cfg: DictConfig, device: torch.device) -> Maker:
    width, height = cfg.size
    scale = cfg.pixel.scale
    if width % scale or height % scale:
        raise ConfigError(f"pixel.scale={scale} must divide both sides of the size {width}x{height}")

    def make(start: torch.Tensor | None, rngs: list[torch.Generator]) -> ImageGenerator:
        if start is None:  # "tokens" has no meaning here: start from uniform noise
            start = torch.cat([noise_canvas("pixels", width, height, rng) for rng in rngs])
        return PixelGenerator(start, width, height, scale)

    return make, {"name": "pixel", "scale": scale}


def _fourier(cfg: DictConfig, device: torch.device) -> Maker:
    width, height = cfg.size

    def make(start: torch.Tensor | None, rngs: list[torch.Generator]) -> ImageGenerator:
        return FourierGenerator(start, width, height, cfg.fourier.decay, rngs)

    return make, {"name": "fourier", "decay": cfg.fourier.decay}


GENERATORS: dict[str, Callable[[DictConfig, torch.device], Maker]] = {
    "vqgan": _vqgan,
    "pixel": _pixel,
    "fourier": _fourier,
}


def generator_maker(cfg: DictConfig, device: torch.device) -> Maker:
    """The generator the config names, its model loaded: a function making it at a start
    ((K, 3, H, W) images, or None for its own random start) with one image per random
    generator, and a description for the metadata."""
    if cfg.generator not in GENERATORS:
        raise ConfigError(f"generator={cfg.generator!r} is unknown; valid: {', '.join(GENERATORS)}")
    return GENERATORS[cfg.generator](cfg, device)


def clip_sections(cfg: DictConfig) -> list[tuple[Any, float]]:
    """(model section, weight) of each CLIP: `clip.models` for an ensemble, else `clip` itself."""
    if cfg.clip.models:
        return [(item, item.weight) for item in cfg.clip.models]
    return [(cfg.clip, 1.0)]


def build_judges(cfg: DictConfig, device: torch.device
                 ) -> tuple[list[Judge], list[dict[str, Any]], list[list[PromptLoss]]]:
    """One judge per CLIP model: its own cutout size, normalization and prompt embeddings, and
    its image prompts (to aim with `aim_image_prompts` before the first step)."""
    judges, infos, image_losses = [], [], []
    for section, weight in clip_sections(cfg):
        perceptor, info = load_clip_model(section, device)
        cutouts = Cutouts(perceptor.input_size, cfg.cutn, method=cfg.cut_method,
                          cut_pow=cfg.cut_pow, cut_min=cfg.cut_min, cut_full=cfg.cut_full,
                          padding=cfg.cut_padding,
                          augmentations=list(cfg.augmentations), strengths=cfg.augment)
        images = image_prompt_losses(list(cfg.image_prompts), perceptor)
        judges.append(Judge(perceptor, cutouts, build_stages(cfg, perceptor, images), weight,
                            info["name"]))
        infos.append({**info, "weight": weight})
        image_losses.append(images)
    return judges, infos, image_losses


def set_low_memory(generator: ImageGenerator, judges: list[Judge], enabled: bool) -> None:
    """Recompute activations block by block in the backward pass (generator and every CLIP)."""
    generator.set_low_memory(enabled)
    for judge in judges:
        judge.perceptor.model.set_grad_checkpointing(enabled)


def compile_models(generator: ImageGenerator, judges: list[Judge]) -> None:
    """torch.compile the generator's network and every CLIP's image tower (on first use)."""
    generator.compile()
    for judge in judges:
        judge.perceptor.model.visual.compile()


def regularizers(cfg: DictConfig) -> list[WeightedRegularizer]:
    """The `losses` list, plus `init` when init_weight is set."""
    items = [WeightedRegularizer(item.name, item.weight, item.decay) for item in cfg.losses]
    if cfg.init_weight:
        items.append(WeightedRegularizer("init", cfg.init_weight, cfg.init_weight_decay))
    return items

"""One generation from a resolved config: load models, build the engine, write the run folder."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from vqclip.config import GenerateConfig, nearby_sizes
from vqclip.cutouts import Cutouts
from vqclip.device import resolve_device
from vqclip.engine import Callback, Engine
from vqclip.errors import ConfigError, UsageError
from vqclip.generators import VQGANGenerator
from vqclip.images import init_canvas
from vqclip.metadata import build_record
from vqclip.models.loading import load_clip_model, load_generator_model
from vqclip.optimizers import make_optimizer
from vqclip.outputs import RunWriter, create_run_dir
from vqclip.prompts import parse_prompt_sets


@dataclass
class GenerateResult:
    """What a finished (or interrupted) run produced; `to_json` is the CLI's --json object."""

    image: Path
    run_dir: Path
    prompt: str
    seed: int
    steps: int
    size: list[int]
    final_loss: float
    seconds: float
    interrupted: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["image"], data["run_dir"] = str(self.image), str(self.run_dir)
        data["final_loss"] = round(self.final_loss, 6)
        data["seconds"] = round(self.seconds, 3)
        return data


class Run:
    """A prepared generation: models loaded and the run folder made; `execute` runs the loop."""

    def __init__(self, cfg: DictConfig) -> None:
        prompt_sets = parse_prompt_sets(cfg.prompt)
        if len(prompt_sets) > 1:
            raise UsageError("prompt sets separated by '^' (story mode) are not supported yet")
        device = resolve_device(cfg.device)
        seed = cfg.seed if cfg.seed is not None else secrets.randbelow(2**31)
        width, height = cfg.size

        vqgan, vqgan_info = load_generator_model(cfg.vqgan, device)
        check_size(width, height, vqgan.factor)
        perceptor, clip_info = load_clip_model(cfg.clip, device)

        self.rng = torch.Generator(device=device).manual_seed(seed)
        if cfg.init_image:
            canvas = init_canvas(cfg.init_image, width, height)
            generator = VQGANGenerator.from_image(vqgan, canvas)
        else:
            generator = VQGANGenerator.from_random_tokens(vqgan, width, height, self.rng)
        cutouts = Cutouts(perceptor.input_size, cfg.cutn, cut_pow=cfg.cut_pow,
                          cut_min=cfg.cut_min, cut_full=cfg.cut_full, augment=cfg.augment)
        optimizer = make_optimizer(cfg.optimizer.name, generator.parameters(), cfg.lr,
                                   OmegaConf.to_container(cfg.optimizer.options))
        self.engine = Engine(generator, perceptor, prompt_sets[0], cutouts, optimizer, self.rng,
                             steps=cfg.steps, save_every=cfg.save_every)

        resolved = OmegaConf.to_container(cfg, resolve=True)
        resolved["seed"] = seed
        if cfg.vqgan.config is not None:
            resolved["vqgan"]["model"] = None  # the paths, not the default name, made this image
        self.config = resolved
        self.run_dir = create_run_dir(cfg.out, seed, cfg.prompt)
        record = build_record(resolved, {"vqgan": vqgan_info, "clip": clip_info})
        self.writer = RunWriter(self.run_dir, resolved, record, self._state)

    def _state(self) -> dict[str, Any]:
        return {**self.engine.state_dict(), "config": self.config}

    def execute(self, callbacks: list[Callback] = ()) -> GenerateResult:
        """Run the loop to the end (or a requested stop); every file lands in the run folder."""
        done = self.engine.run([self.writer, *callbacks])
        cfg = self.config
        return GenerateResult(
            image=self.writer.final_path, run_dir=self.run_dir, prompt=cfg["prompt"],
            seed=cfg["seed"], steps=done.step, size=list(cfg["size"]), final_loss=done.loss,
            seconds=done.seconds, interrupted=done.interrupted,
        )


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


def generate(config: DictConfig | GenerateConfig | None = None, **overrides: Any) -> GenerateResult:
    """Library entry point: `vqclip.generate(cfg)` or `generate(prompt=..., steps=...)`."""
    from vqclip.config import validate

    cfg = OmegaConf.structured(GenerateConfig) if config is None else OmegaConf.structured(config)
    if overrides:
        cfg = OmegaConf.merge(cfg, overrides)
    validate(cfg, {})
    return Run(cfg).execute()

"""Stage two of a run: take its models from the caller's `Models` (loading those not held yet),
plan its memory and assemble the engine, from a RunSpec."""

from __future__ import annotations

import json
import logging
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch._subclasses.fake_tensor import FakeTensorMode

from vqclip.device import allow_tf32, autocast_dtype, resolve_device, step_weights_dtype
from vqclip.images import init_canvas
from vqclip.models.clip import Perceptor
from vqclip.models.held import Models
from vqclip.models.sources import clip_sections
from vqclip.run.capture import CapturedStep
from vqclip.run.engine import Engine
from vqclip.run.execute import Run
from vqclip.run.memory import parse_bytes
from vqclip.run.planner import MemoryPlan, plan
from vqclip.run.prepare import RunSpec
from vqclip.run.resume import ResumePoint
from vqclip.run.start_pick import StartPick, pick_start
from vqclip.steer.cutouts import Cutouts
from vqclip.steer.generators import GENERATORS, INIT_NOISE, ImageGenerator, MakeGenerator
from vqclip.steer.losses import PromptLoss, WeightedRegularizer, read_loss
from vqclip.steer.optimizers import make_optimizer
from vqclip.steer.schedules import make_scheduler
from vqclip.steer.start_choices import StartChoices
from vqclip.steer.targets import Judge, aim_image_prompts, build_stages, image_prompt_losses

log = logging.getLogger(__name__)

# Keys that change what an image becomes but not a step's memory: runs differing only in these
# share a memory plan.
_NOT_MEMORY = ("prompt", "negative", "image_prompts", "noise_prompts", "story", "switch_every", "seed",
               "steps", "lr", "lr_schedule", "save_every", "out", "init_weight", "init_weight_decay")


def build(spec: RunSpec, models: Models | None = None, *, resume: ResumePoint | None = None) -> Run:
    """Assemble the loop on the spec's device, ready to `execute`, with the models `models`
    holds; those it does not hold yet are loaded into it, kept for the holder's next run. None:
    a holder of this run's own, its models freed with the run.

    With `resume` (its run folder locked) the loop continues from that run's saved state."""
    models = Models() if models is None else models
    cfg = spec.config
    device = resolve_device(cfg.device)
    if resume is not None:
        resume.check_device(device)
    allow_tf32(device, cfg.precision)
    rngs = [torch.Generator(device=device).manual_seed(seed) for seed in spec.seeds]
    make, generator_info = GENERATORS[cfg.generator].build(cfg, models, device)
    judges, clip_infos, image_prompts = build_judges(spec, models, device)
    memory = None
    if cfg.plan_memory:
        memory = models.memory_plan(memory_key(cfg, device), lambda: _plan(spec, make, judges, device))
        if memory.switched_low_memory:
            spec = spec.with_low_memory()
            cfg = spec.config
    # Only now, with the plan made, anything that grows with the image size: the image prompts
    # (loaded, embedded) and the generator at its start (an init image loaded and encoded, or
    # each start offered drawn and scored, image prompts included).
    for judge, (losses, perceptor) in zip(judges, image_prompts, strict=True):
        aim_image_prompts(losses, perceptor, judge.cutouts, list(cfg.size))
    pick = None
    if not cfg.init_image and isinstance(choices := INIT_NOISE[cfg.init_noise], StartChoices):
        pick = pick_start(choices, tuple(cfg.size), make, judges,
                          autocast_dtype(cfg.precision, device), device)
        if any(len(judge.stages) > 1 for judge in judges):
            log.warning("the start, the %s, was picked for the story's first prompts only",
                        pick.picked)
    engine = assemble_engine(cfg, make(start_images(cfg, rngs, pick), rngs), judges, rngs)
    set_low_memory(engine.generator, judges, cfg.low_memory)
    choose_step_body(engine, cfg, device)
    if resume is not None:
        engine.load_state_dict(resume.state)
    models = {cfg.generator: generator_info,
              "clip": clip_infos[0] if len(clip_infos) == 1 else clip_infos}

    def engine_for(seed: int) -> Engine:
        """A one-image engine on the same models (the kept candidate continues in it)."""
        rng = [torch.Generator(device=device).manual_seed(seed)]
        alone = assemble_engine(cfg, make(start_images(cfg, rng, pick), rng), judges, rng)
        choose_step_body(alone, cfg, device)
        return alone

    return Run(spec, engine, device, models, memory=memory, resume=resume, engine_for=engine_for,
               start=None if pick is None else pick.note())


def _plan(spec: RunSpec, make: MakeGenerator, judges: list[Judge], device: torch.device) -> MemoryPlan:
    """Check the run fits before anything that grows with the image size is real: the plan
    runs on a stand-in generator of fake tensors, and simulates making it at a start image."""
    cfg = spec.config
    stand_in = [torch.Generator(device=device).manual_seed(0) for _ in spec.seeds]
    with FakeTensorMode(allow_non_fake_inputs=True):
        engine = assemble_engine(cfg, make(None, stand_in), judges, stand_in)
    start = None
    if starts_from_canvas(cfg):
        width, height = spec.size

        def start() -> ImageGenerator:
            return make(torch.zeros((len(stand_in), 3, height, width), device=device), stand_in)
    generator = engine.generator
    set_low_memory(generator, judges, cfg.low_memory)
    return plan(
        engine, device, size=spec.size, size_multiple=generator.size_multiple,
        low_memory=cfg.low_memory, set_low_memory=lambda on: set_low_memory(generator, judges, on),
        max_memory=parse_bytes(cfg.max_memory) if cfg.max_memory else None, start=start,
    )


def assemble_engine(cfg: DictConfig, generator: ImageGenerator, judges: list[Judge],
                    rngs: list[torch.Generator]) -> Engine:
    """The loop over `generator` with the config's optimizer, schedule and regularizers."""
    optimizer = make_optimizer(cfg.optimizer.name, generator.parameters(), cfg.lr,
                               OmegaConf.to_container(cfg.optimizer.options))
    scheduler = make_scheduler(cfg.lr_schedule.name, optimizer, cfg.steps,
                               OmegaConf.to_container(cfg.lr_schedule.options))
    return Engine(generator, judges, optimizer, scheduler, rngs, steps=cfg.steps,
                  save_every=cfg.save_every, regularizers=regularizers(cfg),
                  autocast_dtype=autocast_dtype(cfg.precision, device=rngs[0].device), ema=cfg.ema)


def starts_from_canvas(cfg: DictConfig) -> bool:
    """Whether the generator starts from a full-size image (the init image, a noise canvas or a
    start picked among several) rather than from its own random start."""
    return bool(cfg.init_image) or INIT_NOISE[cfg.init_noise] is not None


def start_images(cfg: DictConfig, rngs: list[torch.Generator], pick: StartPick | None
                 ) -> torch.Tensor | None:
    """The init image, the picked start, or a noise canvas, once per random generator,
    (K, 3, H, W); None for the generator's own start."""
    if not starts_from_canvas(cfg):
        return None
    width, height = cfg.size
    if cfg.init_image or pick is not None:
        canvas = pick.canvas if pick is not None else init_canvas(cfg.init_image, width, height)
        return canvas.to(rngs[0].device).expand(len(rngs), -1, -1, -1)
    canvas = INIT_NOISE[cfg.init_noise]
    return torch.cat([canvas(width, height, rng) for rng in rngs])


def build_judges(spec: RunSpec, models: Models, device: torch.device
                 ) -> tuple[list[Judge], list[dict[str, Any]], list[tuple[list[PromptLoss], Perceptor]]]:
    """One judge per CLIP model: its own cutout size, normalization and prompt embeddings, and
    its image prompts with the full-precision CLIP to aim them with (`aim_image_prompts`,
    before the first step). A judge's CLIP is the one the step runs: under autocast, its copy
    with the image tower's weights in the compute dtype (not with `low_memory`)."""
    cfg = spec.config
    step_dtype = step_weights_dtype(cfg.precision, device, cfg.low_memory)
    judges, infos, image_prompts = [], [], []
    for _, section in clip_sections(cfg):
        weight = section.get("weight", 1.0)  # an ensemble member's; `clip` alone has none
        perceptor, info = models.clip(section, device, cfg.compile)
        cutouts = Cutouts(perceptor.input_size, cfg.cutn, method=cfg.cut_method,
                          cut_pow=cfg.cut_pow, cut_min=cfg.cut_min, cut_full=cfg.cut_full,
                          padding=cfg.cut_padding,
                          augmentations=list(cfg.augmentations), strengths=cfg.augment)
        images = image_prompt_losses(spec.prompts.images, perceptor)
        judges.append(Judge(models.autocast_copy(perceptor, step_dtype), cutouts,
                            build_stages(spec.prompts, perceptor, images), weight, info["name"]))
        infos.append({**info, "weight": weight})
        image_prompts.append((images, perceptor))
    return judges, infos, image_prompts


def set_low_memory(generator: ImageGenerator, judges: list[Judge], enabled: bool) -> None:
    """Recompute activations block by block in the backward pass (generator and every CLIP)."""
    generator.set_low_memory(enabled)
    for judge in judges:
        judge.perceptor.model.set_grad_checkpointing(enabled)


def choose_step_body(engine: Engine, cfg: DictConfig, device: torch.device) -> None:
    """How the engine runs its step: with `compile`, its forward (decode, quantize, cutouts,
    CLIP, losses) compiled as one graph (CUDA graphs too on CUDA, mode `reduce-overhead`);
    else on CUDA with `capture` the whole step body recorded as one CUDA graph; else eagerly.
    Story mode changes the prompts mid-run, which a recorded graph cannot follow: there the
    step runs eagerly, and the log says so."""
    if cfg.compile:
        mode = "reduce-overhead" if device.type == "cuda" else None
        engine.forward = torch.compile(engine.forward, mode=mode)
        return
    if not cfg.capture or device.type != "cuda":
        return
    if any(len(judge.stages) > 1 for judge in engine.judges):
        log.warning("capture off: the prompts change mid-run (story mode), which one recorded "
                    "CUDA graph cannot follow; steps run eagerly")
        return
    engine.step_body = CapturedStep(engine.train_step)


def regularizers(cfg: DictConfig) -> list[WeightedRegularizer]:
    """The `losses` list, each with its options, plus `init` when init_weight is set."""
    items = [read_loss(item, f"losses.{index}") for index, item in enumerate(cfg.losses)]
    if cfg.init_weight:
        items.append(WeightedRegularizer("init", cfg.init_weight, cfg.init_weight_decay,
                                         cfg.init_weight_until))
    return items


def memory_key(cfg: DictConfig, device: torch.device) -> str:
    """The settings a step's memory depends on: the config without what only changes the image."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in _NOT_MEMORY:
        data.pop(key, None)
    return json.dumps({"config": data, "device": str(device)}, sort_keys=True, default=str)

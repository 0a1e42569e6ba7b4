"""Stage one of a run: check the config, its input images and what it says of its models
(described from configs and the registry, no weights read, nothing downloaded), and fix its seeds."""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vqclip.errors import UsageError
from vqclip.models.facts import ModelFacts
from vqclip.run.config import validate
from vqclip.steer.prompts import PromptPlan, parse_prompt, plan_prompts


@dataclass(frozen=True)
class RunSpec:
    """A checked description of one run (K images with batch size K, or N candidates): its
    config, read-only, the seed of each image, every prompt parsed and what is known of its
    models before they load. `build` turns it into a runnable `Run`."""

    config: DictConfig
    seeds: tuple[int, ...]
    prompts: PromptPlan
    models: ModelFacts

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every image."""
        width, height = self.config.size
        return width, height

    def with_low_memory(self) -> RunSpec:
        """The same run with activations recomputed in the backward pass (the planner's choice)."""
        config = OmegaConf.merge(self.config, {"low_memory": True})
        OmegaConf.set_readonly(config, True)
        return replace(self, config=config)

    def image_config(self, index: int) -> dict[str, Any]:
        """The resolved config of image `index`: the single run (its seed, batch size 1, no
        candidates) making it."""
        resolved = OmegaConf.to_container(self.config, resolve=True)
        resolved["seed"] = self.seeds[index]
        resolved["batch_size"] = 1
        resolved["candidates"], resolved["candidate_steps"] = 1, None
        if self.config.vqgan.config is not None:
            resolved["vqgan"]["model"] = None  # the paths, not the default name, made this image
        # Input images by absolute path: the settings then make the image again from any folder.
        if resolved["init_image"] and Path(resolved["init_image"]).is_file():
            resolved["init_image"] = str(Path(resolved["init_image"]).resolve())
        resolved["image_prompts"] = [_absolute_image_prompt(item) for item in resolved["image_prompts"]]
        return resolved


def prepare(cfg: DictConfig, provenance: dict[str, str] | None = None, *, available: bool = True) -> RunSpec:
    """Check `cfg` (naming the source of a bad value from `provenance`), its input images and
    its models as their configs describe them, and (`available`) that offline its models are
    on this machine (`check_offline`, last); describe its run.

    Nothing here reads a weight file, starts a download or allocates a model: a bad value, a
    missing or unreadable input image, an unknown model or tag, a size the VQGAN cannot draw
    are reported first. A fact only the weights hold (a model whose config is not on this
    machine yet) is checked when the model has loaded."""
    validate(cfg, provenance or {})
    prompts = check_aim(cfg)
    check_input_images(cfg, prompts)
    models = check_models(cfg)
    if available:
        from vqclip.models.loading import check_offline  # the model code: once the config is sound

        check_offline(cfg)
    seed = cfg.seed if cfg.seed is not None else secrets.randbelow(2**31)
    config = copy.deepcopy(cfg)  # the caller's config stays theirs to change
    OmegaConf.set_readonly(config, True)
    images = max(cfg.batch_size, cfg.candidates)  # candidates race as a batch does
    return RunSpec(config, tuple(seed + i for i in range(images)), prompts, models)


def check_input_images(cfg: DictConfig, prompts: PromptPlan) -> None:
    """The init image and every image prompt, read as the run will read them (a path or a
    #rrggbb color); the first that cannot be is an error naming its key."""
    from vqclip.images import init_canvas

    inputs = [("init_image", cfg.init_image)] if cfg.init_image else []
    inputs += [("image_prompts", prompt.text) for prompt in prompts.images]
    for key, source in inputs:
        try:
            init_canvas(source, 8, 8)
        except UsageError as err:
            raise UsageError(f"{key}: {err}") from None


def check_models(cfg: DictConfig) -> ModelFacts:
    """The run's models described without their weights, and checked against the config: the
    size against the VQGAN's factor, each CLIP's name, weights file and tag."""
    from vqclip.models.clip_config import check_clip_tag
    from vqclip.models.resolve import resolve_models
    from vqclip.steer.generators import check_size

    models = resolve_models(cfg)
    if models.vqgan is not None and models.vqgan.factor is not None:
        check_size(*cfg.size, models.vqgan.factor)
    for clip in models.clips:  # last: a tag is checked in open_clip's table, a slow import
        check_clip_tag(clip)
    return models


def check_aim(cfg: DictConfig) -> PromptPlan:
    """The prompt rule of every run (generate, the library, batch, sweep and zoom items): it
    needs something to aim at, a text prompt (or story), an image prompt or a noise prompt; a
    negative prompt only pushes away, so alone it aims at nothing. Returns the parsed prompts."""
    prompts = plan_prompts(cfg)
    if not (prompts.stages or prompts.images or prompts.noise):
        raise UsageError("nothing to aim for: give a text prompt, an image prompt or a noise prompt "
                         "(a negative prompt alone aims at nothing)")
    return prompts


def _absolute_image_prompt(item: str) -> str:
    path = parse_prompt(item).text
    return item.replace(path, str(Path(path).resolve()), 1) if Path(path).is_file() else item

"""One generation from a resolved config: load models, build the engine, write the run folder."""

from __future__ import annotations

import pickle
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf
from torch._subclasses.fake_tensor import FakeTensorMode

from vqclip.assemble import (
    MakeGenerator,
    build_judges,
    compile_models,
    generator_maker,
    regularizers,
    set_low_memory,
    start_images,
    starts_from_canvas,
)
from vqclip.config import GenerateConfig, literal, validate
from vqclip.device import allow_tf32, autocast_dtype, resolve_device
from vqclip.engine import Callback, Engine, Judge, for_image
from vqclip.errors import OutOfMemory, UsageError
from vqclip.generators import ImageGenerator
from vqclip.memory import gib, parse_bytes
from vqclip.metadata import build_record
from vqclip.models.loading import file_sha256
from vqclip.optimizers import make_optimizer
from vqclip.outputs import RunWriter, create_run_dir, lock_run_dir
from vqclip.planner import MemoryPlan, measure, plan, smaller_settings
from vqclip.prompts import parse_prompt
from vqclip.schedules import make_scheduler
from vqclip.targets import aim_image_prompts


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
    batch: list[GenerateResult] = field(default_factory=list)  # every image of a batch run

    def to_json(self) -> dict[str, Any]:
        """This image's fields, and with --batch-size every image's under "batch"."""
        data = self._image_json()
        if self.batch:
            data["batch"] = [result._image_json() for result in self.batch]
        return data

    def _image_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "batch"}
        data["image"], data["run_dir"] = str(self.image), str(self.run_dir)
        data["final_loss"] = round(self.final_loss, 6)
        data["seconds"] = round(self.seconds, 3)
        return data


class Run:
    """A prepared generation: models loaded and the run folders ready; `execute` runs the loop.

    With `batch_size` K it makes the images of seeds seed..seed+K-1 in one optimization, each
    in its own run folder whose config is that of the single run following the same path.
    With `resume` (a ResumePoint) it continues that run from its state instead of starting anew.
    """

    def __init__(self, cfg: DictConfig, *, resume: ResumePoint | None = None) -> None:
        state = resume.state if resume is not None else None
        device = resolve_device(cfg.device)
        if resume is not None:
            resume.check_device(device)
        allow_tf32(device, cfg.precision)
        seed = cfg.seed if cfg.seed is not None else secrets.randbelow(2**31)
        seeds = [seed + i for i in range(cfg.batch_size)]

        rngs = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        make, generator_info = generator_maker(cfg, device)
        judges, clip_infos, image_losses = build_judges(cfg, device)
        self.device = device
        self.memory: MemoryPlan | None = None
        if cfg.plan_memory:
            self.memory = self._plan(cfg, make, judges, rngs)
            if self.memory.switched_low_memory:
                cfg.low_memory = True
        # Only now, with the plan made, anything that grows with the image size: the generator
        # at its start (an init image loaded and encoded) and the image prompts (loaded, embedded).
        self.engine = _engine(cfg, make(start_images(cfg, rngs), rngs), judges, rngs)
        for judge, losses in zip(judges, image_losses, strict=True):
            aim_image_prompts(losses, judge.perceptor, judge.cutouts, list(cfg.size))
        generator = self.engine.generator
        set_low_memory(generator, judges, cfg.low_memory)
        if cfg.compile:
            compile_models(generator, judges)

        models = {cfg.generator: generator_info,
                  "clip": clip_infos[0] if len(clip_infos) == 1 else clip_infos}
        self.configs = [_image_config(cfg, s) for s in seeds]
        inputs = input_digests(self.configs[0])
        if state is None:
            self.run_dirs = [create_run_dir(cfg.out, s, cfg.prompt or "image") for s in seeds]
            self._locks = [lock_run_dir(run_dir) for run_dir in self.run_dirs]
        else:
            self.engine.load_state_dict(state)
            self.run_dirs = [resume.run_dir]
            self._locks = [resume.lock]
        try:
            self.writers = [
                RunWriter(run_dir, config, build_record(config, models, _batch_note(seeds, i), inputs),
                          lambda i=i: self._state(i), resumed_at=None if state is None else state["step"])
                for i, (run_dir, config) in enumerate(zip(self.run_dirs, self.configs, strict=True))
            ]
        except BaseException:  # a folder that cannot be written is not left locked
            for lock in self._locks:
                lock.release()
            raise

    def _plan(self, cfg: DictConfig, make: MakeGenerator, judges: list[Judge],
              rngs: list[torch.Generator]) -> MemoryPlan:
        """Check the run fits before anything that grows with the image size is real: the plan
        runs on a stand-in generator of fake tensors, and simulates making it at a start image."""
        stand_in = [torch.Generator(device=self.device).manual_seed(0) for _ in rngs]
        with FakeTensorMode(allow_non_fake_inputs=True):
            engine = _engine(cfg, make(None, stand_in), judges, stand_in)
        start = None
        if starts_from_canvas(cfg):
            width, height = cfg.size

            def start() -> ImageGenerator:
                return make(torch.zeros((len(rngs), 3, height, width), device=self.device), stand_in)
        generator = engine.generator
        set_low_memory(generator, judges, cfg.low_memory)
        return plan(
            engine, self.device, size=tuple(cfg.size), size_multiple=generator.size_multiple,
            low_memory=cfg.low_memory, set_low_memory=lambda on: set_low_memory(generator, judges, on),
            max_memory=parse_bytes(cfg.max_memory) if cfg.max_memory else None, start=start,
        )

    def _state(self, index: int) -> dict[str, Any]:
        return {**self.engine.state_dict(index), "config": self.configs[index]}

    def execute(self, callbacks: list[Callback] = ()) -> GenerateResult:
        """Run the loop to the end (or a requested stop); every file lands in the run folders.

        Returns the first image's result, with every image's in `batch` when there are several.
        `callbacks` see the events of the first image and those shared by the batch."""
        writers = [for_image(i, writer) for i, writer in enumerate(self.writers)]
        try:
            done = self.engine.run([*writers, *(for_image(0, c) for c in callbacks)])
        finally:
            for lock in self._locks:
                lock.release()
        if self.engine.out_of_memory:
            raise OutOfMemory(self._out_of_memory_message(done[0].step))
        results = [
            GenerateResult(
                image=writer.final_path, run_dir=writer.run_dir, prompt=cfg["prompt"],
                seed=cfg["seed"], steps=end.step, size=list(cfg["size"]), final_loss=end.loss,
                seconds=end.seconds, interrupted=end.interrupted,
            )
            for writer, cfg, end in zip(self.writers, self.configs, done, strict=True)
        ]
        first = results[0]
        if len(results) > 1:
            first.batch = results
        return first

    def _out_of_memory_message(self, step: int) -> str:
        cfg = self.configs[0]
        memory = measure(self.engine, self.device, low_memory=cfg["low_memory"],
                         split_cutouts=True)
        half_the_step = memory.resident + memory.step // 2
        smaller = smaller_settings(memory, half_the_step, size=tuple(cfg["size"]),
                                   size_multiple=self.engine.generator.size_multiple,
                                   cutn=cfg["cutn"], batch_size=self.engine.batch_size)
        low = "" if cfg["low_memory"] else "--low-memory, "
        saved = ", ".join(str(run_dir) for run_dir in self.run_dirs)
        return (f"out of memory at step {step} on {self.device.type} (a step needs about "
                f"{gib(memory.total)}); images and state saved in {saved}. Try {low}{smaller}")


def _engine(cfg: DictConfig, generator: ImageGenerator, judges: list[Judge],
            rngs: list[torch.Generator]) -> Engine:
    """The loop over `generator` with the config's optimizer, schedule and regularizers."""
    optimizer = make_optimizer(cfg.optimizer.name, generator.parameters(), cfg.lr,
                               OmegaConf.to_container(cfg.optimizer.options))
    scheduler = make_scheduler(cfg.lr_schedule.name, optimizer, cfg.steps,
                               OmegaConf.to_container(cfg.lr_schedule.options))
    return Engine(generator, judges, optimizer, scheduler, rngs, steps=cfg.steps,
                  save_every=cfg.save_every, regularizers=regularizers(cfg),
                  autocast_dtype=autocast_dtype(cfg.precision, device=rngs[0].device))


def _image_config(cfg: DictConfig, seed: int) -> dict[str, Any]:
    """The resolved config of one image: the single run (its seed, batch size 1) that makes it."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["seed"] = seed
    resolved["batch_size"] = 1
    if cfg.vqgan.config is not None:
        resolved["vqgan"]["model"] = None  # the paths, not the default name, made this image
    # Input images by absolute path: the settings then make the image again from any folder.
    if resolved["init_image"] and Path(resolved["init_image"]).is_file():
        resolved["init_image"] = str(Path(resolved["init_image"]).resolve())
    resolved["image_prompts"] = [_absolute_image_prompt(item) for item in resolved["image_prompts"]]
    return resolved


def _absolute_image_prompt(item: str) -> str:
    path = parse_prompt(item).text
    return item.replace(path, str(Path(path).resolve()), 1) if Path(path).is_file() else item


def input_digests(config: dict[str, Any]) -> dict[str, str]:
    """sha256 of each input image file the config names, by path: a changed file can be noticed."""
    paths = [config["init_image"], *(parse_prompt(item).text for item in config["image_prompts"])]
    return {path: file_sha256(path) for path in paths if path and Path(path).is_file()}


def _batch_note(seeds: list[int], index: int) -> dict[str, Any] | None:
    """What the image's record says of the batch it was made in (None for a single run)."""
    if len(seeds) == 1:
        return None
    return {"size": len(seeds), "index": index, "seeds": seeds}


STATE_KEYS = {"step", "parameters", "initial", "optimizer", "scheduler", "rng", "config"}


@dataclass
class ResumePoint:
    """A run folder, locked against other processes, and the state read from its state.pt
    (with weights_only=True)."""

    run_dir: Path
    state: dict[str, Any]
    lock: FileLock

    @classmethod
    def load(cls, run_dir: Path) -> ResumePoint:
        """Lock `run_dir` and read its state.pt; a usage error if the folder is in use or the
        state is missing or unreadable."""
        path = Path(run_dir) / "state.pt"
        if not path.is_file():
            raise UsageError(f"{run_dir} has no state.pt to resume from")
        lock = lock_run_dir(Path(run_dir))
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError):
            lock.release()
            raise UsageError(f"{path} is damaged (not a state vqclip wrote)") from None
        if not isinstance(state, dict) or not STATE_KEYS <= state.keys():
            lock.release()
            raise UsageError(f"{path} is not a vqclip run state (it lacks step, parameters or config)")
        return cls(Path(run_dir), state, lock)

    def config(self, *, steps: int | None = None, device: str | None = None) -> DictConfig:
        """The config the run was started with, with `steps` optionally raised and `device`
        optionally replaced."""
        cfg = OmegaConf.merge(OmegaConf.structured(GenerateConfig), literal(self.state["config"]))
        if device is not None:
            cfg.device = device
        if steps is not None:
            done = self.state["step"]
            if steps < done:
                raise UsageError(f"--steps {steps} is below the {done} steps already done")
            cfg.steps = steps
        validate(cfg, {})
        return cfg

    def check_device(self, device: torch.device) -> None:
        """Refuse to continue on another kind of device than the run's: a CUDA random generator
        and a CPU one have different states (a saved `device: auto` can resolve to either)."""
        saved = self.state.get("device", device.type)  # a state.pt from before it was saved
        if saved != device.type:
            raise UsageError(f"{self.run_dir} ran on {saved} and would continue on {device.type}: "
                             f"its random state only continues on {saved}; pass --device {saved}")


def generate(config: DictConfig | GenerateConfig | None = None, **overrides: Any) -> GenerateResult:
    """Library entry point: `generate(cfg)` or `generate(prompt=..., steps=...)`."""
    cfg = OmegaConf.structured(GenerateConfig) if config is None else OmegaConf.structured(config)
    if overrides:
        cfg = OmegaConf.merge(cfg, literal(overrides))
    validate(cfg, {})
    return Run(cfg).execute()

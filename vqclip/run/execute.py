"""Stage three of a run: create its folders and run the loop, every file landing in them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vqclip.errors import OutOfMemory
from vqclip.files import cached_sha256
from vqclip.outputs.metadata import build_record
from vqclip.outputs.run_folder import RunWriter, create_run_dir, lock_run_dir
from vqclip.run.engine import Engine
from vqclip.run.events import Callback, for_image
from vqclip.run.memory import gib
from vqclip.run.planner import MemoryPlan, measure, smaller_settings
from vqclip.run.prepare import RunSpec
from vqclip.steer.prompts import parse_prompt

if TYPE_CHECKING:
    from vqclip.run.resume import ResumePoint


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
        # No step taken (stopped before the first): no loss, and JSON has no NaN.
        data["final_loss"] = round(self.final_loss, 6) if math.isfinite(self.final_loss) else None
        data["seconds"] = round(self.seconds, 3)
        return data


class Run:
    """A built run, ready to `execute`: the engine assembled on its device, models loaded.

    With batch size K it makes the images of seeds seed..seed+K-1 in one optimization, each
    in its own run folder whose config is that of the single run following the same path.
    With `resume` (a ResumePoint) it continues that run in its folder.
    """

    def __init__(self, spec: RunSpec, engine: Engine, device: torch.device, models: dict[str, Any],
                 *, memory: MemoryPlan | None = None, resume: ResumePoint | None = None) -> None:
        self.spec = spec
        self.engine = engine
        self.device = device
        self.models = models
        self.memory = memory
        self.resume = resume
        self.configs = [spec.image_config(i) for i in range(len(spec.seeds))]
        self.run_dirs: list[Path] = []

    def _state(self, index: int) -> dict[str, Any]:
        return {**self.engine.state_dict(index), "config": self.configs[index]}

    def execute(self, callbacks: list[Callback] = ()) -> GenerateResult:
        """Create the run folders (or take the resumed one) and run the loop to the end (or a
        requested stop); every file lands in the run folders.

        Returns the first image's result, with every image's in `batch` when there are several.
        `callbacks` see the events of the first image and those shared by the batch."""
        cfg = self.spec.config
        if self.resume is None:
            self.run_dirs = [create_run_dir(cfg.out, seed, cfg.prompt or "image") for seed in self.spec.seeds]
            locks = [lock_run_dir(run_dir) for run_dir in self.run_dirs]
        else:
            self.run_dirs, locks = [self.resume.run_dir], [self.resume.lock]
        try:
            writers = self._writers()
            done = self.engine.run([*(for_image(i, w) for i, w in enumerate(writers)),
                                    *(for_image(0, c) for c in callbacks)])
        finally:
            for lock in locks:
                lock.release()
        if self.engine.out_of_memory:
            raise OutOfMemory(self._out_of_memory_message(done[0].step))
        results = [
            GenerateResult(
                image=writer.final_path, run_dir=writer.run_dir, prompt=config["prompt"],
                seed=config["seed"], steps=end.step, size=list(config["size"]), final_loss=end.loss,
                seconds=end.seconds, interrupted=end.interrupted,
            )
            for writer, config, end in zip(writers, self.configs, done, strict=True)
        ]
        first = results[0]
        if len(results) > 1:
            first.batch = results
        return first

    def _writers(self) -> list[RunWriter]:
        inputs = input_digests(self.configs[0])
        resumed_at = None if self.resume is None else self.resume.state["step"]
        seeds = list(self.spec.seeds)
        return [
            RunWriter(run_dir, config, build_record(config, self.models, _batch_note(seeds, i), inputs),
                      lambda i=i: self._state(i), resumed_at=resumed_at)
            for i, (run_dir, config) in enumerate(zip(self.run_dirs, self.configs, strict=True))
        ]

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


def input_digests(config: dict[str, Any]) -> dict[str, str]:
    """sha256 of each input image file the config names, by path: a changed file can be noticed."""
    paths = [config["init_image"], *(parse_prompt(item).text for item in config["image_prompts"])]
    return {path: cached_sha256(path) for path in paths if path and Path(path).is_file()}


def _batch_note(seeds: list[int], index: int) -> dict[str, Any] | None:
    """What the image's record says of the batch it was made in (None for a single run)."""
    if len(seeds) == 1:
        return None
    return {"size": len(seeds), "index": index, "seeds": seeds}

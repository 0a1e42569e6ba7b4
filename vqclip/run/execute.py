"""Stage three of a run: create its folders and run the loop, every file landing in them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vqclip.errors import OutOfMemory
from vqclip.files import cached_sha256
from vqclip.outputs.metadata import build_record
from vqclip.outputs.run_folder import RunWriter, create_run_dir, lock_run_dir
from vqclip.run.candidates import (
    CandidatesInterrupted,
    EventLog,
    Race,
    json_entries,
    read_note,
    score_candidates,
)
from vqclip.run.config import candidate_steps
from vqclip.run.engine import Engine
from vqclip.run.events import Callback, DoneEvent, for_image
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
    # with --candidates: each candidate's seed, score and thumbnail, and the seed kept
    candidates: list[dict[str, Any]] = field(default_factory=list)
    winner: int | None = None
    video: Path | None = None  # the progress video, when one was asked for

    def to_json(self) -> dict[str, Any]:
        """This image's fields, with --batch-size every image's under "batch", and with
        --candidates every candidate under "candidates" and the seed kept as "winner"."""
        data = self._image_json()
        if self.batch:
            data["batch"] = [result._image_json() for result in self.batch]
        if self.candidates:
            data["candidates"], data["winner"] = self.candidates, self.winner
        return data

    def _image_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("batch", "candidates", "winner", "video")}
        data["image"], data["run_dir"] = str(self.image), str(self.run_dir)
        if self.video is not None:
            data["video"] = str(self.video)
        # No step taken (stopped before the first): no loss, and JSON has no NaN.
        data["final_loss"] = round(self.final_loss, 6) if math.isfinite(self.final_loss) else None
        data["seconds"] = round(self.seconds, 3)
        return data


class Run:
    """A built run, ready to `execute`: the engine assembled on its device, models loaded.

    With batch size K it makes the images of seeds seed..seed+K-1 in one optimization, each
    in its own run folder whose config is that of the single run following the same path.
    With N candidates it races seeds seed..seed+N-1 the same way for `candidate_steps`, keeps
    the one CLIP scores best and continues it alone (`engine_for` makes its engine) in the one
    run folder, made when the race ends. With `resume` (a ResumePoint) it continues that run
    in its folder. `start`: what the images' records say of a start picked among several.
    """

    def __init__(self, spec: RunSpec, engine: Engine, device: torch.device, models: dict[str, Any],
                 *, memory: MemoryPlan | None = None, resume: ResumePoint | None = None,
                 engine_for: Callable[[int], Engine] | None = None,
                 start: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.engine = engine
        self.device = device
        self.models = models
        self.memory = memory
        self.resume = resume
        self.engine_for = engine_for
        self.start = start
        self.seeds = list(spec.seeds)
        self.configs = [spec.image_config(i) for i in range(len(spec.seeds))]
        self.run_dirs: list[Path] = []
        self.race: Race | None = None

    def request_stop(self) -> None:
        """Stop the loop running now (the race's or the kept candidate's) after its step."""
        self.engine.request_stop()

    def _state(self, index: int) -> dict[str, Any]:
        return {**self.engine.state_dict(index), "config": self.configs[index]}

    def execute(self, callbacks: list[Callback] = ()) -> GenerateResult:
        """Create the run folders (or take the resumed one) and run the loop to the end (or a
        requested stop); every file lands in the run folders.

        Returns the first image's result, with every image's in `batch` when there are several.
        `callbacks` see the events of the first image and those shared by the batch."""
        cfg = self.spec.config
        race_events = None
        if self.resume is None and cfg.candidates > 1:
            race_events = self._run_race(callbacks)
        if self.resume is None:
            self.run_dirs = [create_run_dir(cfg.out, seed, cfg.prompt or "image") for seed in self.seeds]
            locks = [lock_run_dir(run_dir) for run_dir in self.run_dirs]
        else:
            self.run_dirs, locks = [self.resume.run_dir], [self.resume.lock]
        try:
            if self.race is not None:
                self.race.write(self.run_dirs[0])
            writers = self._writers()
            for event in race_events or ():
                if not isinstance(event, DoneEvent):
                    writers[0](event)  # the kept candidate's steps and frames of the race
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
        note = read_note(first.run_dir)
        if note is not None:
            first.candidates, first.winner = json_entries(note, first.run_dir), note["winner"]
        return first

    def _run_race(self, callbacks: list[Callback]) -> list[Any]:
        """Race the candidates to candidate_steps, score them and make the winner this run's only
        image, continuing in a one-image engine; return the winner's events of the race.

        Callbacks see the race as they see a batch (the first candidate's events)."""
        steps = candidate_steps(self.spec.config)
        log = EventLog()
        self.engine.run([log, *(for_image(0, c) for c in callbacks)], until=steps)
        if self.engine.out_of_memory:
            raise OutOfMemory(f"out of memory at step {self.engine.step} of the race of "
                              f"{len(self.seeds)} candidates on {self.device.type}; nothing was "
                              "saved. Try fewer --candidates, or --low-memory")
        if self.engine.step < steps:
            raise CandidatesInterrupted(self.engine.step, steps)
        race = Race(steps, self.seeds, score_candidates(self.engine), self.engine.images())
        index = race.winner_index
        alone = self.engine_for(race.winner)
        alone.load_state_dict(self.engine.state_dict(index))
        self.engine, self.race = alone, race
        self.seeds, self.configs = [race.winner], [self.configs[index]]
        return log.of_image(index)

    def _writers(self) -> list[RunWriter]:
        inputs = input_digests(self.configs[0])
        resumed_at = None if self.resume is None else self.resume.state["step"]
        race = self.race.note() if self.race is not None else \
            read_note(self.resume.run_dir) if self.resume is not None else None
        return [
            RunWriter(run_dir, config,
                      build_record(config, self.models, _batch_note(self.seeds, i), inputs,
                                   candidates=race, start=self.start),
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

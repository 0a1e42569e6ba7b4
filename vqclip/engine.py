"""The one optimization loop: decode, cut out, embed, score, step; it reports through events."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vqclip.cutouts import Cutouts
from vqclip.generators import ImageGenerator
from vqclip.losses import LossContext, PromptLoss, WeightedRegularizer
from vqclip.models.clip import Perceptor


@dataclass
class StepEvent:
    """One optimizer step: its total loss, the named parts, and seconds since the loop began."""

    step: int
    loss: float
    losses: dict[str, float]
    seconds: float


@dataclass
class ImageEvent:
    """The image CLIP scored at `step`, (3, H, W) in [0, 1] on the CPU."""

    step: int
    image: torch.Tensor


@dataclass
class PromptSwitchEvent:
    """Story mode moved to another prompt set at `step`."""

    step: int
    prompt: str


@dataclass
class DoneEvent:
    """The loop ended: after all steps, or early because a stop was requested."""

    step: int
    loss: float
    seconds: float
    image: torch.Tensor
    interrupted: bool


@dataclass
class Stage:
    """The prompt losses in force from step `start` on (one stage unless in story mode)."""

    start: int
    label: str
    prompt_losses: list[PromptLoss]


@dataclass
class Judge:
    """One CLIP with its own cutouts (input size) and prompt embeddings; ensembles have several."""

    perceptor: Perceptor
    cutouts: Cutouts
    stages: list[Stage]
    weight: float = 1.0
    name: str = "clip"

    def stage_at(self, step: int) -> Stage:
        """The stage in force at `step`."""
        return [stage for stage in self.stages if stage.start <= step][-1]


Event = StepEvent | ImageEvent | PromptSwitchEvent | DoneEvent
Callback = Callable[[Event], None]


class Engine:
    """Optimizes a generator so that CLIP scores its image close to the prompts."""

    def __init__(
        self,
        generator: ImageGenerator,
        judges: list[Judge],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        rng: torch.Generator,
        *,
        steps: int,
        save_every: int,
        regularizers: list[WeightedRegularizer] = (),
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        self.generator = generator
        self.judges = judges
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.rng = rng
        self.steps = steps
        self.save_every = save_every
        self.regularizers = list(regularizers)
        self.autocast_dtype = autocast_dtype
        self.initial = [p.detach().clone() for p in generator.parameters()]
        self.step = 0  # steps completed
        self.out_of_memory = False  # set when a step ran out of memory and ended the loop
        self._stop_requested = False

    def request_stop(self) -> None:
        """Finish the current step, then end the loop (used for Ctrl-C)."""
        self._stop_requested = True

    def state_dict(self) -> dict:
        """Everything needed to continue bit-identically: step, parameters, optimizer, RNG."""
        return {
            "step": self.step,
            "parameters": [p.detach().cpu() for p in self.generator.parameters()],
            "initial": [p.cpu() for p in self.initial],
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.rng.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()` output (parameters are copied in place)."""
        with torch.no_grad():
            for param, saved in zip(self.generator.parameters(), state["parameters"], strict=True):
                param.copy_(saved)
        self.initial = [p.to(self.initial[0].device) for p in state["initial"]]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.set_state(state["rng"])
        self.step = state["step"]

    def _losses(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        for judge in self.judges:
            embeddings = judge.perceptor.encode_image(judge.cutouts(image, self.rng))
            prefix = f"{judge.name}/" if len(self.judges) > 1 else ""
            for pl in judge.stage_at(self.step).prompt_losses:
                losses[prefix + pl.name] = judge.weight * pl(embeddings)
        ctx = LossContext(image, self.generator.parameters(), self.initial)
        for regularizer in self.regularizers:
            losses[regularizer.name] = regularizer(ctx, self.step, self.steps)
        return losses

    def forward(self) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """This step's image, its named losses and their sum (under autocast), for backward."""
        with self._autocast():
            image = self.generator.image()
            losses = self._losses(image)
            loss = torch.stack([v.float() for v in losses.values()]).sum()
        return image, losses, loss

    def _autocast(self) -> torch.autocast:
        device_type = self.rng.device.type
        return torch.autocast(device_type, dtype=self.autocast_dtype or torch.bfloat16,
                              enabled=self.autocast_dtype is not None)

    def run(self, callbacks: list[Callback]) -> DoneEvent:
        """Step until `steps` or a stop request; every event goes to every callback."""

        def emit(event: Event) -> None:
            for callback in callbacks:
                callback(event)

        started = time.perf_counter()
        loss_value = float("nan")
        image = losses = loss = None
        while self.step < self.steps and not self._stop_requested:
            step = self.step
            stages = self.judges[0].stages
            stage = self.judges[0].stage_at(step)
            if stage.start == step and (step > 0 or len(stages) > 1):
                emit(PromptSwitchEvent(step, stage.label))
            self.optimizer.zero_grad(set_to_none=True)
            try:
                image, losses, loss = self.forward()
                loss.backward()
            except torch.OutOfMemoryError:
                self.out_of_memory = True
                break
            self.optimizer.step()
            self.scheduler.step()
            self.generator.clamp_()
            self.step = step + 1
            loss_value = loss.item()
            emit(StepEvent(step, loss_value, {k: v.item() for k, v in losses.items()},
                           time.perf_counter() - started))
            if self.save_every and step % self.save_every == 0:
                emit(ImageEvent(step, image.detach()[0].float().cpu()))
        del image, losses, loss  # an out-of-memory step leaves nothing behind for the final image
        with torch.no_grad(), self._autocast():
            final = self.generator.image().detach()[0].float().cpu()
        done = DoneEvent(self.step, loss_value, time.perf_counter() - started, final,
                         interrupted=self.step < self.steps)
        emit(done)
        return done

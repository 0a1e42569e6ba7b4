"""The one optimization loop: decode, cut out, embed, score, step; it reports through events."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vqclip.cutouts import Cutouts
from vqclip.generators import ImageGenerator
from vqclip.losses import PromptLoss
from vqclip.models.clip import Perceptor
from vqclip.prompts import Prompt


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
class DoneEvent:
    """The loop ended: after all steps, or early because a stop was requested."""

    step: int
    loss: float
    seconds: float
    image: torch.Tensor
    interrupted: bool


Event = StepEvent | ImageEvent | DoneEvent
Callback = Callable[[Event], None]



class Engine:
    """Optimizes a generator so that CLIP scores its image close to the prompts."""

    def __init__(
        self,
        generator: ImageGenerator,
        perceptor: Perceptor,
        prompts: list[Prompt],
        cutouts: Cutouts,
        optimizer: torch.optim.Optimizer,
        rng: torch.Generator,
        *,
        steps: int,
        save_every: int,
    ) -> None:
        self.generator = generator
        self.perceptor = perceptor
        self.cutouts = cutouts
        self.optimizer = optimizer
        self.rng = rng
        self.steps = steps
        self.save_every = save_every
        self.step = 0
        self._stop_requested = False
        embeddings = perceptor.encode_text([p.text for p in prompts])
        self.prompt_losses = [PromptLoss(p, e) for p, e in zip(prompts, embeddings, strict=True)]

    def request_stop(self) -> None:
        """Finish the current step, then end the loop (used for Ctrl-C)."""
        self._stop_requested = True

    def state_dict(self) -> dict:
        """Everything needed to continue: step, parameters, optimizer and RNG state."""
        return {
            "step": self.step,
            "parameters": [p.detach().cpu() for p in self.generator.parameters()],
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.get_state(),
        }

    def _losses(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        embeddings = self.perceptor.encode_image(self.cutouts(image, self.rng))
        return {f"prompt:{pl.prompt.text}": pl(embeddings) for pl in self.prompt_losses}

    def run(self, callbacks: list[Callback]) -> DoneEvent:
        """Step until `steps` or a stop request; every event goes to every callback."""

        def emit(event: Event) -> None:
            for callback in callbacks:
                callback(event)

        started = time.perf_counter()
        loss_value = float("nan")
        while self.step < self.steps and not self._stop_requested:
            self.optimizer.zero_grad(set_to_none=True)
            image = self.generator.image()
            losses = self._losses(image)
            loss = torch.stack(list(losses.values())).sum()
            loss.backward()
            self.optimizer.step()
            self.generator.clamp_()
            loss_value = loss.item()
            emit(StepEvent(self.step, loss_value, {k: v.item() for k, v in losses.items()},
                           time.perf_counter() - started))
            if self.save_every and self.step % self.save_every == 0:
                emit(ImageEvent(self.step, image.detach()[0].float().cpu()))
            self.step += 1
        with torch.no_grad():
            final = self.generator.image().detach()[0].float().cpu()
        done = DoneEvent(self.step, loss_value, time.perf_counter() - started, final,
                         interrupted=self.step < self.steps)
        emit(done)
        return done

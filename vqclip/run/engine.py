"""The one optimization loop: decode, cut out, embed, score, step; it reports through events."""

from __future__ import annotations

import time

import torch

from vqclip.run.events import Callback, DoneEvent, Event, ImageEvent, PromptSwitchEvent, StepEvent
from vqclip.steer.generators import ImageGenerator
from vqclip.steer.losses import LossContext, WeightedRegularizer
from vqclip.steer.targets import Judge


def _slice_optimizer_state(state: dict, parameters: list[torch.Tensor], index: int) -> dict:
    """The optimizer state of image `index` alone: per-element buffers cut along the batch."""
    per_param = {}
    for key, buffers in state["state"].items():
        shape = parameters[key].shape
        per_param[key] = {
            name: value[index:index + 1].clone()
            if isinstance(value, torch.Tensor) and value.shape == shape else value
            for name, value in buffers.items()
        }
    return {**state, "state": per_param}


class Engine:
    """Optimizes a generator so that CLIP scores its images close to the prompts.

    The generator may hold a batch of K images, one per random generator in `rngs`: each
    image draws its cutouts from its own generator and its losses are summed, so with an
    element-wise optimizer (every one offered) image i follows the same path it would alone.
    """

    def __init__(
        self,
        generator: ImageGenerator,
        judges: list[Judge],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        rngs: list[torch.Generator],
        *,
        steps: int,
        save_every: int,
        regularizers: list[WeightedRegularizer] = (),
        autocast_dtype: torch.dtype | None = None,
        ema: float = 0.0,
    ) -> None:
        self.generator = generator
        self.judges = judges
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.rngs = rngs
        self.steps = steps
        self.save_every = save_every
        self.regularizers = list(regularizers)
        self.autocast_dtype = autocast_dtype
        self.initial = [p.detach().clone() for p in generator.parameters()]
        self.ema = ema
        # The averaged parameters that saved frames and the final image show (ema > 0).
        self.averaged = [p.clone() for p in self.initial] if ema else None
        self.step = 0  # steps completed
        self.out_of_memory = False  # set when a step ran out of memory and ended the loop
        self._stop_requested = False

    def request_stop(self) -> None:
        """Finish the current step, then end the loop (used for Ctrl-C)."""
        self._stop_requested = True

    @property
    def batch_size(self) -> int:
        return len(self.rngs)

    def state_dict(self, index: int = 0) -> dict:
        """Everything needed to continue image `index` alone, bit-identically: step,
        parameters, optimizer, RNG and the kind of device that RNG belongs to."""
        parameters = self.generator.parameters()
        return {
            "step": self.step,
            "parameters": [p.detach()[index:index + 1].cpu() for p in parameters],
            "initial": [p[index:index + 1].cpu() for p in self.initial],
            "optimizer": _slice_optimizer_state(self.optimizer.state_dict(), parameters, index),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.rngs[index].get_state(),
            "device": self.rngs[index].device.type,
            **({"averaged": [p[index:index + 1].cpu() for p in self.averaged]} if self.averaged else {}),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue one image from `state_dict()` output (parameters are copied in place)."""
        with torch.no_grad():
            for param, saved in zip(self.generator.parameters(), state["parameters"], strict=True):
                param.copy_(saved)
        self.initial = [p.to(self.initial[0].device) for p in state["initial"]]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rngs[0].set_state(state["rng"])
        self.step = state["step"]
        if self.averaged is not None:
            # A state saved without an average (ema was off) starts it at the saved parameters.
            saved = state.get("averaged", state["parameters"])
            self.averaged = [p.to(self.initial[0].device).clone() for p in saved]

    def _update_average(self) -> None:
        """Fold this step's parameters into the average, with a warm-up so that the first
        steps' average is not held at the start (TensorFlow's ExponentialMovingAverage with
        num_updates: the decay is min(ema, (1 + t) / (10 + t)))."""
        decay = min(self.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for average, param in zip(self.averaged, self.generator.parameters(), strict=True):
                average.lerp_(param.detach(), 1 - decay)

    def _losses(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each named loss per image, (K,): the cutouts of all K images go through CLIP at once."""
        losses: dict[str, torch.Tensor] = {}
        for judge in self.judges:
            cutouts = [judge.cutouts(images[i:i + 1], rng) for i, rng in enumerate(self.rngs)]
            embeddings = judge.perceptor.encode_image(torch.cat(cutouts))
            per_image = embeddings.view(self.batch_size, -1, embeddings.shape[-1])
            prefix = f"{judge.name}/" if len(self.judges) > 1 else ""
            for pl in judge.stage_at(self.step).prompt_losses:
                losses[prefix + pl.name] = judge.weight * torch.stack([pl(e) for e in per_image])
        parameters = self.generator.parameters()
        contexts = [LossContext(images[i:i + 1], [p[i:i + 1] for p in parameters],
                                [p[i:i + 1] for p in self.initial])
                    for i in range(self.batch_size)]
        for regularizer in self.regularizers:
            losses[regularizer.name] = torch.stack(
                [regularizer(ctx, self.step, self.steps) for ctx in contexts])
        return losses

    def forward(self) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """This step's images, their named losses per image and the sum of all (under
        autocast), for backward."""
        with self.autocast():
            images = self.generator.image()
            losses = self._losses(images)
            loss = torch.stack([v.float() for v in losses.values()]).sum()
        return images, losses, loss

    def autocast(self) -> torch.autocast:
        """Autocast to the run's precision (off for fp32 and tf32)."""
        device_type = self.rngs[0].device.type
        return torch.autocast(device_type, dtype=self.autocast_dtype or torch.bfloat16,
                              enabled=self.autocast_dtype is not None)

    def images(self) -> torch.Tensor:
        """The batch's current images, (K, 3, H, W) in [0, 1] on the CPU (of the averaged
        parameters when ema is on)."""
        return self.shown_images().float().cpu()

    def shown_images(self) -> torch.Tensor:
        """The images a run shows, on the device: of the averaged parameters when ema is on
        (big-sleep's and the notebooks' EMA of the latent), else of the parameters; decoded
        without grad and eagerly (a compiled model would compile again for no_grad)."""
        with torch.no_grad(), torch.compiler.set_stance("force_eager"):
            if self.averaged is None:
                return self.generator.image()
            parameters = self.generator.parameters()
            live = [p.detach().clone() for p in parameters]
            try:
                for param, average in zip(parameters, self.averaged, strict=True):
                    param.copy_(average)
                return self.generator.image()
            finally:
                for param, value in zip(parameters, live, strict=True):
                    param.copy_(value)

    def run(self, callbacks: list[Callback], *, until: int | None = None) -> list[DoneEvent]:
        """Step until `steps` (or the earlier step `until`) or a stop request; every event goes
        to every callback. The schedule and the regularizers' decay follow `steps` either way.

        Returns the end of each image of the batch."""

        def emit(event: Event) -> None:
            for callback in callbacks:
                callback(event)

        started = time.perf_counter()
        loss_values = [float("nan")] * self.batch_size
        images = losses = loss = None
        end = self.steps if until is None else min(until, self.steps)
        while self.step < end and not self._stop_requested:
            step = self.step
            stages = self.judges[0].stages
            stage = self.judges[0].stage_at(step)
            if stage.start == step and (step > 0 or len(stages) > 1):
                emit(PromptSwitchEvent(step, stage.label))
            self.optimizer.zero_grad(set_to_none=True)
            try:
                images, losses, loss = self.forward()
                loss.backward()
            except torch.OutOfMemoryError:
                self.out_of_memory = True
                break
            self.optimizer.step()
            self.scheduler.step()
            self.generator.clamp_()
            if self.averaged is not None:
                self._update_average()
            self.step = step + 1
            seconds = time.perf_counter() - started
            # One device-to-host copy for every loss: each copy waits for the step to finish.
            rows = torch.stack([value.detach().float() for value in losses.values()]).tolist()
            parts = dict(zip(losses, rows, strict=True))
            for i in range(self.batch_size):
                named = {name: values[i] for name, values in parts.items()}
                loss_values[i] = sum(named.values())
                emit(StepEvent(step, loss_values[i], named, seconds, index=i, steps=self.steps))
            if self.save_every and step % self.save_every == 0:
                frames = images.detach().float().cpu() if self.averaged is None else self.images()
                for i in range(self.batch_size):
                    emit(ImageEvent(step, frames[i], index=i))
        del images, losses, loss  # an out-of-memory step leaves nothing behind for the final images
        finals = self.images()
        seconds = time.perf_counter() - started
        done = [DoneEvent(self.step, loss_values[i], seconds, finals[i],
                          interrupted=self.step < self.steps, index=i)
                for i in range(self.batch_size)]
        for event in done:
            emit(event)
        return done

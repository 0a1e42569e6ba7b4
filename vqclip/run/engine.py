"""The one optimization loop: decode, cut out, embed, score, step; it reports through events."""

from __future__ import annotations

import time

import torch

from vqclip.device import autocast_to
from vqclip.run.capture import LossReadback
from vqclip.run.events import Callback, DoneEvent, Event, ImageEvent, PromptSwitchEvent, StepEvent
from vqclip.steer.generators import ImageGenerator
from vqclip.steer.losses import DECAYS, LossContext, WeightedRegularizer
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
    image draws its cutouts' random numbers from its own generator and its losses are summed,
    so with an element-wise optimizer (every one offered) image i follows the same path it
    would alone.

    A step is split so that its body is graph-safe: before it, on the host, the random numbers
    are drawn (one tensor of each kind per image), and the lr, the regularizers' weights and
    the average's decay are written into device tensors; the body (`train_step`) then has no
    generator call, no Python number that changes per step and no host sync. On CUDA its
    losses are read back one step late, so the host queues step s+1 before it waits for step s.
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
        device = self.initial[0].device
        # Per-step values the step body reads as device tensors, filled in place before it.
        self.weights = torch.zeros(len(self.regularizers), device=device)
        self.average_weight = torch.zeros((), device=device)
        self.step = 0  # steps completed
        # What runs the step body: `train_step` itself, or a compiled or captured form of it.
        self.step_body = self.train_step
        # Each judge's prompt losses in force, set before each step: a traced step sees a new
        # list only when a story stage switches.
        self.prompt_losses = [judge.stage_at(0).prompt_losses for judge in judges]
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
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            if isinstance(lr, torch.Tensor):  # keep the device tensor the step reads
                lr.fill_(float(group["lr"]))
                group["lr"] = lr
        self.scheduler.load_state_dict(state["scheduler"])
        self.rngs[0].set_state(state["rng"])
        self.step = state["step"]
        self.prompt_losses = [judge.stage_at(self.step).prompt_losses for judge in self.judges]
        if self.averaged is not None:
            # A state saved without an average (ema was off) starts it at the saved parameters.
            saved = state.get("averaged", state["parameters"])
            self.averaged = [p.to(self.initial[0].device).clone() for p in saved]

    def _set_step_values(self, step: int) -> None:
        """Set this step's prompt losses, and write its regularizer weights and the average's
        weight into their tensors.

        The average has a warm-up so that the first steps' average is not held at the start
        (TensorFlow's ExponentialMovingAverage with num_updates: the decay is
        min(ema, (1 + t) / (10 + t)))."""
        stages = [judge.stage_at(step).prompt_losses for judge in self.judges]
        if stages != self.prompt_losses:
            self.prompt_losses = stages
        if self.regularizers:
            self.weights.copy_(torch.tensor([r.weight * DECAYS[r.decay](step, self.steps, r.until)
                                             for r in self.regularizers]))
        if self.averaged is not None:
            self.average_weight.fill_(1 - min(self.ema, (1 + step) / (10 + step)))

    def draw_numbers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This step's random numbers, per judge: uniforms (K, U) and normals (K, N)."""
        return [judge.cutouts.draw_numbers(self.rngs) for judge in self.judges]

    def _losses(self, images: torch.Tensor, numbers: list[tuple[torch.Tensor, torch.Tensor]]
                ) -> dict[str, torch.Tensor]:
        """Each named loss per image, (K,): the cutouts of all K images go through CLIP at once."""
        losses: dict[str, torch.Tensor] = {}
        for judge_index, (judge, (uniforms, normals)) in enumerate(zip(self.judges, numbers, strict=True)):
            cutouts = judge.cutouts.cut(images, uniforms, normals)
            embeddings = judge.perceptor.encode_image(cutouts)
            per_image = embeddings.view(self.batch_size, -1, embeddings.shape[-1])
            prefix = f"{judge.name}/" if len(self.judges) > 1 else ""
            for pl in self.prompt_losses[judge_index]:
                loss = pl(per_image)
                losses[prefix + pl.name] = loss if judge.weight == 1.0 else judge.weight * loss
        context = LossContext(images, self.generator.parameters(), self.initial)
        for index, regularizer in enumerate(self.regularizers):
            losses[regularizer.name] = self.weights[index] * regularizer.unweighted(context)
        return losses

    def forward(self, numbers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """This step's images, their named losses per image as one (terms, K) fp32 tensor in
        the order of `_loss_names`, and the sum of all (under autocast), for backward; from
        `numbers` (`draw_numbers`), drawn here when not given."""
        if numbers is None:
            numbers = self.draw_numbers()
        with self.autocast():
            images = self.generator.image()
            terms = torch.stack([v.float() for v in self._losses(images, numbers).values()])
            loss = terms.sum()
        return images, terms, loss

    def train_step(self, numbers: list[tuple[torch.Tensor, torch.Tensor]]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step body, graph-safe: forward, backward, the optimizer's update, the clamp and
        the average. Returns the images and the losses as one (terms, K) fp32 tensor."""
        self.optimizer.zero_grad(set_to_none=True)
        images, terms, loss = self.forward(numbers)
        loss.backward()
        self.optimizer.step()
        self.generator.clamp_()
        if self.averaged is not None:
            with torch.no_grad():
                for average, param in zip(self.averaged, self.generator.parameters(), strict=True):
                    average.lerp_(param.detach(), self.average_weight)
        return images.detach(), terms.detach()

    def _loss_names(self, step: int) -> list[str]:
        """The names of the losses of `step`, in the order of `train_step`'s rows."""
        names = []
        for judge in self.judges:
            prefix = f"{judge.name}/" if len(self.judges) > 1 else ""
            names += [prefix + pl.name for pl in judge.stage_at(step).prompt_losses]
        # As the losses' dict keeps them: a repeated name once, where it first came.
        return list(dict.fromkeys(names + [regularizer.name for regularizer in self.regularizers]))

    def autocast(self) -> torch.autocast:
        """Autocast to the run's precision (off for fp32 and tf32)."""
        return autocast_to(self.autocast_dtype, self.rngs[0].device)

    def images(self) -> torch.Tensor:
        """The batch's current images, (K, 3, H, W) in [0, 1] on the CPU (of the averaged
        parameters when ema is on)."""
        return self.shown_images().float().cpu()

    def shown_images(self) -> torch.Tensor:
        """The images a run shows, on the device: of the averaged parameters when ema is on
        (big-sleep's and the notebooks' EMA of the latent), else of the parameters; made at
        full precision (`exact_image`), without grad and eagerly (a compiled model would
        compile again for no_grad). Frames saved without ema are the step's own images."""
        with torch.no_grad(), torch.compiler.set_stance("force_eager"):
            if self.averaged is None:
                return self.generator.exact_image()
            parameters = self.generator.parameters()
            live = [p.detach().clone() for p in parameters]
            try:
                for param, average in zip(parameters, self.averaged, strict=True):
                    param.copy_(average)
                return self.generator.exact_image()
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
        pending: tuple[int, list[str], LossReadback, float] | None = None

        def report(step: int, names: list[str], values: LossReadback, seconds: float) -> None:
            """Read a step's losses back (waiting for that step alone) and emit them."""
            rows = values.rows()
            for i in range(self.batch_size):
                named = {name: row[i] for name, row in zip(names, rows, strict=True)}
                loss_values[i] = sum(named.values())
                emit(StepEvent(step, loss_values[i], named, seconds, index=i, steps=self.steps))

        lag = self.initial[0].device.type == "cuda"
        images = values = None
        end = self.steps if until is None else min(until, self.steps)
        while self.step < end and not self._stop_requested:
            step = self.step
            stages = self.judges[0].stages
            stage = self.judges[0].stage_at(step)
            if stage.start == step and (step > 0 or len(stages) > 1):
                if pending is not None:
                    report(*pending)
                    pending = None
                emit(PromptSwitchEvent(step, stage.label))
            self._set_step_values(step)
            numbers = self.draw_numbers()
            try:
                images, values = self.step_body(numbers)
            except torch.OutOfMemoryError:
                self.out_of_memory = True
                break
            self.scheduler.step()
            self.step = step + 1
            names = self._loss_names(step)
            if pending is not None:  # the previous step's losses: this step is queued already
                report(*pending)
            pending = (step, names, LossReadback(values), time.perf_counter() - started)
            # Off CUDA the step is done when its body returns: nothing to gain by waiting, and
            # a stop asked for at a step's event ends the loop right after that step.
            saving = self.save_every and step % self.save_every == 0
            if not lag or saving:
                report(*pending)
                pending = None
            if saving:
                frames = images.float().cpu() if self.averaged is None else self.images()
                for i in range(self.batch_size):
                    emit(ImageEvent(step, frames[i], index=i))
        if pending is not None:
            report(*pending)
        del images, values  # an out-of-memory step leaves nothing behind for the final images
        finals = self.images()
        seconds = time.perf_counter() - started
        done = [DoneEvent(self.step, loss_values[i], seconds, finals[i],
                          interrupted=self.step < self.steps, index=i)
                for i in range(self.batch_size)]
        for event in done:
            emit(event)
        return done

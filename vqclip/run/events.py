"""What the loop reports as it runs: one event per step, image, prompt switch and ending."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class StepEvent:
    """One optimizer step of image `index`: its total loss, the named parts, and seconds since
    the loop began (a batch of K images emits K of these per step)."""

    step: int
    loss: float
    losses: dict[str, float]
    seconds: float
    index: int = 0
    steps: int = 0  # the run's step count (0: not known)


@dataclass
class ImageEvent:
    """Image `index` as CLIP scored it at `step`, (3, H, W) in [0, 1] on the CPU."""

    step: int
    image: torch.Tensor
    index: int = 0


@dataclass
class PromptSwitchEvent:
    """Story mode moved to another prompt set at `step`."""

    step: int
    prompt: str


@dataclass
class DoneEvent:
    """The loop ended for image `index`: after all steps, or early because a stop was requested."""

    step: int
    loss: float
    seconds: float
    image: torch.Tensor
    interrupted: bool
    index: int = 0


Event = StepEvent | ImageEvent | PromptSwitchEvent | DoneEvent
Callback = Callable[[Event], None]


def for_image(index: int, callback: Callback) -> Callback:
    """`callback`, seeing only the events of image `index` and those shared by the batch."""

    def filtered(event: Event) -> None:
        if getattr(event, "index", index) == index:
            callback(event)

    return filtered

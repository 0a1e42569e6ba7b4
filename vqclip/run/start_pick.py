"""A start picked among several (`init_noise: shapes`): before the first step the generator
draws each choice, the run's CLIPs score it as --candidates scores its candidates (the weighted
prompt loss of the first stage, on fixed cutouts), and the run starts from the lowest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vqclip.device import autocast_to
from vqclip.run.candidates import lowest, score_images
from vqclip.steer.generators import MakeGenerator
from vqclip.steer.start_choices import StartChoices
from vqclip.steer.targets import Judge


@dataclass(frozen=True)
class StartPick:
    """Every choice's name and score, and the canvas of the lowest, (1, 3, H, W)."""

    names: tuple[str, ...]
    scores: list[float]
    canvas: torch.Tensor

    @property
    def picked(self) -> str:
        return self.names[lowest(self.scores)]

    def note(self) -> dict[str, Any]:
        """What the image's record says of the pick."""
        scores = zip(self.names, self.scores, strict=True)
        return {"picked": self.picked,
                "score": "weighted CLIP prompt loss on fixed cutouts; lower is better",
                "choices": {name: round(score, 6) for name, score in scores}}


def pick_start(choices: StartChoices, size: tuple[int, int], make: MakeGenerator, judges: list[Judge],
               autocast_dtype: torch.dtype | None, device: torch.device) -> StartPick:
    """Draw each of `choices` through the generator, one at a time (only that one on the
    device), and score it on `judges`."""
    canvases = choices.draw(*size)
    rng = torch.Generator(device=device)  # its device only: a generator made at a start draws nothing
    scores: list[float] = []
    for canvas in canvases:
        with torch.no_grad():
            image = make(canvas[None].to(device), [rng]).exact_image()
        with autocast_to(autocast_dtype, device):
            scores += score_images(image, judges, stage_step=0)
    best = lowest(scores)
    return StartPick(choices.names, scores, canvases[best:best + 1].to(device, copy=True))  # not a view

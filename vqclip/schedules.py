"""Learning-rate schedules by name: constant, cosine, and a step drop (pixray's /10 at 75 %)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vqclip.errors import ConfigError


@dataclass(frozen=True)
class Schedule:
    """A learning-rate shape: (fraction of the run done, options) -> multiplier of the base lr."""

    shape: Callable[[float, dict], float]
    options: dict[str, float]  # the options it takes, with their defaults


SCHEDULES: dict[str, Schedule] = {
    "constant": Schedule(lambda done, o: 1.0, {}),
    "cosine": Schedule(
        lambda done, o: o["floor"] + (1 - o["floor"]) * 0.5 * (1 + math.cos(math.pi * done)),
        {"floor": 0.0},
    ),
    "step": Schedule(lambda done, o: o["factor"] if done >= o["at"] else 1.0,
                     {"factor": 0.1, "at": 0.75}),
}


def make_scheduler(
    name: str, optimizer: torch.optim.Optimizer, steps: int, options: dict
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following the named schedule over `steps` steps; unknown names list the valid."""
    if name not in SCHEDULES:
        raise ConfigError(f"lr_schedule.name={name!r} is unknown; valid: {', '.join(SCHEDULES)}")
    schedule = SCHEDULES[name]
    unknown = set(options) - set(schedule.options)
    if unknown:
        raise ConfigError(f"lr_schedule.options: {sorted(unknown)} not taken by {name!r} "
                          f"(it takes: {', '.join(schedule.options) or 'nothing'})")
    merged = {**schedule.options, **options}
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule.shape(step / max(steps, 1), merged)
    )

"""Learning-rate schedules by name: constant, cosine, and a step drop (pixray's /10 at 75 %)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vqclip.errors import ConfigError
from vqclip.registry import Registry


@dataclass(frozen=True)
class Schedule:
    """A learning-rate shape: (fraction of the run done, options) -> multiplier of the base lr."""

    shape: Callable[[float, dict], float]
    options: dict[str, float]  # the options it takes, with their defaults


SCHEDULES: Registry[Schedule] = Registry("lr_schedule.name")
SCHEDULES.add("constant", Schedule(lambda done, o: 1.0, {}))
SCHEDULES.add("cosine", Schedule(
    lambda done, o: o["floor"] + (1 - o["floor"]) * 0.5 * (1 + math.cos(math.pi * done)),
    {"floor": 0.0},
))
SCHEDULES.add("step", Schedule(lambda done, o: o["factor"] if done >= o["at"] else 1.0,
                               {"factor": 0.1, "at": 0.75}))


def schedule_options(name: str, options: dict) -> dict[str, float]:
    """The named schedule's options with `options` over its defaults; unknown options refused."""
    schedule = SCHEDULES.get(name)
    unknown = set(options) - set(schedule.options)
    if unknown:
        raise ConfigError(f"lr_schedule.options: {sorted(unknown)} not taken by {name!r} "
                          f"(it takes: {', '.join(schedule.options) or 'nothing'})")
    return {**schedule.options, **options}


class NumericLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """A LambdaLR whose lr values are Python numbers. torch's own scales a tensor lr (a fused
    or capturable optimizer's) with tensor ops, three kernels per step; a number fills the
    tensor in place with one."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr_lambda: Callable[[int], float]) -> None:
        # Read once here (the tensor lr's only read-back), before LambdaLR's first step.
        self.base_values = [float(group["lr"]) for group in optimizer.param_groups]
        super().__init__(optimizer, lr_lambda)

    def get_lr(self) -> list[float]:
        return [base * scale(self.last_epoch)
                for scale, base in zip(self.lr_lambdas, self.base_values, strict=True)]


def make_scheduler(
    name: str, optimizer: torch.optim.Optimizer, steps: int, options: dict
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following the named schedule over `steps` steps."""
    shape, merged = SCHEDULES.get(name).shape, schedule_options(name, options)
    return NumericLambdaLR(optimizer, lambda step: shape(step / max(steps, 1), merged))

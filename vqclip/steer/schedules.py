"""Learning-rate schedules by name: constant, cosine, and a step drop (pixray's /10 at 75 %)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vqclip.registry import Registry

# A learning-rate shape: (fraction of the run done, its options dataclass or None) -> multiplier
# of the base lr. Its options come from `lr_schedule.options`.
Schedule = Callable[[float, Any], float]
SCHEDULES: Registry[Schedule] = Registry("lr_schedule.name")


@SCHEDULES.register("constant")
def constant(done: float, options: None) -> float:
    """The base lr throughout."""
    return 1.0


@dataclass
class CosineOptions:
    """`floor`: the share of the base lr the cosine falls to at the end."""

    floor: float = 0.0


@SCHEDULES.register("cosine", options=CosineOptions)
def cosine(done: float, options: CosineOptions) -> float:
    """Half a cosine from the base lr down to `floor` of it (Loshchilov & Hutter, SGDR, 2017)."""
    return options.floor + (1 - options.floor) * 0.5 * (1 + math.cos(math.pi * done))


@dataclass
class StepOptions:
    """The lr is multiplied by `factor` once `at` of the run is done."""

    factor: float = 0.1
    at: float = 0.75


@SCHEDULES.register("step", options=StepOptions)
def step(done: float, options: StepOptions) -> float:
    """The base lr, then `factor` of it from `at` of the run on."""
    return options.factor if done >= options.at else 1.0


def schedule_options(name: str, options: dict) -> Any:
    """The named schedule's options (its dataclass) with `options` over their defaults; an
    option it does not take is refused, naming it."""
    return SCHEDULES.read_options(name, options, "lr_schedule.options")


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
    shape, chosen = SCHEDULES.get(name), schedule_options(name, options)
    return NumericLambdaLR(optimizer, lambda index: shape(index / max(steps, 1), chosen))

"""Optimizers by name (`optimizer.name`), from torch.optim, with their options checked up front."""

from __future__ import annotations

from typing import Any

import torch

from vqclip.errors import ConfigError
from vqclip.registry import Registry

OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry("optimizer.name")
for _name, _cls in sorted({
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
    "radam": torch.optim.RAdam, "nadam": torch.optim.NAdam, "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}.items()):
    OPTIMIZERS.add(_name, _cls)


def make_optimizer(name: str, params: list[torch.Tensor], lr: float,
                   options: dict[str, Any]) -> torch.optim.Optimizer:
    """The torch optimizer called `name` (any case) over `params`; bad options name themselves."""
    cls = OPTIMIZERS.get(name.lower())
    try:
        return cls(params, lr=lr, **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"optimizer.options for {name}: {err}") from None


def check_optimizer(name: str, lr: float, options: dict[str, Any]) -> None:
    """Refuse an unknown optimizer or options its constructor rejects, on a one-number stand-in."""
    make_optimizer(name, [torch.zeros(1, requires_grad=True)], lr, options)

"""Optimizers by name, from torch.optim; an unknown name lists the valid ones."""

from __future__ import annotations

import torch

from vqclip.errors import ConfigError

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "radam": torch.optim.RAdam,
    "nadam": torch.optim.NAdam,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}


def make_optimizer(name: str, params: list[torch.Tensor], lr: float, options: dict) -> torch.optim.Optimizer:
    """Build a torch optimizer by registry name; an unknown name lists the valid ones."""
    try:
        cls = OPTIMIZERS[name.lower()]
    except KeyError:
        raise ConfigError(
            f"optimizer.name={name!r} is unknown; valid: {', '.join(sorted(OPTIMIZERS))}"
        ) from None
    try:
        return cls(params, lr=lr, **options)
    except TypeError as err:
        raise ConfigError(f"optimizer.options for {name}: {err}") from None

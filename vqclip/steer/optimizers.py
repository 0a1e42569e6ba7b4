"""Optimizers by name (`optimizer.name`), from torch.optim, with their options checked up front."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from vqclip.errors import ConfigError
from vqclip.registry import Registry
from vqclip.suggest import unknown_option

OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry("optimizer.name")
for _name, _cls in sorted({
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
    "radam": torch.optim.RAdam, "nadam": torch.optim.NAdam, "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}.items()):
    OPTIMIZERS.add(_name, _cls)


# The torch optimizers with a fused implementation (one kernel per step): on the CPU all four,
# on CUDA all but Adagrad.
FUSED = {torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.Adagrad}


def make_optimizer(name: str, params: list[torch.Tensor], lr: float,
                   options: dict[str, Any]) -> torch.optim.Optimizer:
    """The torch optimizer called `name` (any case) over `params`; bad options name themselves.

    Unless the options choose an implementation, it is fused where torch has a fused version
    for the parameters' device, else capturable on CUDA; either way its lr is a tensor on that
    device (a schedule fills it in place) and its step has no host sync, so a CUDA graph can
    hold it. Elsewhere (MPS, or chosen options) it is torch's default with a Python lr."""
    cls = OPTIMIZERS.get(name.lower())
    _check_option_names(name, cls, options)
    device = params[0].device
    chosen = {"fused", "foreach", "capturable", "differentiable"} & set(options)
    fused = device.type == "cpu" or (device.type == "cuda" and cls is not torch.optim.Adagrad)
    if not chosen and cls in FUSED and fused:
        options = {**options, "fused": True}
    elif not chosen and device.type == "cuda":
        options = {**options, "capturable": True}
    if options.get("fused") or options.get("capturable"):
        lr = torch.tensor(float(lr), device=device)
    try:
        return cls(params, lr=lr, **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"optimizer.options for {name}: {err}") from None


def check_optimizer(name: str, lr: float, options: dict[str, Any]) -> None:
    """Refuse an unknown optimizer, an option it has no parameter for, or option values its
    constructor rejects (built on a one-number stand-in only when there are options: torch's
    first optimizer imports its compiler, two seconds, and the schema has checked the lr)."""
    _check_option_names(name, OPTIMIZERS.get(name.lower()), options)
    if options:
        make_optimizer(name, [torch.zeros(1, requires_grad=True)], lr, options)


def _check_option_names(name: str, cls: type, options: dict[str, Any]) -> None:
    """Refuse an option the constructor has no parameter for, with a did-you-mean among those it
    has (an optimizer that takes **kwargs is left to its constructor)."""
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    taken = [p for p in parameters if p not in ("self", "params")]
    for option in options:
        if option not in taken:
            raise ConfigError(unknown_option("optimizer.options", option, taken, name))

"""Copies of frozen models for a step under autocast, with the tensors autocast would cast on
every call stored once in its compute dtype.

Autocast casts the operands of matmuls and convolutions to its dtype on each call, and caches
nothing for tensors that require no grad: a frozen model's weights are cast again every step
(two hundred casts per step for a 16384-code VQGAN and ViT-B/32). A copy holding those
operands in the compute dtype computes the same: a cast rounds the same way made once as made
each step. Every other parameter and buffer (norms, the codebook, a CLIP's text tower, the
parts the step does not run) is shared with the original, which keeps full precision for what
runs without autocast.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)

# Layers whose weight and bias autocast casts (matmuls and convolutions).
CAST_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def autocast_operands(part: nn.Module) -> list[torch.Tensor]:
    """The tensors of `part` and its children that feed autocast's lower-precision ops: the
    weights and biases of `CAST_LAYERS`, and those a module names in `AUTOCAST_OPERANDS`
    (attributes set, tensors it passes to a matmul or convolution itself)."""
    found = []
    for module in part.modules():
        names = ("weight", "bias") if isinstance(module, CAST_LAYERS) else getattr(
            module, "AUTOCAST_OPERANDS", ())
        found += [tensor for name in names if isinstance(tensor := getattr(module, name, None), torch.Tensor)]
    return found


def copy_with_operands_in(model: M, dtype: torch.dtype, operands: Iterable[torch.Tensor]) -> M:
    """A copy of `model` whose `operands` are in `dtype` (frozen) and whose every other
    parameter and buffer is the original's own tensor."""
    memo: dict[int, object] = {id(tensor): tensor for tensor in (*model.parameters(), *model.buffers())}
    for tensor in operands:
        cast = tensor.detach().to(dtype)
        if isinstance(tensor, nn.Parameter):
            cast = nn.Parameter(cast, requires_grad=False)
        memo[id(tensor)] = cast
    return copy.deepcopy(model, memo)

"""Pick the torch device: auto prefers CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import re

import torch

from vqclip.errors import ConfigError

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(name: str) -> torch.device:
    """Turn auto|cpu|cuda[:N]|mps into an available torch.device, or say why not."""
    if not _DEVICE.match(name):
        raise ConfigError(f"device={name!r}: expected auto, cpu, cuda, cuda:N or mps")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r}: CUDA is not available on this machine")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device='mps': Apple MPS is not available on this machine")
    return torch.device(name)


def allow_tf32(device: torch.device, precision: str) -> None:
    """On CUDA, let fp32 matmuls and convolutions use TF32 unless strict fp32 was asked for.

    TF32 keeps fp32's range with a 10-bit mantissa, finer than the 7 bits bf16 autocast
    already accepts for the heavy ops; `precision: fp32` keeps full fp32 everywhere.
    """
    if device.type == "cuda":
        enabled = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled

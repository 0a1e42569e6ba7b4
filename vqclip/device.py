"""Pick the torch device (auto prefers CUDA, then Apple MPS, then the CPU) and its precision."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

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
    already accepts for the heavy ops: `precision: tf32` runs every op in fp32 with TF32
    matmuls, `auto` and `bf16` use it where autocast leaves fp32, and `fp32` keeps full fp32
    everywhere.
    """
    if device.type == "cuda":
        enabled = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


@contextlib.contextmanager
def strict_fp32_matmul() -> Iterator[None]:
    """Full fp32 matmuls inside, even where `allow_tf32` turned TF32 on (restored after)."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast for `bf16`, and for `auto` on CUDA (bf16, not fp16: the decoder's range)."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def autocast_to(dtype: torch.dtype | None, device: torch.device) -> torch.autocast:
    """Autocast to `dtype` on `device` (off for None). No cast cache: it would keep casts made
    inside a captured graph's memory pool, and the frozen weights, which require no grad, are
    never cached anyway."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None,
                          cache_enabled=False)


def step_weights_dtype(precision: str, device: torch.device, low_memory: bool) -> torch.dtype | None:
    """The dtype a step's frozen weights are copied into once (`Models.autocast_copy`): the
    autocast dtype, unless `low_memory` asks not to hold a second copy of them (autocast then
    casts them on every call instead). None: the step runs on the models as loaded."""
    return None if low_memory else autocast_dtype(precision, device)

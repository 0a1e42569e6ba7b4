"""Precision settings: strict fp32 and TF32, and what stays fp32 under bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from vqclip.device import allow_tf32, autocast_dtype
from vqclip.models.quantizers import nearest_codes
from vqclip.run.config import PRECISIONS
from vqclip.steer.losses import REGULARIZERS, LossContext

CUDA = torch.device("cuda")  # flags and dtypes only: no CUDA device is used


@pytest.fixture
def tf32_flags():
    """Restore the global TF32 switches after the test."""
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    yield
    torch.set_float32_matmul_precision(before[0])
    torch.backends.cudnn.allow_tf32 = before[1]


def test_tf32_precision_allows_tf32_without_autocast_and_fp32_is_strict(tf32_flags) -> None:
    assert "tf32" in PRECISIONS
    allow_tf32(CUDA, "tf32")
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert autocast_dtype("tf32", CUDA) is None
    allow_tf32(CUDA, "fp32")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert autocast_dtype("auto", CUDA) == torch.bfloat16
    assert autocast_dtype("auto", torch.device("cpu")) is None


class _MatmulPrecision(TorchFunctionMode):
    """Records the fp32 matmul precision in force at each matmul."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if func in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm):
            self.seen.append(torch.get_float32_matmul_precision())
        return func(*args, **(kwargs or {}))


def test_nearest_code_distances_run_without_tf32(tf32_flags) -> None:
    allow_tf32(CUDA, "tf32")
    z, codebook = torch.randn(1, 8, 4, 4), torch.randn(16, 8)
    with _MatmulPrecision() as mode:
        nearest_codes(z, codebook)
    assert mode.seen == ["highest"]
    assert torch.get_float32_matmul_precision() == "high"  # TF32 is back on afterwards


def test_saturation_reduces_a_bf16_image_in_fp32() -> None:
    torch.manual_seed(0)
    image = torch.rand(1, 3, 256, 256).bfloat16()
    loss = REGULARIZERS["saturation"](LossContext(image, [], []))
    exact = (image.double() - image.double().mean(dim=1, keepdim=True)).abs().mean()
    assert loss.dtype == torch.float32
    assert abs(loss.item() - exact.item()) <= 1e-6 * exact.item()

"""Precision settings: strict fp32 and TF32, and what stays fp32 under bf16 autocast."""

from __future__ import annotations

import pytest
import torch

from vqclip.device import allow_tf32, autocast_dtype
from vqclip.models.quantizers import nearest_codes, split_products
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


def test_nearest_codes_match_float64_and_leave_the_matmul_setting_alone(tf32_flags) -> None:
    torch.set_float32_matmul_precision("high")
    torch.manual_seed(0)
    z, codebook = torch.randn(2, 8, 6, 6), torch.randn(512, 8)
    flat = z.double().permute(0, 2, 3, 1).reshape(-1, 8)
    exact = torch.cdist(flat, codebook.double()).argmin(dim=1).view(2, 6, 6)
    assert torch.equal(nearest_codes(z, codebook), exact)
    assert torch.get_float32_matmul_precision() == "high"  # no global switch to trace through


def test_split_products_are_fp32_accurate_from_bf16_exact_parts() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(64, 256), torch.randn(1024, 256)
    exact = a.double() @ b.double().t()
    split = split_products(a, b).double()
    assert (split - exact).abs().max() <= 1e-5 * exact.abs().max()
    high = a.bfloat16().float()
    assert torch.equal(high.bfloat16().float(), high)  # the high part loses nothing in bf16


def test_saturation_reduces_a_bf16_image_in_fp32() -> None:
    torch.manual_seed(0)
    image = torch.rand(1, 3, 256, 256).bfloat16()
    loss = REGULARIZERS["saturation"](LossContext(image, [], []))
    exact = (image.double() - image.double().mean(dim=1, keepdim=True)).abs().mean()
    assert loss.dtype == torch.float32
    assert abs(loss.item() - exact.item()) <= 1e-6 * exact.item()

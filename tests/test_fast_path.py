"""The fast paths (bf16 autocast, --low-memory, --compile) against the plain fp32 reference.

Tolerances, on the tiny models, for the first step's loss and its gradient with respect to
the latent: bf16 autocast within 2 % of the loss and a gradient cosine of at least 0.98;
checkpointing is exact; compilation within 1e-4 of the loss and a cosine of at least 0.9999.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.test_engine import make_run


def first_step(tiny_sets, tmp_path, *items: str) -> tuple[float, torch.Tensor]:
    """Loss and gradient of the first step of a 64x64 tiny run with these settings."""
    engine = make_run(tiny_sets, tmp_path, "size=[64,64]", "steps=1", *items).engine
    _, _, loss = engine.forward()
    (grad,) = torch.autograd.grad(loss, engine.generator.parameters())
    return loss.item(), grad.flatten()


@pytest.fixture(scope="module")
def reference(tiny_sets, tmp_path_factory) -> tuple[float, torch.Tensor]:
    return first_step(tiny_sets, tmp_path_factory.mktemp("reference"), "precision=fp32")


def test_bf16_autocast_stays_close_to_fp32(tiny_sets, tmp_path, reference) -> None:
    loss, grad = first_step(tiny_sets, tmp_path, "precision=bf16")
    ref_loss, ref_grad = reference
    assert abs(loss - ref_loss) <= 0.02 * abs(ref_loss)
    assert F.cosine_similarity(grad, ref_grad, dim=0) >= 0.98


def test_low_memory_is_exact(tiny_sets, tmp_path, reference) -> None:
    loss, grad = first_step(tiny_sets, tmp_path, "precision=fp32", "low_memory=true")
    assert loss == reference[0]
    assert torch.equal(grad, reference[1])


def test_compiled_models_match_eager(tiny_sets, tmp_path, reference) -> None:
    loss, grad = first_step(tiny_sets, tmp_path, "precision=fp32", "compile=true")
    ref_loss, ref_grad = reference
    assert abs(loss - ref_loss) <= 1e-4 * abs(ref_loss)
    assert F.cosine_similarity(grad, ref_grad, dim=0) >= 0.9999

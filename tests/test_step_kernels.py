"""The step's models on fewer kernels compute what they computed before: CLIP's image tower
with packed attention, QuickGELU folded into SiLU and the normalization folded into the patch
embedding; the VQGAN attention with q, k and v stacked; the straight-through quantizer; the
schedule's lr filled from Python numbers."""

from __future__ import annotations

import copy
import dataclasses
import sys
from pathlib import Path

import open_clip
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from tests.tiny_models import TINY_SPEC
from vqclip.models.clip import Perceptor
from vqclip.models.quantizers import VectorQuantizer
from vqclip.models.vqgan import VQGAN
from vqclip.models.vqgan_layers import AttnBlock
from vqclip.steer.schedules import make_scheduler

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from step_ops import OpCounter  # noqa: E402

TOWER = dict(embed_dim=32, quick_gelu=True,
             vision_cfg={"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
             text_cfg={"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1})
MEAN = torch.tensor([0.48, 0.46, 0.41]).view(1, 3, 1, 1)
STD = torch.tensor([0.27, 0.26, 0.28]).view(1, 3, 1, 1)


def tiny_clip() -> torch.nn.Module:
    torch.manual_seed(0)
    return open_clip.CLIP(**TOWER).eval().requires_grad_(False)


def embed_with_grad(encode, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(embeddings, gradient of their sum with respect to the pixels, aten ops dispatched)."""
    pixels = pixels.clone().requires_grad_(True)
    counter = OpCounter()
    with counter:
        out = encode(pixels)
        out.square().sum().backward()
    return out.detach(), pixels.grad, sum(counter.ops.values())


def test_streamlined_image_tower_embeds_as_open_clip_does_on_fewer_kernels(one_thread) -> None:
    original = tiny_clip()
    reference_model = copy.deepcopy(original)
    pixels = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def reference(x):
        return torch.nn.functional.normalize(reference_model.encode_image((x - MEAN) / STD), dim=-1)

    perceptor = Perceptor(original, None, 32, MEAN, STD, "tiny")
    assert perceptor.takes_pixels
    expected, expected_grad, reference_ops = embed_with_grad(reference, pixels)
    got, got_grad, ops = embed_with_grad(perceptor.encode_image, pixels)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_grad, expected_grad, atol=1e-5, rtol=1e-4)
    # Measured: 76 ops against 119 (2 blocks: attention, QuickGELU; the normalization).
    assert ops <= reference_ops - 30, (ops, reference_ops)


def test_a_second_perceptor_on_the_same_model_does_not_fold_it_again(one_thread) -> None:
    model = tiny_clip()
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    first = Perceptor(model, None, 32, MEAN, STD, "tiny")
    with torch.no_grad():
        once = first.encode_image(pixels)
        again = Perceptor(model, None, 32, MEAN, STD, "tiny").encode_image(pixels)
    assert torch.equal(once, again)
    with pytest.raises(ValueError, match="already takes pixels normalized"):
        Perceptor(model, None, 32, MEAN * 0.5, STD, "tiny")


def test_stacked_attention_weights_give_the_same_block_and_follow_a_new_state_dict() -> None:
    torch.manual_seed(0)
    block = AttnBlock(32).eval()
    x = torch.randn(2, 32, 4, 4)
    with torch.no_grad():
        stacked_each_call = block(x)
        block.pack()
        assert block.packed_weight is None  # weights that still learn are not copied
        block.requires_grad_(False).pack()
        assert block.packed_weight is not None
        assert torch.equal(block(x), stacked_each_call)
        changed = {key: value + 1 for key, value in block.state_dict().items()}
        block.load_state_dict(changed)
        assert block.packed_weight is None
        fresh = AttnBlock(32).eval()
        fresh.load_state_dict(changed)
        assert torch.equal(block(x), fresh(x))
    with FakeTensorMode(allow_non_fake_inputs=True):  # a memory plan's stand-in generator
        block.pack()
    assert block.packed_weight is None


def test_straight_through_quantizer_gives_the_codes_forward_and_the_identity_backward() -> None:
    torch.manual_seed(0)
    quantizer = VectorQuantizer(16, 4).requires_grad_(False)
    z = torch.randn(1, 4, 3, 3, requires_grad=True)
    z_q, indices = quantizer(z)
    assert torch.equal(z_q, quantizer.embed_code(indices))
    upstream = torch.randn_like(z_q)
    z_q.backward(upstream)
    assert torch.equal(z.grad, upstream)


def test_scheduled_lr_tensor_follows_the_schedule() -> None:
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([param], lr=torch.tensor(0.2), fused=True)
    scheduler = make_scheduler("cosine", optimizer, 4, {})
    seen = []
    for _ in range(4):
        seen.append(float(optimizer.param_groups[0]["lr"]))
        param.grad = torch.ones(1)
        optimizer.step()
        scheduler.step()
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)
    assert seen == pytest.approx([0.2, 0.2 * 0.5 * (1 + 0.7071067811865476), 0.1,
                                  0.2 * 0.5 * (1 - 0.7071067811865476)])


class ParameterCasts(OpCounter):
    """Also counts the casts whose input is one of `parameters` (by storage)."""

    def __init__(self, parameters: list[torch.Tensor]) -> None:
        super().__init__()
        self.storages = {p.untyped_storage().data_ptr() for p in parameters}
        self.parameter_casts = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._to_copy.default and args[0].untyped_storage().data_ptr() in self.storages:
            self.parameter_casts += 1
        return super().__torch_dispatch__(func, types, args, kwargs)


def test_autocast_copies_make_the_same_bf16_steps_without_casting_a_weight(one_thread) -> None:
    from step_bench import build_engine

    from vqclip.models.held import Models

    torch.manual_seed(0)
    vqgan = VQGAN(dataclasses.replace(TINY_SPEC, attn_resolutions=(16,))).eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    tokenizer.context_length = TOWER["text_cfg"]["context_length"]
    perceptor = Perceptor(tiny_clip(), tokenizer, 32, MEAN, STD, "tiny")
    copied = build_engine(vqgan, perceptor, 32, 4, 3, torch.device("cpu"), "bf16")
    casting = build_engine(vqgan, perceptor, 32, 4, 3, torch.device("cpu"), "bf16")
    # Parameters and buffers, the attention's stacked q/k/v among them (stacked by now).
    weights = [*vqgan.parameters(), *vqgan.buffers(), *perceptor.model.parameters()]
    blocks = [block for block in vqgan.decoder.modules() if isinstance(block, AttnBlock)]
    assert blocks and all(block.packed_weight is not None for block in blocks)
    casting.generator.step_vqgan = vqgan  # as before the copies: autocast casts the fp32 weights
    casting.judges[0].perceptor = perceptor
    assert copied.generator.step_vqgan.decoder.conv_out.weight.dtype == torch.bfloat16
    counts = []
    for engine in (copied, casting):
        counter = ParameterCasts(weights + [*copied.generator.step_vqgan.parameters(),
                                            *copied.generator.step_vqgan.buffers()])
        with counter:
            engine.run([])
        counts.append(counter.parameter_casts)
    assert torch.equal(copied.generator.z, casting.generator.z)  # the same three steps, bit for bit
    assert counts[0] == 0 < counts[1], counts
    # Only the cast tensors are new: the encoder and the codebook are the original's own.
    step = copied.generator.step_vqgan
    assert step.encoder.conv_in.weight is vqgan.encoder.conv_in.weight and step.codebook is vqgan.codebook
    # A copy of a model already stacked (a worker's second run) stacks in bf16 too.
    late = vqgan.autocast_copy(torch.bfloat16)
    assert all(block.packed_weight.dtype == torch.bfloat16 for block in late.decoder.modules()
               if isinstance(block, AttnBlock))
    models = Models()
    assert models.autocast_copy(vqgan, None) is vqgan
    assert models.autocast_copy(vqgan, torch.bfloat16) is models.autocast_copy(vqgan, torch.bfloat16)
    assert len(models) == 0  # a copy is not another model held

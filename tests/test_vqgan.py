"""The VQGAN module: equality with taming's layers, quantization, taming configs, load/save."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.tiny_models import TINY_SPEC, taming_config, tiny_vqgan, write_taming_vqgan
from vqclip.errors import ModelError
from vqclip.models.checkpoint import load_state_dict
from vqclip.models.quantizers import VectorQuantizer
from vqclip.models.vqgan import VQGAN, VQGANSpec, load_vqgan, save_vqgan, spec_from_taming_yaml
from vqclip.models.vqgan_layers import Decoder, Encoder

# Three levels (both resampling directions twice), attention at the lowest level, 1 res block.
LAYER_CONFIG = dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,),
                    resolution=32, z_channels=32, dropout=0.0)


def _randomize_norms(module: torch.nn.Module) -> None:
    for name, param in module.named_parameters():
        if "norm" in name:
            param.data.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)


def test_encoder_and_decoder_equal_taming() -> None:
    from taming.modules.diffusionmodules.model import Decoder as TamingDecoder
    from taming.modules.diffusionmodules.model import Encoder as TamingEncoder

    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        theirs_enc = TamingEncoder(**LAYER_CONFIG, in_channels=3, out_ch=3, double_z=False)
        theirs_dec = TamingDecoder(**LAYER_CONFIG, in_channels=3, out_ch=3)
        for module in (theirs_enc, theirs_dec):
            _randomize_norms(module)
    ours_enc = Encoder(**LAYER_CONFIG, in_channels=3)
    ours_dec = Decoder(**LAYER_CONFIG, out_ch=3)
    assert len(ours_enc.down[2].attn) == 1 and len(ours_dec.up[2].attn) == 2  # AttnBlock covered
    for ours, theirs in ((ours_enc, theirs_enc), (ours_dec, theirs_dec)):
        assert list(ours.state_dict()) == list(theirs.state_dict())
        ours.load_state_dict(theirs.state_dict(), strict=True)
        ours.eval()
        theirs.eval()
    images = torch.randn(2, 3, 32, 32, generator=gen)
    latent = torch.randn(2, 32, 8, 8, generator=gen)
    with torch.no_grad():
        assert (ours_enc(images) - theirs_enc(images)).abs().max() <= 1e-5
        assert (ours_dec(latent) - theirs_dec(latent)).abs().max() <= 1e-5


def test_vector_quantizer_equals_taming() -> None:
    from taming.modules.vqvae.quantize import VectorQuantizer as TamingQuantizer

    gen = torch.Generator().manual_seed(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        theirs = TamingQuantizer(64, 32, beta=0.25)
    theirs.embedding.weight.data = torch.randn(64, 32, generator=gen)
    ours = VectorQuantizer(64, 32)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    z = torch.randn(2, 32, 5, 7, generator=gen)
    z_q_theirs, _, (_, _, idx_theirs) = theirs(z)
    z_q, idx = ours(z)
    assert (z_q - z_q_theirs).abs().max() <= 1e-5
    assert torch.equal(idx.flatten(), idx_theirs.flatten())


def test_quantize_latent_is_nearest_code_with_straight_through_gradient() -> None:
    model = tiny_vqgan()
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(2, 32, 4, 6, generator=gen, requires_grad=True)
    z_q, idx = model.quantize_latent(z)
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 32)
    brute = ((flat[:, None, :] - model.codebook[None]) ** 2).sum(-1).argmin(1)
    assert idx.shape == (2, 4, 6) and idx.dtype == torch.long
    assert torch.equal(idx.flatten(), brute)
    assert torch.allclose(z_q, model.tokens_to_latent(idx), atol=1e-6)
    upstream = torch.randn(z_q.shape, generator=gen)
    z_q.backward(upstream)
    assert torch.equal(z.grad, upstream)


def test_tokens_to_latent_and_shapes() -> None:
    model = tiny_vqgan()
    tokens = torch.tensor([[[0, 5], [63, 7]]])
    latent = model.tokens_to_latent(tokens)
    assert latent.shape == (1, 32, 2, 2)
    assert torch.equal(latent[0, :, 1, 0], model.codebook[63])
    assert model.factor == 2 == TINY_SPEC.factor
    with torch.no_grad():
        assert model.decode(latent).shape == (1, 3, 4, 4)
        assert model.encode(torch.zeros(1, 3, 8, 12)).shape == (1, 32, 4, 6)


def test_staged_decoder_checkpointing_gives_same_values_and_gradients() -> None:
    model = tiny_vqgan()
    z = torch.randn(1, 32, 4, 4, generator=torch.Generator().manual_seed(3))
    grads = []
    for staged in (False, True):
        model.decoder.checkpoint_stages = staged
        zz = z.clone().requires_grad_(True)
        out = model.decode(zz)
        out.square().mean().backward()
        grads.append((out.detach(), zz.grad))
    assert torch.allclose(grads[0][0], grads[1][0])
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6)


def _assert_matches_file(model: VQGAN, ckpt: Path) -> None:
    state = load_state_dict(ckpt)
    prefix = "first_stage_model." if any(k.startswith("first_stage_model.") for k in state) else ""
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[prefix + key]), key


@pytest.mark.parametrize("variant", ["vq", "gumbel", "transformer"])
def test_taming_files_load(tmp_path: Path, variant: str) -> None:
    config, ckpt = write_taming_vqgan(tmp_path, gumbel=variant == "gumbel",
                                      transformer=variant == "transformer")
    model = load_vqgan(config, ckpt)
    assert model.spec.quantizer == ("gumbel" if variant == "gumbel" else "vq")
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    _assert_matches_file(model, ckpt)
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        z = model.encode(images)
        z_q, idx = model.quantize_latent(z)
        assert model.decode(z_q).shape == (1, 3, 16, 16)
    if variant == "gumbel":
        # An encoded image already sits on codebook vectors: the argmax of proj's logits.
        expected = model.quantize.proj(model.quant_conv(model.encoder(images))).argmax(1)
        assert torch.equal(idx, expected)
        assert torch.allclose(z, z_q)


def test_save_then_load_decodes_identically(tmp_path: Path) -> None:
    config, ckpt = write_taming_vqgan(tmp_path / "taming")
    model = load_vqgan(config, ckpt)
    config_json, weights = save_vqgan(model, tmp_path / "saved")
    assert (config_json.name, weights.name) == ("config.json", "model.safetensors")
    assert json.loads(config_json.read_text())["format"] == "vqclip-vqgan"
    assert not any(k.startswith("loss.") for k in load_state_dict(weights))
    assert sorted(p.name for p in config_json.parent.iterdir()) == ["config.json",
                                                                   "model.safetensors"]
    again = load_vqgan(config_json, weights)
    assert again.spec == model.spec
    tokens = torch.randint(64, (1, 3, 3), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(model.decode(model.tokens_to_latent(tokens)),
                           again.decode(again.tokens_to_latent(tokens)))


def test_key_mismatch_names_missing_and_unexpected_keys(tmp_path: Path) -> None:
    config, _ = write_taming_vqgan(tmp_path)
    state = dict(tiny_vqgan().state_dict())
    del state["decoder.conv_out.bias"]
    state["decoder.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "odd.ckpt")
    with pytest.raises(ModelError) as info:
        load_vqgan(config, tmp_path / "odd.ckpt")
    message = str(info.value)
    assert "missing keys: decoder.conv_out.bias" in message
    assert "unexpected keys: decoder.extra.weight" in message


def test_wrong_shapes_and_wrong_quantizer_give_model_error(tmp_path: Path) -> None:
    _, ckpt = write_taming_vqgan(tmp_path)
    bigger = dataclasses.replace(TINY_SPEC, n_embed=128)
    with pytest.raises(ModelError, match="quantize.embedding.weight"):
        load_vqgan(bigger, ckpt)
    with pytest.raises(ModelError, match="quantize.embed.weight"):
        load_vqgan(dataclasses.replace(TINY_SPEC, quantizer="gumbel"), ckpt)


def test_yaml_errors_name_the_key_and_file(tmp_path: Path) -> None:
    data = taming_config()
    del data["model"]["params"]["ddconfig"]
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match=r"model\.params\.ddconfig") as info:
        spec_from_taming_yaml(path)
    assert str(path) in str(info.value)
    data = taming_config()
    data["model"]["params"]["ddconfig"]["ch_mult"] = "1,2"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match="ch_mult"):
        spec_from_taming_yaml(path)
    path.write_text("model: [unclosed\n")
    with pytest.raises(ModelError, match="not readable YAML"):
        spec_from_taming_yaml(path)


def test_yaml_spec_matches_taming_semantics(tmp_path: Path) -> None:
    data = taming_config()
    del data["model"]["params"]["ddconfig"]["double_z"]  # taming's Encoder default is True
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(data))
    assert spec_from_taming_yaml(path) == dataclasses.replace(TINY_SPEC, double_z=True)


def test_bad_specs_and_configs(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="multiples of 32"):
        dataclasses.replace(TINY_SPEC, ch=48)
    with pytest.raises(ModelError, match="quantizer"):
        dataclasses.replace(TINY_SPEC, quantizer="ema")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"format": "vqclip-vqgan", "format_version": 1,
                                **TINY_SPEC.to_dict(), "chanels": 3}))
    with pytest.raises(ModelError, match="chanels"):
        load_vqgan(path, tmp_path / "unused.safetensors")
    with pytest.raises(ModelError, match="expected a taming .yaml"):
        load_vqgan(tmp_path / "model.txt", tmp_path / "unused.ckpt")
    assert VQGANSpec.from_dict(TINY_SPEC.to_dict()) == TINY_SPEC


def test_attention_inputs_suit_the_fused_kernels_and_match_the_math_kernel(monkeypatch) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from vqclip.models.vqgan_layers import AttnBlock

    torch.manual_seed(0)
    block = AttnBlock(32).eval()
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        reference = block(x)
    inputs = []
    fused = torch.nn.functional.scaled_dot_product_attention

    def recording(*args, **kwargs):
        inputs.extend(args[:3])
        return fused(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    with torch.no_grad():
        out = block(x)
    # The flash and memory-efficient kernels refuse a last dimension with a stride other than 1.
    assert len(inputs) == 3 and all(t.stride(-1) == 1 for t in inputs)
    assert torch.allclose(out, reference, atol=1e-5)

"""Safe loading of weight files: Lightning pickles, safetensors, refusals and broken files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.tiny_models import write_malicious_checkpoint, write_taming_vqgan
from vqclip.errors import ModelError, UnsafeCheckpointError
from vqclip.models.checkpoint import load_state_dict


@pytest.mark.parametrize("extra_globals", [True, False])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_lightning_checkpoint_gives_its_state_dict(tmp_path: Path, extra_globals: bool,
                                                   legacy: bool) -> None:
    _, ckpt = write_taming_vqgan(tmp_path, extra_globals=extra_globals, legacy=legacy)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(ckpt) if not legacy else []
    if not legacy:  # the fixture really has the globals that weights_only refuses by default
        assert "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint" in unsafe
        if extra_globals:
            assert {"omegaconf.dictconfig.DictConfig", "argparse.Namespace",
                    "numpy.dtype"} <= set(unsafe)
    state = load_state_dict(ckpt)
    assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    assert "decoder.conv_out.weight" in state and "loss.logvar" in state
    assert "epoch" not in state and "optimizer_states" not in state


def test_loading_imports_nothing_and_leaves_no_allowlist(tmp_path: Path) -> None:
    _, ckpt = write_taming_vqgan(tmp_path)
    before = set(sys.modules)
    safe_before = set(torch.serialization.get_safe_globals())  # order is not kept by torch
    load_state_dict(ckpt)
    new = {name for name in set(sys.modules) - before
           if name.split(".")[0] in ("pytorch_lightning", "lightning", "omegaconf", "numpy")}
    assert not new
    assert set(torch.serialization.get_safe_globals()) == safe_before


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "pwned"
    ckpt = write_malicious_checkpoint(tmp_path / "evil.ckpt", marker, legacy=legacy)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_state_dict(ckpt)
    assert "builtins.exec" in str(info.value)
    assert str(ckpt) in str(info.value)
    assert not marker.exists()


def test_malicious_fixture_really_runs_code(tmp_path: Path) -> None:
    # Proof that the refusal test above is not vacuous: an unrestricted load runs the payload.
    marker = tmp_path / "pwned"
    ckpt = write_malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    torch.load(ckpt, weights_only=False)
    assert marker.exists()


def test_unlisted_global_is_named(tmp_path: Path) -> None:
    from fractions import Fraction

    ckpt = tmp_path / "odd.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "ratio": Fraction(1, 3)}, ckpt)
    with pytest.raises(UnsafeCheckpointError, match=r"fractions\.Fraction"):
        load_state_dict(ckpt)


def test_plain_state_dict_and_safetensors(tmp_path: Path) -> None:
    state = {"a.weight": torch.randn(3, 2), "b.bias": torch.arange(4)}
    torch.save(state, tmp_path / "plain.pth")
    save_file(state, str(tmp_path / "w.safetensors"))
    for name in ("plain.pth", "w.safetensors"):
        loaded = load_state_dict(tmp_path / name)
        assert loaded.keys() == state.keys()
        assert all(torch.equal(loaded[k], state[k]) for k in state)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint\n", b"PK\x03\x04garbage"],
                         ids=["empty", "text", "fake-zip"])
def test_garbage_files_give_model_error(tmp_path: Path, content: bytes) -> None:
    for name in ("bad.ckpt", "bad.safetensors"):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ModelError, match=str(path)) as info:
            load_state_dict(path)
        assert not isinstance(info.value, UnsafeCheckpointError)


def test_truncated_checkpoint_gives_model_error(tmp_path: Path) -> None:
    _, ckpt = write_taming_vqgan(tmp_path, extra_globals=False)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="not a readable checkpoint"):
        load_state_dict(ckpt)


def test_missing_file_and_non_state_dicts(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_state_dict(tmp_path / "nope.ckpt")
    torch.save({"epoch": 3, "weights": [1, 2]}, tmp_path / "no_state.ckpt")
    with pytest.raises(ModelError, match="no state dict"):
        load_state_dict(tmp_path / "no_state.ckpt")
    torch.save({"state_dict": {"w": 1.5}}, tmp_path / "not_tensors.ckpt")
    with pytest.raises(ModelError, match="no state dict"):
        load_state_dict(tmp_path / "not_tensors.ckpt")

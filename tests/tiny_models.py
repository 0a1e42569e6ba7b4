"""Write tiny VQGANs in the real taming/Lightning formats (and a malicious pickle) for tests."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

from vqclip.models.vqgan import VQGAN, VQGANSpec

TINY_SPEC = VQGANSpec(
    embed_dim=32, n_embed=64, z_channels=32, resolution=32, in_channels=3, out_ch=3,
    ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
)

_CALLBACK_MODULE = "pytorch_lightning.callbacks.model_checkpoint"


def tiny_vqgan(spec: VQGANSpec = TINY_SPEC, *, seed: int = 0) -> VQGAN:
    """A VQGAN with seeded random weights (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VQGAN(spec)
        # Non-trivial norms, so that tests notice a GroupNorm weight loaded into the wrong place.
        for name, param in model.named_parameters():
            if "norm" in name:
                param.data.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)
    return model.eval()


def taming_config(spec: VQGANSpec = TINY_SPEC) -> dict[str, Any]:
    """A taming-transformers model.yaml as data (VQModel, or GumbelVQ for a gumbel spec)."""
    ddconfig = {
        "double_z": spec.double_z, "z_channels": spec.z_channels, "resolution": spec.resolution,
        "in_channels": spec.in_channels, "out_ch": spec.out_ch, "ch": spec.ch,
        "ch_mult": list(spec.ch_mult), "num_res_blocks": spec.num_res_blocks,
        "attn_resolutions": list(spec.attn_resolutions), "dropout": spec.dropout,
    }
    params: dict[str, Any] = {"embed_dim": spec.embed_dim, "n_embed": spec.n_embed,
                              "ddconfig": ddconfig}
    if spec.quantizer == "gumbel":
        target = "taming.models.vqgan.GumbelVQ"
        params["kl_weight"] = 1.0e-08
        params["temperature_scheduler_config"] = {
            "target": "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
            "params": {"warm_up_steps": 0, "max_decay_steps": 1000001, "lr_start": 0.9,
                       "lr_max": 0.9, "lr_min": 1.0e-06},
        }
        loss_target = "taming.modules.losses.vqperceptual.DummyLoss"
        params["lossconfig"] = {"target": loss_target}
    else:
        target = "taming.models.vqgan.VQModel"
        params["lossconfig"] = {
            "target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
            "params": {"disc_conditional": False, "disc_in_channels": 3, "disc_start": 0,
                       "disc_weight": 0.75, "disc_num_layers": 2, "codebook_weight": 1.0},
        }
    return {"model": {"base_learning_rate": 4.5e-06, "target": target, "params": params}}


def _transformer_config(first_stage: dict[str, Any]) -> dict[str, Any]:
    """An S-FLCKR-style transformer config whose first stage is the VQGAN."""
    return {"model": {
        "base_learning_rate": 4.5e-06,
        "target": "taming.models.cond_transformer.Net2NetTransformer",
        "params": {
            "cond_stage_key": "segmentation",
            "transformer_config": {"target": "taming.modules.transformer.mingpt.GPT",
                                   "params": {"vocab_size": 64, "block_size": 32, "n_layer": 1}},
            "first_stage_config": first_stage["model"],
            "cond_stage_config": {"target": "taming.models.vqgan.VQModel", "params": {}},
        },
    }}


@contextlib.contextmanager
def _fake_lightning_module() -> Iterator[type]:
    """A class that pickles as pytorch_lightning's ModelCheckpoint, without importing Lightning.

    The throwaway modules live in sys.modules only while the block runs; whatever was there
    before (even the real package) is put back afterwards.
    """
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", _CALLBACK_MODULE]
    saved = {name: sys.modules.get(name) for name in names}
    fake = type("ModelCheckpoint", (), {"__module__": _CALLBACK_MODULE})
    try:
        for name in names:
            sys.modules[name] = types.ModuleType(name)
        sys.modules[_CALLBACK_MODULE].ModelCheckpoint = fake  # type: ignore[attr-defined]
        yield fake
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _lightning_checkpoint(state: dict[str, torch.Tensor], callback: type,
                          config: dict[str, Any], extra_globals: bool) -> dict[str, Any]:
    """The layout of a pytorch-lightning 1.0.x checkpoint, as the CompVis files have it."""
    import numpy as np

    callback_state: dict[str, Any] = {
        "monitor": "val/rec_loss", "best_model_score": torch.tensor(0.1234),
        "best_model_path": "logs/2020-11-09T13-31-51/checkpoints/last.ckpt",
    }
    first = next(iter(state.values()))
    checkpoint: dict[str, Any] = {
        "epoch": 3,
        "global_step": 1234,
        "pytorch-lightning_version": "1.0.8",
        "callbacks": {callback: callback_state},
        "optimizer_states": [{"state": {0: {"step": 10, "exp_avg": torch.zeros_like(first)}},
                              "param_groups": [{"lr": 4.5e-06, "betas": (0.5, 0.9),
                                                "params": [0]}]}],
        "lr_schedulers": [],
        "state_dict": state,
    }
    if extra_globals:
        from omegaconf import OmegaConf

        callback_state["best_k_models"] = {"epoch=3.ckpt": np.float64(0.1234)}
        callback_state["kth_value"] = np.float32(0.5)
        callback_state["score_dtype"] = np.dtype("float64")
        checkpoint["hyper_parameters"] = OmegaConf.create(config["model"]["params"])
        checkpoint["hparams_name"] = "kwargs"
        checkpoint["args"] = argparse.Namespace(base=["configs/model.yaml"], seed=23, gpus="0,")
    return checkpoint


def write_taming_vqgan(
    directory: str | Path, *, spec: VQGANSpec = TINY_SPEC, seed: int = 0, gumbel: bool = False,
    extra_globals: bool = True, transformer: bool = False, legacy: bool = False,
) -> tuple[Path, Path]:
    """Write <dir>/model.yaml and a Lightning-1.x <dir>/last.ckpt with random weights.

    transformer=True writes an S-FLCKR-style transformer config and checkpoint instead, whose
    VQGAN keys carry the ``first_stage_model.`` prefix; legacy=True uses torch's pre-1.6
    (non-zip) serialization.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if gumbel:
        spec = dataclasses.replace(spec, quantizer="gumbel")
    config = taming_config(spec)
    state = dict(tiny_vqgan(spec, seed=seed).state_dict())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        state["loss.logvar"] = torch.zeros(())
        state["loss.discriminator.main.0.weight"] = torch.randn(8, 3, 4, 4)
        state["loss.perceptual_loss.net.slice1.0.weight"] = torch.randn(8, 3, 3, 3)
        if transformer:
            state = {f"first_stage_model.{key}": value for key, value in state.items()}
            state["transformer.tok_emb.weight"] = torch.randn(spec.n_embed, 16)
            state["cond_stage_model.quantize.embedding.weight"] = torch.randn(8, 4)
            config = _transformer_config(config)
    yaml_path = directory / "model.yaml"
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    ckpt_path = directory / "last.ckpt"
    with _fake_lightning_module() as callback:
        checkpoint = _lightning_checkpoint(state, callback, config, extra_globals)
        torch.save(checkpoint, ckpt_path, _use_new_zipfile_serialization=not legacy)
    return yaml_path, ckpt_path


class _RunsCode:
    """Unpickling this object runs ``exec`` (what a malicious checkpoint does)."""

    def __init__(self, marker_file: Path) -> None:
        self.source = f"open({str(marker_file)!r}, 'w').close()"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (self.source,)


def write_malicious_checkpoint(path: str | Path, marker_file: str | Path, *,
                               legacy: bool = False) -> Path:
    """A checkpoint whose unpickling would create marker_file via builtins.exec.

    legacy=True writes torch's pre-1.6 (non-zip) serialization format.
    """
    path = Path(path)
    payload = {"state_dict": {"decoder.conv_in.weight": torch.zeros(1)},
               "epoch": _RunsCode(Path(marker_file))}
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return path

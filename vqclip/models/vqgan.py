"""The VQGAN generator: its architecture spec, taming configs, and loading/saving weights."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vqclip.errors import ModelError
from vqclip.files import atomic_path
from vqclip.models.autocast_copy import autocast_operands, copy_with_operands_in
from vqclip.models.checkpoint import load_state_dict
from vqclip.models.quantizers import GumbelQuantizer, VectorQuantizer
from vqclip.models.vqgan_layers import Decoder, Encoder
from vqclip.suggest import unknown_name

__all__ = ["VQGAN", "VQGANSpec", "load_vqgan", "read_spec", "save_vqgan", "spec_from_json",
           "spec_from_taming_yaml"]

FORMAT = "vqclip-vqgan"
FORMAT_VERSION = 1
# The parts generation and init-image encoding use; the rest of a taming checkpoint
# (the GAN loss, its discriminator and LPIPS network) only matters for training.
INFERENCE_PARTS = ("encoder", "quant_conv", "quantize", "post_quant_conv", "decoder")
TRAINING_ONLY_PREFIXES = ("loss.", "colorize")
FIRST_STAGE_PREFIX = "first_stage_model."
QUANTIZERS = ("vq", "gumbel")
_INT_FIELDS = ("embed_dim", "n_embed", "z_channels", "resolution", "in_channels", "out_ch", "ch",
               "num_res_blocks")


@dataclass(frozen=True)
class VQGANSpec:
    """Architecture of a VQGAN; field names as in taming's ddconfig."""

    embed_dim: int
    n_embed: int
    z_channels: int
    resolution: int
    in_channels: int
    out_ch: int
    ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]
    double_z: bool = False
    dropout: float = 0.0
    quantizer: str = "vq"

    def __post_init__(self) -> None:
        for name in ("ch_mult", "attn_resolutions"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
                raise ModelError(f"VQGAN spec: {name} must be a list of integers, got {value!r}")
            object.__setattr__(self, name, tuple(int(v) for v in value))
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ModelError(f"VQGAN spec: {name} must be a positive integer, got {value!r}")
        if not self.ch_mult or min(self.ch_mult) < 1:
            raise ModelError(f"VQGAN spec: ch_mult must be positive integers, got {self.ch_mult}")
        not_32 = sorted({self.ch * m for m in (1, *self.ch_mult) if (self.ch * m) % 32})
        if not_32:
            raise ModelError(f"VQGAN spec: channel counts {not_32} (ch x ch_mult) are not "
                             "multiples of 32, which GroupNorm(32) needs")
        if not isinstance(self.double_z, bool):
            raise ModelError(f"VQGAN spec: double_z must be true or false, got {self.double_z!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ModelError(f"VQGAN spec: dropout must be in [0, 1), got {self.dropout!r}")
        if self.quantizer not in QUANTIZERS:
            raise ModelError(f"VQGAN spec: {unknown_name('quantizer', self.quantizer, QUANTIZERS)}")
        if self.quantizer == "gumbel" and self.embed_dim != self.z_channels:
            # GumbelVQ feeds quant_conv's embed_dim channels to proj, built for z_channels.
            raise ModelError("VQGAN spec: the gumbel quantizer needs embed_dim == z_channels, "
                             f"got {self.embed_dim} and {self.z_channels}")

    @property
    def factor(self) -> int:
        """Downsampling factor between image and latent: 2 ** (len(ch_mult) - 1)."""
        return 2 ** (len(self.ch_mult) - 1)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data."""
        data = dataclasses.asdict(self)
        data["ch_mult"] = list(self.ch_mult)
        data["attn_resolutions"] = list(self.attn_resolutions)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VQGANSpec:
        """Build a spec from data; unknown or missing fields raise ModelError."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ModelError(f"VQGAN spec: unknown field(s) {', '.join(unknown)}")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.name not in data]
        if required:
            raise ModelError(f"VQGAN spec: missing field(s) {', '.join(required)}")
        return cls(**data)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class VQGAN(nn.Module):
    """Encoder, quantizer and decoder of a taming VQGAN, under taming's submodule names."""

    def __init__(self, spec: VQGANSpec) -> None:
        super().__init__()
        self.spec = spec
        common = dict(ch=spec.ch, ch_mult=spec.ch_mult, num_res_blocks=spec.num_res_blocks,
                      attn_resolutions=spec.attn_resolutions, resolution=spec.resolution,
                      z_channels=spec.z_channels, dropout=spec.dropout)
        self.encoder = Encoder(in_channels=spec.in_channels, double_z=spec.double_z, **common)
        self.quant_conv = nn.Conv2d(spec.z_channels, spec.embed_dim, 1)
        if spec.quantizer == "gumbel":
            self.quantize: VectorQuantizer | GumbelQuantizer = GumbelQuantizer(
                spec.n_embed, spec.embed_dim, spec.z_channels)
        else:
            self.quantize = VectorQuantizer(spec.n_embed, spec.embed_dim)
        self.post_quant_conv = nn.Conv2d(spec.embed_dim, spec.z_channels, 1)
        self.decoder = Decoder(out_ch=spec.out_ch, **common)

    @property
    def factor(self) -> int:
        """Pixels per latent position along each side."""
        return self.spec.factor

    @property
    def codebook(self) -> torch.Tensor:
        """The codebook, (n_embed, embed_dim)."""
        return self.quantize.codebook

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> continuous latent (B, embed_dim, H/f, W/f)."""
        return self.quantize.encode_latent(self.quant_conv(self.encoder(images)))

    def quantize_latent(self, z: torch.Tensor, squared_norms: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codebook vectors with a straight-through gradient -> (z_q, indices (B,h,w));
        `squared_norms`: the codebook rows' squared lengths, when computed once by the caller."""
        return self.quantize(z, squared_norms)

    def tokens_to_latent(self, indices: torch.Tensor) -> torch.Tensor:
        """Token indices (B, h, w) -> latent (B, embed_dim, h, w)."""
        return self.quantize.embed_code(indices)

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantized latent -> images, about [-1, 1]."""
        return self.decoder(self.post_quant_conv(z_q))

    def autocast_copy(self, dtype: torch.dtype) -> VQGAN:
        """A copy for decoding under autocast to `dtype`: the decoder's convolution weights in
        `dtype`, every other parameter and buffer shared with this model."""
        operands = autocast_operands(self.post_quant_conv) + autocast_operands(self.decoder)
        return copy_with_operands_in(self, dtype, operands)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruct images: encode, quantize, decode."""
        return self.decode(self.quantize_latent(self.encode(images))[0])


def _read_yaml(path: Path) -> Any:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except FileNotFoundError:
        raise ModelError(f"VQGAN config {path} does not exist.") from None
    except Exception as exc:  # yaml.YAMLError, omegaconf errors, decoding errors
        raise ModelError(f"VQGAN config {path} is not readable YAML: {exc}") from exc


def _get(node: Any, key: str, where: str, path: Path) -> Any:
    """node[key], or a ModelError naming the file and the dotted path of the key."""
    if not isinstance(node, Mapping):
        raise ModelError(f"VQGAN config {path}: {where or 'the top level'} is not a mapping.")
    if key not in node:
        raise ModelError(f"VQGAN config {path}: missing key {where + '.' if where else ''}{key}")
    return node[key]


def spec_from_taming_yaml(path: str | os.PathLike) -> VQGANSpec:
    """Read a taming-transformers model.yaml (VQModel, GumbelVQ, or a transformer's first stage)."""
    path = Path(path)
    model = _get(_read_yaml(path), "model", "", path)
    where = "model"
    params = _get(model, "params", where, path)
    target = str(model.get("target", ""))
    if isinstance(params, Mapping) and "ddconfig" not in params and "first_stage_config" in params:
        # A transformer config (e.g. S-FLCKR): its VQGAN is the first stage.
        model, where = params["first_stage_config"], "model.params.first_stage_config"
        params = _get(model, "params", where, path)
        target = str(model.get("target", ""))
    where += ".params"
    ddconfig = _get(params, "ddconfig", where, path)
    values: dict[str, Any] = {
        "embed_dim": _get(params, "embed_dim", where, path),
        "n_embed": _get(params, "n_embed", where, path),
        "quantizer": "gumbel" if target.rsplit(".", 1)[-1] == "GumbelVQ" else "vq",
    }
    for key in ("z_channels", "resolution", "in_channels", "out_ch", "ch", "ch_mult",
                "num_res_blocks", "attn_resolutions"):
        values[key] = _get(ddconfig, key, f"{where}.ddconfig", path)
    # taming's Encoder defaults double_z to True; the VQGAN configs all set it to false.
    values["double_z"] = ddconfig.get("double_z", True)
    values["dropout"] = ddconfig.get("dropout", 0.0)
    if not ddconfig.get("resamp_with_conv", True):
        raise ModelError(f"VQGAN config {path}: {where}.ddconfig.resamp_with_conv false "
                         "(average-pool resampling) is not supported")
    try:
        return VQGANSpec(**values)
    except ModelError as exc:
        raise ModelError(f"VQGAN config {path}: {exc}") from None


def spec_from_json(path: str | os.PathLike) -> VQGANSpec:
    """Read the config.json that save_vqgan writes."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"VQGAN config {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"VQGAN config {path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"VQGAN config {path} is not a vqclip VQGAN config "
                         f"(expected \"format\": \"{FORMAT}\").")
    if data.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"VQGAN config {path} has format_version "
                         f"{data.get('format_version')!r}; this vqclip reads {FORMAT_VERSION}.")
    fields = {k: v for k, v in data.items() if k not in ("format", "format_version")}
    try:
        return VQGANSpec.from_dict(fields)
    except (ModelError, TypeError) as exc:
        raise ModelError(f"VQGAN config {path}: {exc}") from None


def read_spec(config: str | os.PathLike | VQGANSpec) -> VQGANSpec:
    """The spec a VQGAN config states: a taming .yaml/.yml or a vqclip .json (no weights read)."""
    if isinstance(config, VQGANSpec):
        return config
    suffix = Path(config).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return spec_from_taming_yaml(config)
    if suffix == ".json":
        return spec_from_json(config)
    raise ModelError(f"VQGAN config {config}: expected a taming .yaml or a vqclip .json file.")


def _inference_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip a transformer's first_stage_model. prefix and drop training-only keys."""
    if any(key.startswith(FIRST_STAGE_PREFIX) for key in state):
        state = {key[len(FIRST_STAGE_PREFIX):]: value for key, value in state.items()
                 if key.startswith(FIRST_STAGE_PREFIX)}
    return {key: value for key, value in state.items()
            if not key.startswith(TRAINING_ONLY_PREFIXES)}


def _key_report(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_vqgan(config: str | os.PathLike | VQGANSpec, checkpoint: str | os.PathLike, *,
               device: str | torch.device = "cpu") -> VQGAN:
    """Build a VQGAN from a config (.yaml/.yml/.json) and load a checkpoint into it, frozen."""
    spec = read_spec(config)
    state = _inference_keys(load_state_dict(checkpoint))
    mismatch = f"Checkpoint {checkpoint} does not fit " + (
        "the given VQGAN spec" if isinstance(config, VQGANSpec) else f"config {config}")
    with torch.device("meta"):  # no random init of weights that are about to be replaced
        model = VQGAN(spec)
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_key_report(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_key_report(unexpected)}")
        raise ModelError(f"{mismatch}: " + "; ".join(parts))
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # size mismatches
        detail = "; ".join(line.strip() for line in str(exc).splitlines()[1:4])
        raise ModelError(f"{mismatch}: {detail}") from None
    model = model.to(device=device, dtype=torch.float32)
    return model.eval().requires_grad_(False)


def save_vqgan(model: VQGAN, directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write <dir>/config.json and <dir>/model.safetensors (inference parts only), atomically."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config_path, weights_path = directory / "config.json", directory / "model.safetensors"
    tensors = {key: value.detach().to("cpu").contiguous()
               for key, value in model.state_dict().items()
               if key.split(".", 1)[0] in INFERENCE_PARTS}
    # Weights first: a config.json never points at weights from an unfinished write.
    with atomic_path(weights_path, overwrite=True) as tmp:
        # "format": "pt" is the convention other safetensors readers check for.
        save_file(tensors, str(tmp), metadata={"format": "pt", "vqclip_format": FORMAT})
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, **model.spec.to_dict()}
    with atomic_path(config_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return config_path, weights_path


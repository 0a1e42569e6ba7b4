"""Writes a tiny open_clip model in the `local-dir:` layout (config JSON + safetensors)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_PREPROCESS = {"mean": [0.48145466, 0.4578275, 0.40821073],
                   "std": [0.26862954, 0.26130258, 0.27577711]}


def write_tiny_clip(directory: str | Path, *, seed: int = 0, image_size: int = 32) -> Path:
    """Random-weight tiny CLIP that `open_clip.create_model("local-dir:<dir>")` loads."""
    import open_clip
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model_cfg = {**TINY_CLIP_CONFIG,
                 "vision_cfg": {**TINY_CLIP_CONFIG["vision_cfg"], "image_size": image_size}}
    model = open_clip.CLIP(**model_cfg)
    config = {"model_cfg": model_cfg, "preprocess_cfg": TINY_PREPROCESS}
    (directory / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "open_clip_model.safetensors"))
    return directory

"""The perceptor: an open_clip model that embeds texts and [0, 1] images, frozen."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vqclip.errors import ModelError, first_line
from vqclip.models.autocast_copy import autocast_operands, copy_with_operands_in
from vqclip.models.clip_kernels import fold_input_normalization, streamline_image_tower

log = logging.getLogger(__name__)


@dataclass
class Perceptor:
    """A frozen CLIP with its input size and normalization; embeddings come out unit-length.

    Made, it changes its model in place to run the same function on fewer kernels per step
    (models/clip_kernels.py): the model then differs from its file, and is not for saving."""

    model: torch.nn.Module
    tokenizer: object
    input_size: int
    mean: torch.Tensor
    std: torch.Tensor
    name: str
    takes_pixels: bool = field(init=False)  # the normalization is folded into the model

    def __post_init__(self) -> None:
        streamline_image_tower(self.model)
        self.takes_pixels = fold_input_normalization(self.model, self.mean, self.std)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def embed_dim(self) -> int:
        """Length of the embeddings."""
        return int(self.model.visual.output_dim)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Unit-length text embeddings, one row per text."""
        tokens = self.tokenizer(texts).to(self.device)
        with torch.no_grad():
            return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings of (B, 3, S, S) images in [0, 1] at the input size."""
        normalized = images if self.takes_pixels else (images - self.mean) / self.std
        return F.normalize(self.model.encode_image(normalized).float(), dim=-1)

    def autocast_copy(self, dtype: torch.dtype) -> Perceptor:
        """A copy for embedding images under autocast to `dtype`: the image tower's matmul and
        convolution weights in `dtype`, every other parameter and buffer shared with this model."""
        visual = self.model.visual
        operands = autocast_operands(visual)
        # A ViT's output projection (a matmul of its own), and the embeddings open_clip casts
        # to the activations' dtype itself on each call.
        operands += [tensor for name in ("proj", "class_embedding", "positional_embedding")
                     if isinstance(tensor := getattr(visual, name, None), torch.Tensor)]
        copied = copy.copy(self)
        copied.model = copy_with_operands_in(self.model, dtype, operands)
        return copied


def load_perceptor(model_name: str, pretrained: str | None, device: torch.device) -> Perceptor:
    """Create an open_clip model by name and tag (or weights file), frozen on `device`."""
    import open_clip  # heavy import, only when a model is needed

    try:
        model = open_clip.create_model(model_name, pretrained=pretrained or None, device=device)
        tokenizer = open_clip.get_tokenizer(model_name)
    except RuntimeError as err:
        known = "see `python -c \"import open_clip; print(open_clip.list_models())\"`"
        raise ModelError(
            f"CLIP model {model_name!r} could not be created: {first_line(err)} ({known})"
        ) from None
    except (OSError, ValueError) as err:
        raise ModelError(
            f"CLIP {model_name!r} with pretrained={pretrained!r} could not be loaded: {first_line(err)}"
        ) from None
    model.eval().requires_grad_(False)
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else size
    mean = torch.tensor(cfg["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], device=device).view(1, 3, 1, 1)
    label = model_name if not pretrained else f"{model_name}/{pretrained}"
    return Perceptor(model, tokenizer, int(size), mean, std, label)

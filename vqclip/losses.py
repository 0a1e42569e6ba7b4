"""Losses between CLIP embeddings: spherical distance, weighted prompts with stops."""

from __future__ import annotations

import torch

from vqclip.prompts import Prompt


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between unit vectors, 2*asin(|a-b|/2)**2 (Crowson's notebook)."""
    return (a - b).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


class PromptLoss:
    """Pulls every cutout embedding toward (weight > 0) or away from (weight < 0) one target."""

    def __init__(self, prompt: Prompt, embedding: torch.Tensor) -> None:
        self.prompt = prompt
        self.embedding = embedding  # (D,) unit length

    def __call__(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """Mean over cutouts of the signed distance, times |weight|; no pull past `stop`."""
        weight = self.prompt.weight
        signed = spherical_distance(image_embeddings, self.embedding.unsqueeze(0))
        signed = signed * (1.0 if weight >= 0 else -1.0)
        # Below the stop threshold the value still counts but no longer pulls.
        signed = torch.where(signed >= self.prompt.stop, signed, signed.detach())
        return abs(weight) * signed.mean()

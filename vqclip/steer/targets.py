"""What the image is pulled toward: the parsed prompts embedded by each CLIP, in story stages."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vqclip.images import init_canvas
from vqclip.models.clip import Perceptor
from vqclip.steer.cutouts import Cutouts
from vqclip.steer.losses import PromptLoss
from vqclip.steer.prompts import Prompt, PromptPlan


@dataclass
class Stage:
    """The prompt losses in force from step `start` on (one stage unless in story mode)."""

    start: int
    label: str
    prompt_losses: list[PromptLoss]


@dataclass
class Judge:
    """One CLIP with its own cutouts (input size) and prompt embeddings; ensembles have several."""

    perceptor: Perceptor
    cutouts: Cutouts
    stages: list[Stage]
    weight: float = 1.0
    name: str = "clip"

    def stage_at(self, step: int) -> Stage:
        """The stage in force at `step`."""
        return [stage for stage in self.stages if stage.start <= step][-1]


def _text_losses(prompts: tuple[Prompt, ...], perceptor: Perceptor) -> list[PromptLoss]:
    if not prompts:
        return []
    embeddings = perceptor.encode_text([p.text for p in prompts])
    return [PromptLoss(p, e) for p, e in zip(prompts, embeddings, strict=True)]


def image_prompt_losses(prompts: tuple[Prompt, ...], perceptor: Perceptor) -> list[PromptLoss]:
    """One loss per image prompt, not yet aimed: `aim_image_prompts` loads and embeds the
    images (at the run's size, so only once the memory plan says the run fits)."""
    placeholder = torch.zeros(perceptor.embed_dim, device=perceptor.device)
    return [PromptLoss(prompt, placeholder, kind="image") for prompt in prompts]


def aim_image_prompts(losses: list[PromptLoss], perceptor: Perceptor, cutouts: Cutouts,
                      size: list[int]) -> None:
    """Embed each image prompt's image through the same cutouts as the generated image."""
    for index, loss in enumerate(losses):
        image = init_canvas(loss.prompt.text, *size).to(perceptor.device)
        # Its own generator, seeded by the prompt's place alone: image prompts neither shift
        # the run's random stream nor depend on its seed, so every image of a batch shares them.
        rng = torch.Generator(device=perceptor.device).manual_seed(index)
        with torch.no_grad():
            embedding = perceptor.encode_image(cutouts(image, rng)).mean(dim=0)
        loss.embedding = F.normalize(embedding, dim=-1)


def noise_prompt_losses(noise: tuple[tuple[int, Prompt], ...], perceptor: Perceptor) -> list[PromptLoss]:
    """A random unit CLIP vector per noise prompt, drawn from its seed."""
    losses = []
    for noise_seed, prompt in noise:
        rng = torch.Generator().manual_seed(noise_seed)
        vector = F.normalize(torch.randn(perceptor.embed_dim, generator=rng), dim=-1).to(perceptor.device)
        losses.append(PromptLoss(prompt, vector, kind="noise"))
    return losses


def build_stages(plan: PromptPlan, perceptor: Perceptor, image_losses: list[PromptLoss]) -> list[Stage]:
    """All prompt stages; negative, image and noise prompts apply in every stage."""
    shared = _text_losses(plan.negatives, perceptor) + image_losses
    shared += noise_prompt_losses(plan.noise, perceptor)
    stages = [Stage(stage.start, stage.label, _text_losses(stage.prompts, perceptor) + shared)
              for stage in plan.stages]
    return stages or [Stage(0, "", shared)]

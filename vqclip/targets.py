"""What the image is pulled toward: text, negative, image and noise prompts, in story stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from vqclip.cutouts import Cutouts
from vqclip.engine import Stage
from vqclip.errors import UsageError
from vqclip.images import init_canvas
from vqclip.losses import PromptLoss
from vqclip.models.clip import Perceptor
from vqclip.prompts import Prompt, parse_prompt, parse_prompt_sets


def _text_losses(prompts: list[Prompt], perceptor: Perceptor) -> list[PromptLoss]:
    if not prompts:
        return []
    embeddings = perceptor.encode_text([p.text for p in prompts])
    return [PromptLoss(p, e) for p, e in zip(prompts, embeddings, strict=True)]


def negative_prompts(spec: str) -> list[Prompt]:
    """`--negative "blurry | text:0.5"`: each item pushes away with its (positive) weight."""
    if not spec.strip():
        return []
    items = [parse_prompt(item) for item in spec.split("|") if item.strip()]
    return [Prompt(p.text, -abs(p.weight), p.stop) for p in items]


def image_prompt_losses(specs: list[str], perceptor: Perceptor) -> list[PromptLoss]:
    """One loss per "path[:weight[:stop]]" image, not yet aimed: `aim_image_prompts` loads and
    embeds the images (at the run's size, so only once the memory plan says the run fits)."""
    placeholder = torch.zeros(perceptor.embed_dim, device=perceptor.device)
    return [PromptLoss(parse_prompt(spec), placeholder, kind="image") for spec in specs]


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


def noise_prompt_losses(specs: list[str], perceptor: Perceptor) -> list[PromptLoss]:
    """"seed[:weight]" items: a random unit CLIP vector drawn from that seed."""
    losses = []
    for spec in specs:
        prompt = parse_prompt(spec)
        try:
            noise_seed = int(prompt.text)
        except ValueError:
            raise UsageError(f"noise prompt {spec!r}: expected SEED[:WEIGHT], e.g. 3:0.5") from None
        rng = torch.Generator().manual_seed(noise_seed)
        vector = F.normalize(torch.randn(perceptor.embed_dim, generator=rng), dim=-1).to(perceptor.device)
        losses.append(PromptLoss(prompt, vector, kind="noise"))
    return losses


def story_sets(cfg: DictConfig) -> list[tuple[int, str]]:
    """(start step, prompt text) of each stage, from `^`-separated sets or the `story` list."""
    if cfg.story and "^" in cfg.prompt:
        raise UsageError("give story stages either with '^' in the prompt or as `story`, not both")
    if cfg.story:
        stages = sorted((item.start, item.prompt) for item in cfg.story)
        if stages[0][0] != 0:
            raise UsageError(f"story: the first stage must start at step 0, not {stages[0][0]}")
        return stages
    if not cfg.prompt.strip():
        return []
    parts = cfg.prompt.split("^")
    every = cfg.switch_every or -(-cfg.steps // len(parts))
    return [(index * every, part) for index, part in enumerate(parts)]


def build_stages(cfg: DictConfig, perceptor: Perceptor, image_losses: list[PromptLoss]
                 ) -> list[Stage]:
    """All prompt stages; negative, image and noise prompts apply in every stage."""
    shared = _text_losses(negative_prompts(cfg.negative), perceptor)
    shared += image_losses
    shared += noise_prompt_losses(list(cfg.noise_prompts), perceptor)
    stages = []
    for start, text in story_sets(cfg):
        (prompts,) = parse_prompt_sets(text)
        stages.append(Stage(start, text.strip(), _text_losses(prompts, perceptor) + shared))
    if not stages:
        if not shared:
            raise UsageError("nothing to aim for: give a text prompt, an image prompt or a noise prompt")
        stages.append(Stage(0, "", shared))
    return stages

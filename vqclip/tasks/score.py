"""CLIP scoring: the cosine similarity of every image with every prompt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqclip.errors import UsageError
from vqclip.models.clip import Perceptor
from vqclip.tasks.common import ProgressCallback, Skipped, embed_files, encode_texts


@dataclass
class ImageScores:
    """One image's cosine similarity with each prompt, in prompt order."""

    image: Path
    similarities: list[float]


@dataclass
class ScoreResult:
    """An images × prompts table of cosine similarities, plus the images that could not be read."""

    prompts: list[str]
    results: list[ImageScores]
    skipped: list[Skipped]
    model: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The CLI's --json object."""
        return {
            "prompts": self.prompts,
            "results": [{"image": str(r.image),
                         "scores": [{"prompt": p, "similarity": round(s, 6)}
                                    for p, s in zip(self.prompts, r.similarities, strict=True)]}
                        for r in self.results],
            "skipped": [s.to_json() for s in self.skipped],
            "model": self.model,
        }


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """The prompts stripped; none, or an empty one, is a UsageError."""
    cleaned = [prompt.strip() for prompt in prompts]
    if not cleaned:
        raise UsageError("no prompts: give at least one with -p/--prompt")
    if not all(cleaned):
        raise UsageError("a prompt is empty")
    return cleaned


def score_images(
    perceptor: Perceptor,
    model: dict[str, Any],
    images: Sequence[Path],
    prompts: Sequence[str],
    *,
    batch_size: int = 32,
    on_progress: ProgressCallback | None = None,
) -> ScoreResult:
    """Cosine similarity between each image and each prompt's CLIP embedding."""
    prompts = check_prompts(prompts)
    text = encode_texts(perceptor, prompts)
    used, embeddings, skipped = embed_files(perceptor, images, batch_size=batch_size,
                                            on_progress=on_progress)
    similarity = (embeddings @ text.T).tolist()
    return ScoreResult(prompts, [ImageScores(path, row) for path, row in zip(used, similarity, strict=True)],
                       skipped, model)

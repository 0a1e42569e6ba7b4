"""Zero-shot classification: softmax over CLIP similarities between images and label prompts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqclip.errors import UsageError
from vqclip.models.clip import Perceptor
from vqclip.tasks.common import (
    ProgressCallback,
    Skipped,
    check_templates,
    check_top,
    embed_files,
    label_embeddings,
    logit_scale,
)


@dataclass(frozen=True)
class LabelProbability:
    """One label and the probability CLIP gives it for an image."""

    label: str
    probability: float


@dataclass
class ImageLabels:
    """The top labels of one image, most probable first."""

    image: Path
    labels: list[LabelProbability]


@dataclass
class ClassifyResult:
    """Top-k labels per image, plus the images that could not be read."""

    results: list[ImageLabels]
    skipped: list[Skipped]
    templates: list[str]
    logit_scale: float
    model: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The CLI's --json object."""
        return {
            "results": [{"image": str(r.image),
                         "labels": [{"label": lp.label, "probability": round(lp.probability, 6)}
                                    for lp in r.labels]}
                        for r in self.results],
            "skipped": [s.to_json() for s in self.skipped],
            "templates": self.templates,
            "logit_scale": round(self.logit_scale, 4),
            "model": self.model,
        }


def read_labels_file(path: str | Path) -> list[str]:
    """Labels from a text file: one per line; blank lines and lines starting with # are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read labels file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise UsageError(f"labels file {path} is not UTF-8 text") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def check_labels(labels: Sequence[str]) -> list[str]:
    """Labels stripped; none, an empty one or a repeated one is a UsageError."""
    cleaned = [label.strip() for label in labels]
    if not cleaned:
        raise UsageError("no labels: give at least one with -l/--label or --labels-file")
    if any(not label for label in cleaned):
        raise UsageError("a label is empty")
    seen: set[str] = set()
    for label in cleaned:
        if label in seen:
            raise UsageError(f"label {label!r} is given twice")
        seen.add(label)
    return cleaned


def classify_images(
    perceptor: Perceptor,
    model: dict[str, Any],
    images: Sequence[Path],
    labels: Sequence[str],
    *,
    templates: Sequence[str] = (),
    top: int = 5,
    batch_size: int = 32,
    on_progress: ProgressCallback | None = None,
) -> ClassifyResult:
    """The `top` most probable labels of each image (0: all), softmax at CLIP's logit scale.

    With several templates each label's text embedding is the renormalized mean over them.
    """
    labels = check_labels(labels)
    templates = check_templates(templates)
    check_top(top)
    text = label_embeddings(perceptor, labels, templates)
    used, embeddings, skipped = embed_files(perceptor, images, batch_size=batch_size,
                                            on_progress=on_progress)
    scale = logit_scale(perceptor)
    probabilities = (scale * embeddings @ text.T).softmax(dim=-1)
    k = min(top or len(labels), len(labels))
    values, indices = probabilities.topk(k, dim=-1)
    results = [
        ImageLabels(path, [LabelProbability(labels[i], float(p))
                           for p, i in zip(row_values.tolist(), row_indices.tolist(), strict=True)])
        for path, row_values, row_indices in zip(used, values, indices, strict=True)
    ]
    return ClassifyResult(results, skipped, templates, scale, model)

"""vqclip as a library: `vqclip.generate`, `vqclip.classify`, `vqclip.search`, `vqclip.score`.

    import vqclip
    result = vqclip.generate("a red circle", preset="shapes", steps=50)
    print(result.image, result.final_loss)

`generate` takes the command line's presets and config files and any config key as a keyword
(`size=[256, 256]` or `size="256x256"`, `clip={"model": "ViT-B-16"}`); the CLIP jobs take a model by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vqclip.run.events import Callback
from vqclip.run.execute import GenerateResult
from vqclip.tasks import ClassifyResult, ScoreResult, SearchResult
from vqclip.tasks.common import load_task_perceptor

DEFAULT_CLIP = "ViT-B-32-quickgelu"
DEFAULT_TAG = "openai"  # ignored by registry names (shapes_clip) and local-dir:/hf-hub: models


def generate(prompt: str = "", *, preset: str | None = None, config_files: Sequence[str | Path] = (),
             callbacks: Sequence[Callback] = (), **settings: Any) -> GenerateResult:
    """Make one image (or `batch_size` images, or the best of `candidates`) and return where it
    landed and how it went.

    Settings merge as on the command line: defaults < `preset` < `config_files` < `settings`.
    Each callback sees the run's events (StepEvent, ImageEvent, DoneEvent, ...) as they happen.
    A bad setting raises ConfigError or UsageError before any model is loaded."""
    from vqclip.run.build import build
    from vqclip.run.config import build_config, parse_size
    from vqclip.run.prepare import prepare

    if isinstance(settings.get("size"), str):  # "64x64", as --size takes it
        settings["size"] = parse_size(settings["size"], "size")
    flags = {"prompt": prompt or None, **settings}
    cfg, provenance = build_config(preset=preset, config_files=list(config_files), flags=flags,
                                   flags_source="vqclip.generate keyword arguments")
    return build(prepare(cfg, provenance)).execute(list(callbacks))


def classify(images: Sequence[str | Path], labels: Sequence[str], *, model: str = DEFAULT_CLIP,
             pretrained: str | None = DEFAULT_TAG, device: str = "auto",
             templates: Sequence[str] = (), top: int = 5) -> ClassifyResult:
    """Zero-shot: the `top` most probable of `labels` for each image (0: all of them)."""
    from vqclip.tasks.classify import check_labels, classify_images
    from vqclip.tasks.common import check_top

    check_top(top)  # before the model loads
    perceptor, info = load_task_perceptor(_clip(model, pretrained), device)
    return classify_images(perceptor, info, [Path(p) for p in images], check_labels(labels),
                           templates=templates, top=top)


def search(folder: str | Path, *, text: str | None = None, image: str | Path | None = None,
           model: str = DEFAULT_CLIP, pretrained: str | None = DEFAULT_TAG, device: str = "auto",
           top: int = 10) -> SearchResult:
    """The images of `folder` most like `text` or `image`, best first (indexed once, then kept
    up to date in the folder's .vqclip-index)."""
    from vqclip.tasks.common import check_top
    from vqclip.tasks.search import search_folder

    check_top(top)  # before the model loads
    perceptor, info = load_task_perceptor(_clip(model, pretrained), device)
    return search_folder(perceptor, info, folder, text=text, image=image, top=top)


def score(images: Sequence[str | Path], prompts: Sequence[str], *, model: str = DEFAULT_CLIP,
          pretrained: str | None = DEFAULT_TAG, device: str = "auto") -> ScoreResult:
    """CLIP's cosine similarity of each image with each prompt."""
    from vqclip.tasks.score import score_images

    perceptor, info = load_task_perceptor(_clip(model, pretrained), device)
    return score_images(perceptor, info, [Path(p) for p in images], list(prompts))


def _clip(model: str, pretrained: str | None) -> Any:
    from vqclip.run.config import SELF_CONTAINED_CLIP, ClipModelConfig

    tag = None if model.startswith(SELF_CONTAINED_CLIP) else pretrained
    return ClipModelConfig(model=model, pretrained=tag)

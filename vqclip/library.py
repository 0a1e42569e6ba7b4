"""vqclip as a library: `vqclip.generate`, `vqclip.resume`, `vqclip.load_models`,
`vqclip.classify`, `vqclip.search`, `vqclip.score`.

    import vqclip
    result = vqclip.generate("a red circle", preset="shapes", steps=50)
    print(result.image, result.final_loss)

`generate` takes the command line's presets and config files and any config key as a keyword
(`size=[256, 256]` or `size="256x256"`, `clip={"model": "ViT-B-16"}`); the CLIP jobs take a model
by name, or by the command line's presets, config files and -s items, and check their inputs
and the CLIP before the model loads.

Each `generate` call loads its models and frees them when it returns. To make many images, load
them once and hand them to every call:

    models = vqclip.load_models(preset="shapes")
    for seed in range(8):
        vqclip.generate("a red circle", preset="shapes", seed=seed, models=models)

A call whose config names a model `models` does not hold (another CLIP, another device) loads it
into `models`, where later calls find it too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from vqclip.models.held import Models
from vqclip.run.events import Callback
from vqclip.run.execute import GenerateResult
from vqclip.series.items import StopSwitch
from vqclip.tasks import ClassifyResult, ScoreResult, SearchResult
from vqclip.tasks.clip import task_clip
from vqclip.tasks.common import ProgressCallback

if TYPE_CHECKING:
    from vqclip.run.execute import Run
    from vqclip.run.prepare import RunSpec
    from vqclip.run.resume import ResumePoint

class Observer:
    """What a `generate` or `resume` call tells its caller besides the run's events. Each hook
    does nothing here: subclass and override those you need."""

    def loading(self, models: str) -> None:
        """The run starts to take its models (loading those not held yet) and to plan its
        memory; `models` names them, with their size and whether they are bundled, cached or
        to download."""

    def loaded(self, models: str, seconds: float) -> None:
        """The models are ready and the memory planned, `seconds` after `loading`."""

    def started(self, run: Run) -> Sequence[Callback]:
        """The run is built and its loop starts next: `run.memory` is its memory plan (None
        with plan_memory off), `run.engine` its loop. Returns more callbacks for its events."""
        return ()

    def ended(self, run: Run) -> None:
        """The loop has ended: finished, stopped or raising (a video is written after this)."""


def generate(prompt: str = "", *, preset: str | None = None, config_files: Sequence[str | Path] = (),
             from_image: str | Path | None = None, video: str | None = None, fps: float = 12.0,
             callbacks: Sequence[Callback] = (), models: Models | None = None,
             observer: Observer | None = None, stop: StopSwitch | None = None,
             **settings: Any) -> GenerateResult:
    """Make one image (or `batch_size` images, or the best of `candidates`) and return where it
    landed and how it went.

    Settings merge as on the command line: defaults < the settings `from_image` (an image vqclip
    wrote) records < `preset` < `config_files` < `settings`. With `video` ("mp4", "gif" or
    "webp") each image's frames also become `progress.<video>` in its run folder at `fps`
    (`result.video`); unless save_every is set above the defaults and preset, enough frames are
    saved for a video of at least 2 s. Each callback sees the run's events (StepEvent,
    ImageEvent, DoneEvent, ...) as they happen; `observer` hears of the stages around them
    and `stop.request()` (from a signal handler or another thread) ends the loop after its
    step, the images and state saved. `models` (from `load_models`) are used where they are
    the run's, and whatever else the run needs is loaded into them; None: the run loads its
    own and frees them when it returns. A bad setting, a missing input image, an unknown model
    or a size the VQGAN cannot draw raises a UsageError (ConfigError, ModelError) before any
    model is loaded or downloaded, where the model's config or registry entry says its size
    factor; otherwise the size is checked once the model has loaded."""
    from vqclip.outputs.video import check_video
    from vqclip.run.request import generate_config, recalled_settings

    if video is not None:
        check_video(video, fps)
    recalled = recalled_settings(from_image) if from_image is not None else None
    cfg, provenance = generate_config(preset=preset, config_files=config_files,
                                      flags=_flags(prompt, settings), recalled=recalled,
                                      video_fps=fps if video is not None else None,
                                      flags_source="vqclip.generate keyword arguments")
    return generate_from_config(cfg, provenance, video=video, fps=fps, callbacks=callbacks,
                                models=models, observer=observer, stop=stop)


def generate_from_config(cfg: DictConfig, provenance: dict[str, str] | None = None, *,
                         video: str | None = None, fps: float = 12.0,
                         callbacks: Sequence[Callback] = (), models: Models | None = None,
                         observer: Observer | None = None,
                         stop: StopSwitch | None = None) -> GenerateResult:
    """`generate` for a config already merged (by `vqclip.run.request.generate_config`, which
    names where each key came from in `provenance`): checked, then made as `generate` makes it."""
    from vqclip.outputs.video import add_videos, check_video
    from vqclip.run.prepare import prepare

    if video is not None:
        check_video(video, fps)
    result = _execute(prepare(cfg, provenance), models, callbacks=callbacks, observer=observer,
                      stop=stop)
    if video is not None:
        add_videos(result, video, fps)
    return result


def resume(run_dir: str | Path, *, steps: int | None = None, device: str | None = None,
           callbacks: Sequence[Callback] = (), models: Models | None = None,
           observer: Observer | None = None, stop: StopSwitch | None = None) -> GenerateResult:
    """Continue the run in `run_dir` from its state.pt, in that folder, to `steps` in all (by
    default the run's own) on `device` (by default the run's own; only on the kind of device it
    ran on). The folder is locked while it runs; a folder in use, without a readable state, or
    a finished run that `steps` does not take further is a UsageError that changes nothing.
    `callbacks`, `models`, `observer` and `stop` are `generate`'s."""
    from vqclip.run.prepare import prepare
    from vqclip.run.resume import ResumePoint

    point = ResumePoint.load(Path(run_dir))
    try:
        spec = prepare(point.config(steps=steps, device=device))
    except BaseException:
        point.lock.release()  # the run folder is free again for a corrected call
        raise
    return _execute(spec, models, resume=point, callbacks=callbacks, observer=observer, stop=stop)


def _execute(spec: RunSpec, models: Models | None, *, resume: ResumePoint | None = None,
             callbacks: Sequence[Callback], observer: Observer | None,
             stop: StopSwitch | None) -> GenerateResult:
    """Build the run (telling `observer`), then execute it where `stop` reaches it."""
    from vqclip.models.loading import describe_models
    from vqclip.run.build import build  # torch and the models: only for a run that is sound

    told = observer or Observer()
    try:
        described = describe_models(spec.config) if observer is not None else ""
        told.loading(described)
        began = time.monotonic()
        run = build(spec, models, resume=resume)
        told.loaded(described, time.monotonic() - began)
    except BaseException:
        if resume is not None:
            resume.lock.release()  # the run folder is free again for a corrected call
        raise
    if stop is not None:
        stop.current = run
        if stop.requested:
            run.request_stop()
    try:
        return run.execute([*callbacks, *told.started(run)])
    finally:
        if stop is not None:
            stop.current = None
        told.ended(run)


def load_models(*, preset: str | None = None, config_files: Sequence[str | Path] = (),
                **settings: Any) -> Models:
    """Load the models a `generate` call with these settings would (its VQGAN, each CLIP, on its
    device), once, to pass to many `generate(..., models=...)` calls.

    The settings are checked as `generate` checks them, the prompt aside, before any model is
    loaded or downloaded."""
    from vqclip.device import resolve_device
    from vqclip.run.config import validate
    from vqclip.run.prepare import check_models
    from vqclip.run.request import generate_config

    cfg, provenance = generate_config(preset=preset, config_files=config_files,
                                      flags=_flags("", settings),
                                      flags_source="vqclip.load_models keyword arguments")
    validate(cfg, provenance)
    check_models(cfg)
    return Models().load(cfg, resolve_device(cfg.device))


def _flags(prompt: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The keyword settings as config flags: the prompt, and `size` also as "64x64"."""
    from vqclip.run.config import parse_size

    if isinstance(settings.get("size"), str):  # "64x64", as --size takes it
        settings["size"] = parse_size(settings["size"], "size")
    return {"prompt": prompt or None, **settings}


def classify(images: Sequence[str | Path], labels: Sequence[str] = (), *,
             labels_file: str | Path | None = None, templates: Sequence[str] = (), top: int = 5,
             batch_size: int = 32, model: str | None = None, pretrained: str | None = None,
             device: str | None = None, preset: str | None = None,
             config_files: Sequence[str | Path] = (), sets: Sequence[str] = (),
             on_progress: ProgressCallback | None = None) -> ClassifyResult:
    """Zero-shot: the `top` most probable of `labels` and those of `labels_file` (one a line;
    blank lines and lines starting with # skipped) for each image (0: all of them); the text
    embeddings of several `templates` ("a photo of a {}.") are averaged per label.

    `images` are files, folders (recursive) or globs, as the command takes them. The CLIP is
    the one its settings name (see `task_clip`: `preset` < `config_files` < `model`,
    `pretrained`, `device` < `sets`, KEY=VALUE items as -s takes them). The inputs (images
    found, labels, templates, top, batch size), then the CLIP as its config describes it, are
    checked before it is loaded or downloaded: the first mistake raises a UsageError
    (ConfigError, ModelError) naming it. An image that cannot be decoded is skipped (listed in
    `result.skipped`). `on_progress(done, total)` hears of the images embedded."""
    from vqclip.tasks.classify import check_labels, classify_images, read_labels_file
    from vqclip.tasks.common import check_batch_size, check_templates, check_top, find_images

    paths = find_images(images)
    from_file = read_labels_file(labels_file) if labels_file is not None else []
    labels = check_labels([*labels, *from_file])
    templates = check_templates(templates)
    check_top(top)
    check_batch_size(batch_size)
    clip = task_clip(model=model, pretrained=pretrained, device=device, preset=preset,
                     config_files=config_files, sets=sets, source="vqclip.classify keyword arguments")
    perceptor, info = clip.load()
    return classify_images(perceptor, info, paths, labels, templates=templates, top=top,
                           batch_size=batch_size, on_progress=on_progress)


def search(folder: str | Path, *, text: str | None = None, image: str | Path | None = None,
           top: int = 10, sheet: str | Path | None = None, index_dir: str | Path | None = None,
           batch_size: int = 32, model: str | None = None, pretrained: str | None = None,
           device: str | None = None, preset: str | None = None,
           config_files: Sequence[str | Path] = (), sets: Sequence[str] = (),
           on_progress: ProgressCallback | None = None) -> SearchResult:
    """The images of `folder` (recursive) most like `text` or `image`, best first (`top` 0:
    all), indexed once, then kept up to date in `index_dir`/<model-key>/ (by default the
    folder's .vqclip-index); with `sheet`, their contact sheet is also written there.

    The CLIP is chosen and checked as `classify`'s, after the inputs: exactly one query, of
    text that is not blank or of an image file that exists, `top`, a folder that holds images,
    a `sheet` that is not a folder, the batch size. `on_progress(done, total)` hears of the
    files read for the index."""
    from vqclip.tasks.common import check_batch_size
    from vqclip.tasks.search import check_search, rank_folder

    query = check_search(folder, text=text, image=image, top=top, sheet=sheet)
    check_batch_size(batch_size)
    clip = task_clip(model=model, pretrained=pretrained, device=device, preset=preset,
                     config_files=config_files, sets=sets, source="vqclip.search keyword arguments")
    perceptor, info = clip.load()
    return rank_folder(perceptor, info, query, index_dir=index_dir, batch_size=batch_size,
                       on_progress=on_progress)


def score(images: Sequence[str | Path], prompts: Sequence[str], *, batch_size: int = 32,
          model: str | None = None, pretrained: str | None = None, device: str | None = None,
          preset: str | None = None, config_files: Sequence[str | Path] = (),
          sets: Sequence[str] = (), on_progress: ProgressCallback | None = None) -> ScoreResult:
    """CLIP's cosine similarity of each image (files, folders or globs) with each prompt. The
    CLIP is chosen and checked as `classify`'s, after the inputs: images found, at least one
    prompt and none blank, the batch size."""
    from vqclip.tasks.common import check_batch_size, find_images
    from vqclip.tasks.score import check_prompts, score_images

    paths = find_images(images)
    prompts = check_prompts(prompts)
    check_batch_size(batch_size)
    clip = task_clip(model=model, pretrained=pretrained, device=device, preset=preset,
                     config_files=config_files, sets=sets, source="vqclip.score keyword arguments")
    perceptor, info = clip.load()
    return score_images(perceptor, info, paths, prompts, batch_size=batch_size,
                        on_progress=on_progress)

"""Zoom videos: a chain of short runs, each started from the last image zoomed, panned, rotated."""

from __future__ import annotations

import copy
import io
import math
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from vqclip.errors import UsageError
from vqclip.files import atomic_write
from vqclip.models.held import Models
from vqclip.outputs.video import check_video, write_video
from vqclip.run.config import MAX_SIDE
from vqclip.run.prepare import prepare
from vqclip.series.items import StopSwitch, new_series_dir, run_one
from vqclip.series.manifest import MANIFEST_NAME, Manifest

if TYPE_CHECKING:
    from vqclip.run.events import Callback


@dataclass
class ZoomResult:
    """A finished (or interrupted) zoom: its folder, frames, per-frame runs and video."""

    folder: Path
    frames: list[Path]
    run_dirs: list[Path]
    video: Path | None
    manifest: Path
    prompt: str
    seed: int
    interrupted: bool = False
    final_losses: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The --json object of `vqclip zoom`."""
        return {"folder": str(self.folder), "video": str(self.video) if self.video else None,
                "frames": [str(p) for p in self.frames], "run_dirs": [str(p) for p in self.run_dirs],
                "manifest": str(self.manifest), "prompt": self.prompt, "seed": self.seed,
                "final_losses": [round(x, 6) for x in self.final_losses],
                "interrupted": self.interrupted}


def zoom_transform(image: Image.Image, *, zoom: float = 1.0, pan: tuple[float, float] = (0.0, 0.0),
                   rotate: float = 0.0) -> Image.Image:
    """Move the view: magnify by `zoom` about the centre, move it by `pan` pixels, turn it.

    `zoom` > 1 zooms in; `pan` (dx, dy) moves the view right and down (the picture slides
    left and up); `rotate` turns the picture counter-clockwise by that many degrees. Areas
    that come into view from outside the image are filled by mirroring its edges.
    """
    if not 0.1 <= zoom <= 10:
        raise UsageError(f"zoom {zoom:g} must be between 0.1 and 10")
    if not all(abs(shift) <= MAX_SIDE for shift in pan):
        raise UsageError(f"pan {pan[0]:g} {pan[1]:g}: each must be a number of pixels between "
                         f"-{MAX_SIDE} and {MAX_SIDE}")
    if not math.isfinite(rotate):
        raise UsageError(f"rotate {rotate:g} must be a number of degrees")
    width, height = image.size
    dx, dy = pan
    # enough mirrored margin for any pixel the view can reach: zoomed-out, panned and turned
    reach = math.hypot(width, height) / 2 / min(zoom, 1.0) + abs(dx) + abs(dy)
    margin = math.ceil(max(0.0, reach - min(width, height) / 2)) + 2
    padded = np.pad(np.asarray(image.convert("RGB")), ((margin, margin), (margin, margin), (0, 0)),
                    mode="symmetric")
    source = Image.fromarray(padded)
    # output pixel p samples the source at centre + R(angle) (p - centre) / zoom + pan
    angle = math.radians(rotate)
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    cx, cy = width / 2, height / 2
    matrix = (cos, -sin, cx + margin + dx - cos * cx + sin * cy,
              sin, cos, cy + margin + dy - sin * cx - cos * cy)
    return source.transform((width, height), Image.Transform.AFFINE, matrix,
                            resample=Image.Resampling.BICUBIC)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def run_zoom(
    cfg: DictConfig,
    *,
    frames: int,
    steps_per_frame: int,
    zoom: float = 1.05,
    pan: tuple[float, float] = (0.0, 0.0),
    rotate: float = 0.0,
    first_steps: int | None = None,
    fps: float = 12,
    video: str | None = "zoom.mp4",
    folder: Path | None = None,
    callbacks: Iterable[Callback] = (),
    report: Callable[[dict[str, Any]], None] | None = None,
    stop: StopSwitch | None = None,
) -> ZoomResult:
    """Run `frames` short generations, each from the previous image moved by zoom/pan/rotate.

    One folder holds the whole zoom: `frames/NNNNNN.png`, the moved `init/NNNNNN.png` each
    frame started from, every frame's own run folder, `manifest.jsonl` and the video.
    Frame 0 runs `first_steps` (default `steps_per_frame`) from the config's own start;
    frame i uses seed + i.
    """
    if frames < 1:
        raise UsageError(f"--frames {frames}: must be at least 1")
    if steps_per_frame < 1 or (first_steps is not None and first_steps < 1):
        raise UsageError("steps per frame must be at least 1")
    if video is not None:
        check_video(Path(video).suffix, fps)
    zoom_transform(Image.new("RGB", (2, 2)), zoom=zoom, pan=pan, rotate=rotate)  # before any run
    prepare(cfg)  # frame 0's prompts, input images and models, before the folder is made
    seed = cfg.seed if cfg.seed is not None else secrets.randbelow(2**31)
    folder = Path(folder) if folder is not None else new_series_dir(cfg.out, "zoom", cfg.prompt)
    (folder / "frames").mkdir(parents=True)
    (folder / "init").mkdir()
    manifest = Manifest(folder / MANIFEST_NAME)
    manifest.append({"event": "zoom", "prompt": cfg.prompt, "seed": seed, "frames": frames,
                     "steps_per_frame": steps_per_frame, "first_steps": first_steps, "zoom": zoom,
                     "pan": list(pan), "rotate": rotate})
    result = ZoomResult(folder, [], [], None, manifest.path, cfg.prompt, seed)
    init_image = cfg.init_image
    models = Models()  # every frame runs with the same models, loaded once
    for index in range(frames):
        frame_cfg = copy.deepcopy(cfg)
        frame_cfg.seed = seed + index
        frame_cfg.steps = first_steps if index == 0 and first_steps else steps_per_frame
        frame_cfg.init_image = init_image
        frame_cfg.out = str(folder)
        run = run_one(frame_cfg, callbacks, stop, models=models)
        frame = folder / "frames" / f"{index:06d}.png"
        with Image.open(run.image) as final:
            final_image = final.convert("RGB")
        atomic_write(frame, _png(final_image))
        result.frames.append(frame)
        result.run_dirs.append(Path(run.run_dir))
        result.final_losses.append(run.final_loss)
        record = {"index": index, "seed": run.seed, "steps": run.steps,
                  "init_image": init_image, "image": str(frame.resolve()),
                  "run_dir": str(Path(run.run_dir).resolve()), "final_loss": round(run.final_loss, 6),
                  "status": "interrupted" if run.interrupted else "ok"}
        manifest.append(record)
        if report is not None:
            report(record)
        if run.interrupted or (stop is not None and stop.requested):
            result.interrupted = True
            break
        if index + 1 < frames:
            moved = zoom_transform(final_image, zoom=zoom, pan=pan, rotate=rotate)
            next_init = folder / "init" / f"{index + 1:06d}.png"
            atomic_write(next_init, _png(moved))
            init_image = str(next_init.resolve())
    if video is not None:
        result.video = write_video(result.frames, folder / video, fps=fps)
    return result

"""What one generate asks for, as its config: the settings of a --from image under the other
sources, and enough saved frames for a --video."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vqclip.run.config import build_config

log = logging.getLogger(__name__)


def recalled_settings(image: str | Path, warn: Callable[[str], None] = log.warning) -> dict[str, Any]:
    """The generation settings `image` records, to run again; never where to write (`out`):
    that is the config's or -o's, not the image's. `warn` hears of each input file (init image,
    image prompt) that has changed since the image was made."""
    from vqclip.files import cached_sha256
    from vqclip.outputs.metadata import read_record

    record = read_record(Path(image))
    inputs = record.get("inputs")
    for path, digest in (inputs.items() if isinstance(inputs, dict) else ()):
        if not Path(str(path)).is_file():
            continue  # the run itself says that the file is missing
        if cached_sha256(path) != digest:
            warn(f"{path} has changed since {image} was made; the new run uses it as it is now")
    config = record["config"]
    config.pop("out", None)
    return config


def generate_config(
    *,
    preset: str | None = None,
    config_files: Sequence[str | Path] = (),
    flags: dict[str, Any] | None = None,
    dotlist: Sequence[str] = (),
    sweep: Sequence[str] = (),
    recalled: dict[str, Any] | None = None,
    video_fps: float | None = None,
    flags_source: str = "command-line flags",
) -> tuple[DictConfig, dict[str, str]]:
    """The config of one generate and where each key came from (build_config's layers, with
    the `recalled` settings of a --from image at the bottom). With `video_fps`, unless a layer
    above the defaults and the preset chose save_every, enough frames are saved for a video of
    at least MIN_VIDEO_SECONDS at that rate."""

    def build(extra: Sequence[str] = ()) -> tuple[DictConfig, dict[str, str]]:
        return build_config(preset=preset, config_files=list(config_files), flags=flags,
                            dotlist=[*dotlist, *extra], base=recalled, sweep=list(sweep),
                            flags_source=flags_source)

    cfg, provenance = build()
    chosen = provenance["save_every"]
    if video_fps is None or (chosen != "defaults" and not chosen.startswith("preset ")):
        return cfg, provenance
    from vqclip.outputs.video import frame_interval

    return build([f"save_every={frame_interval(cfg.steps, video_fps)}"])

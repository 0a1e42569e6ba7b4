"""Videos from run frames: MP4 (H.264), GIF or WebP, written atomically and verified after."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from vqclip.errors import UsageError, VqclipError
from vqclip.files import atomic_path
from vqclip.suggest import unknown_name

if TYPE_CHECKING:
    from vqclip.run.execute import GenerateResult

log = logging.getLogger(__name__)

FORMATS = (".mp4", ".gif", ".webp")
_FRAME_NAME = re.compile(r"^(\d+)\.png$")


MIN_VIDEO_SECONDS = 2.0
MAX_FPS = 240


def video_suffix(video: str) -> str:
    """The file suffix of video format `video` ("mp4", or ".mp4" as a file name ends); a
    UsageError naming the valid formats for any other."""
    suffix = "." + video.lower().lstrip(".")
    if suffix not in FORMATS:
        raise UsageError(unknown_name("video", video.lstrip("."), [f.lstrip(".") for f in FORMATS]))
    return suffix


def check_fps(fps: float) -> None:
    """Refuse a frame rate outside (0, MAX_FPS]."""
    if not 0 < fps <= MAX_FPS:
        raise UsageError(f"fps={fps:g}: must be above 0 and at most {MAX_FPS}")


def check_video(video: str, fps: float) -> None:
    """Refuse a video that could not be written, before any work: its format (video_suffix),
    its frame rate (check_fps)."""
    video_suffix(video)
    check_fps(fps)


def frame_interval(steps: int, fps: float, seconds: float = MIN_VIDEO_SECONDS) -> int:
    """The save_every that gives a video of `steps` steps at least `seconds` at `fps` (where it can)."""
    return max(1, steps // math.ceil(seconds * fps))


def frames_of(run_dir: Path) -> list[Path]:
    """A run's frames in step order (`frames/NNNNNN.png`), then `final.png` if present."""
    run_dir = Path(run_dir)
    folder = run_dir / "frames"
    numbered = []
    if folder.is_dir():
        numbered = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _FRAME_NAME.match(p.name))]
    frames = [path for _, path in sorted(numbered)]
    final = run_dir / "final.png"
    if final.is_file():
        frames.append(final)
    return frames


def progress_videos(run_dirs: list[Path], video: str, fps: float) -> list[Path]:
    """A `progress.<video>` from the frames of each run folder."""
    return [write_video(frames_of(run_dir), Path(run_dir) / f"progress{video_suffix(video)}", fps=fps)
            for run_dir in run_dirs]


def add_videos(result: GenerateResult, video: str, fps: float) -> None:
    """Write the progress video of every image of `result` (each image of a batch) into its run
    folder, and note each one's path as its `video`."""
    images = result.batch or [result]
    for image, path in zip(images, progress_videos([each.run_dir for each in images], video, fps),
                           strict=True):
        image.video = path
    result.video = images[0].video


def write_video(
    frames: list[Path],
    out: Path,
    *,
    fps: float = 12,
    seconds: float | None = None,
    hold: float = 1.0,
) -> Path:
    """Encode frames into `out` (format from its suffix), holding the last frame `hold` seconds.

    With `seconds`, the whole video lasts that long: the hold takes at most a quarter of it and
    the frames share the rest evenly (this replaces `fps`).
    """
    out = Path(out)
    suffix = video_suffix(out.suffix)
    if not frames:
        raise VqclipError(f"video {out}: no frames to write")
    if out.exists():
        raise VqclipError(f"video {out} already exists; not overwriting it")
    fps, hold = _timing(len(frames), fps, seconds, hold)
    images = _load_frames(frames)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VqclipError(f"cannot write video {out}: {err.strerror or err}") from None
    try:
        with atomic_path(out) as tmp:  # keeps the suffix: ffmpeg picks the container from it
            expected = _ENCODERS[suffix](images, tmp, fps, hold)
            _verify(tmp, suffix, expected, out)
    except FileExistsError:  # someone else finished the same name meanwhile
        raise VqclipError(f"video {out} already exists; not overwriting it") from None
    except VqclipError:
        raise
    except Exception as err:  # ffmpeg, Pillow and the OS raise many kinds; the user needs one line
        raise VqclipError(f"cannot write video {out}: {type(err).__name__}: {err}") from err
    return out


def _timing(count: int, fps: float, seconds: float | None, hold: float) -> tuple[float, float]:
    """Frames per second and hold seconds, from either fps or a total length."""
    if hold < 0:
        raise UsageError(f"video: hold {hold} must be 0 or more seconds")
    if seconds is not None:
        if seconds <= 0:
            raise UsageError(f"video: length {seconds} must be positive seconds")
        hold = min(hold, seconds / 4)
        fps = count / (seconds - hold)
    check_fps(fps)
    return fps, hold


def _load_frames(frames: list[Path]) -> list[np.ndarray]:
    """Read frames as RGB arrays, all at the first frame's size (later ones resized to it)."""
    images: list[np.ndarray] = []
    size: tuple[int, int] | None = None
    for path in frames:
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except OSError as err:
            raise VqclipError(f"video: cannot read frame {path}: {err}") from None
        if size is None:
            size = rgb.size
        elif rgb.size != size:
            log.warning("frame %s is %dx%d, resized to %dx%d", path, *rgb.size, *size)
            rgb = rgb.resize(size, Image.Resampling.LANCZOS)
        images.append(np.asarray(rgb))
    return images


def _even(image: np.ndarray) -> np.ndarray:
    """Pad an odd width or height by one repeated edge pixel: yuv420p needs even sides."""
    height, width = image.shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    return np.pad(image, pad, mode="edge") if any(p[1] for p in pad) else image


def _encode_mp4(images: list[np.ndarray], path: Path, fps: float, hold: float) -> int:
    """H.264 in yuv420p through imageio-ffmpeg's bundled ffmpeg; returns the frame count."""
    import imageio_ffmpeg

    frames = [np.ascontiguousarray(_even(image)) for image in images]
    frames += [frames[-1]] * round(hold * fps)
    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
        quality=None, macro_block_size=1, ffmpeg_log_level="error",
        output_params=["-crf", "18", "-movflags", "+faststart"],
    )
    writer.send(None)  # start ffmpeg
    try:
        for frame in frames:
            writer.send(frame)
    finally:
        writer.close()
    return len(frames)


def _durations(count: int, fps: float, hold: float) -> list[int]:
    """Per-frame milliseconds; the last frame also carries the hold."""
    step = 1000.0 / fps
    # accumulate before rounding so that rounding errors do not add up over many frames
    edges = [round(i * step) for i in range(count + 1)]
    durations = [b - a for a, b in zip(edges, edges[1:], strict=False)]
    durations[-1] += round(hold * 1000)
    return durations


def _encode_pillow(images: list[np.ndarray], path: Path, fps: float, hold: float, fmt: str) -> int:
    """Animated GIF or WebP through Pillow; returns the total length in milliseconds."""
    pictures = [Image.fromarray(image) for image in images]
    durations = _durations(len(pictures), fps, hold)
    options: dict = {"loop": 0, "duration": durations if len(pictures) > 1 else durations[0]}
    if fmt == "WEBP":
        options.update(quality=90, method=4)
    pictures[0].save(path, format=fmt, save_all=True, append_images=pictures[1:], **options)
    return sum(durations)


_ENCODERS: dict[str, Callable[[list[np.ndarray], Path, float, float], int]] = {
    ".mp4": _encode_mp4,
    ".gif": lambda images, path, fps, hold: _encode_pillow(images, path, fps, hold, "GIF"),
    ".webp": lambda images, path, fps, hold: _encode_pillow(images, path, fps, hold, "WEBP"),
}


def _verify(path: Path, suffix: str, expected: int, out: Path) -> None:
    """Decode the written file: an empty, unreadable or short video is an error, never a result."""
    if not path.exists() or path.stat().st_size == 0:
        raise VqclipError(f"video {out}: the encoder wrote an empty file")
    if suffix == ".mp4":
        import imageio_ffmpeg

        try:
            count, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
        except Exception as err:  # noqa: BLE001 - any decode failure means a broken file
            raise VqclipError(f"video {out}: the written file does not decode: {err}") from None
        if count != expected:
            raise VqclipError(f"video {out}: decodes to {count} frames, expected {expected}")
        return
    # GIF and WebP encoders merge identical consecutive frames into one longer frame, so the
    # check is the total length (GIF stores 10 ms units: allow that rounding per frame).
    try:
        with Image.open(path) as image:
            count = getattr(image, "n_frames", 1)
            total = 0
            for index in range(count):
                image.seek(index)
                image.load()
                total += int(image.info.get("duration", 0))
    except Exception as err:  # noqa: BLE001 - any decode failure means a broken file
        raise VqclipError(f"video {out}: the written file does not decode: {err}") from None
    if count == 1 and total == 0:
        return  # all frames were identical: WebP stores a still image, which is right
    if abs(total - expected) > 10 * count:
        raise VqclipError(f"video {out}: decodes to {count} frames lasting {total} ms, "
                          f"expected {expected} ms")


def video_frame_count(path: Path) -> int:
    """How many frames a written video decodes to (MP4 via ffmpeg, GIF/WebP via Pillow)."""
    path = Path(path)
    if path.suffix.lower() == ".mp4":
        import imageio_ffmpeg

        return imageio_ffmpeg.count_frames_and_secs(str(path))[0]
    with Image.open(path) as image:
        return getattr(image, "n_frames", 1)

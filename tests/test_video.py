"""Videos decode with the frames they should have; zoom chains runs into frames and a video."""

from __future__ import annotations

import json
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from vqclip.cli.runs import register
from vqclip.errors import VqclipError
from vqclip.outputs import video
from vqclip.outputs.video import frames_of, video_frame_count, write_video
from vqclip.series.zoom import zoom_transform

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


def make_frames(folder: Path, count: int, size: tuple[int, int] = (31, 33)) -> list[Path]:
    """Distinct random frames of an odd size."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"{index:06d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_mp4_with_odd_size_decodes_with_every_frame_and_the_hold(tmp_path) -> None:
    frames = make_frames(tmp_path / "f", 4)
    out = write_video(frames, tmp_path / "v.mp4", fps=10, hold=0.5)
    assert video_frame_count(out) == 4 + 5  # half a second of the last frame at 10 fps
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    reader.close()
    assert tuple(meta["size"]) == (32, 34)  # padded to even sides for yuv420p
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f", "v.mp4"]  # no temp file left


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_gif_and_webp_have_the_frames_and_hold_the_last(tmp_path, suffix: str) -> None:
    frames = make_frames(tmp_path / "f", 3)
    out = write_video(frames, tmp_path / f"v{suffix}", fps=10, hold=1.0)
    assert video_frame_count(out) == 3
    with Image.open(out) as image:
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            image.load()  # WebP sets the duration when the frame is decoded
            durations.append(image.info["duration"])
    assert durations == [100, 100, 1100]


def test_total_length_sets_the_frame_rate(tmp_path) -> None:
    frames = make_frames(tmp_path / "f", 6)
    out = write_video(frames, tmp_path / "v.gif", seconds=2.0, hold=0.5)
    with Image.open(out) as image:
        total = 0
        for index in range(image.n_frames):
            image.seek(index)
            total += image.info["duration"]
    assert abs(total - 2000) <= 10 * 6


def test_no_frames_unwritable_place_and_existing_file_are_errors(tmp_path) -> None:
    frames = make_frames(tmp_path / "f", 2)
    with pytest.raises(VqclipError, match="no frames"):
        write_video([], tmp_path / "v.mp4")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(VqclipError, match="cannot write"):
        write_video(frames, blocker / "v.mp4")
    existing = tmp_path / "old.gif"
    existing.write_bytes(b"keep me")
    with pytest.raises(VqclipError, match="already exists"):
        write_video(frames, existing)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(VqclipError, match=r"^video='avi': unknown name; valid: mp4, gif, webp$"):
        write_video(frames, tmp_path / "v.avi")


def test_an_empty_or_short_encoder_result_is_an_error_not_a_file(tmp_path, monkeypatch) -> None:
    frames = make_frames(tmp_path / "f", 2)
    monkeypatch.setitem(video._ENCODERS, ".mp4", lambda images, path, fps, hold: len(images))
    with pytest.raises(VqclipError, match="empty file"):
        write_video(frames, tmp_path / "v.mp4")
    assert not (tmp_path / "v.mp4").exists()

    def one_frame_short(images, path, fps, hold):
        return video._encode_mp4(images, path, fps, hold) + 1

    monkeypatch.setitem(video._ENCODERS, ".mp4", one_frame_short)
    with pytest.raises(VqclipError, match="expected"):
        write_video(frames, tmp_path / "v.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_frames_of_sorts_by_step_and_puts_final_last(tmp_path) -> None:
    (tmp_path / "frames").mkdir()
    for name in ["000100.png", "000002.png", "000010.png", ".000200.png.x.tmp", "notes.txt"]:
        (tmp_path / "frames" / name).write_bytes(b"")
    (tmp_path / "final.png").write_bytes(b"")
    assert [p.name for p in frames_of(tmp_path)] == ["000002.png", "000010.png", "000100.png",
                                                     "final.png"]
    assert frames_of(tmp_path / "missing") == []


def test_zoom_transform_moves_the_view() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    assert np.array_equal(np.asarray(zoom_transform(image)), pixels)
    panned = np.asarray(zoom_transform(image, pan=(5, 0))).astype(int)
    assert np.abs(panned[:, :30] - pixels[:, 5:35]).max() == 0  # view right: picture slides left
    turned = np.asarray(zoom_transform(image, rotate=90)).astype(int)
    assert np.abs(turned - np.rot90(pixels, 1)).max() <= 1  # counter-clockwise
    assert zoom_transform(image, zoom=0.5, rotate=30).size == (40, 40)


def test_zoom_makes_frames_runs_and_a_video(tiny_sets, tmp_path) -> None:
    app = typer.Typer()
    register(app)
    sets = [item for s in tiny_sets for item in ("-s", s)]
    result = runner.invoke(app, [
        "zoom", "a red circle", "--frames", "3", "--steps-per-frame", "2", "--steps", "2",
        "--zoom", "1.1", "--pan", "2", "1", "--rotate", "3", "--size", "32x32", "--seed", "5",
        "--cutn", "2", "--fps", "4", "-o", str(tmp_path), "--json", *sets, "-s", "save_every=0",
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    folder = Path(data["folder"])
    assert folder.parent.parent == tmp_path and "-zoom-a-red-circle" in folder.name
    assert sorted(p.name for p in (folder / "frames").iterdir()) == [
        "000000.png", "000001.png", "000002.png"]
    assert sorted(p.name for p in (folder / "init").iterdir()) == ["000001.png", "000002.png"]
    assert len(data["run_dirs"]) == 3 and all((Path(d) / "final.png").is_file() for d in data["run_dirs"])
    assert video_frame_count(Path(data["video"])) == 3 + 4  # plus one second of hold at 4 fps
    lines = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert lines[0]["event"] == "zoom"
    assert [line["seed"] for line in lines[1:]] == [5, 6, 7]
    assert lines[2]["init_image"] == str((folder / "init" / "000001.png").resolve())

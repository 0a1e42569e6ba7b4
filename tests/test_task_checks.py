"""classify, search and score name a bad input or a bad CLIP in one line, exit 2, before any
model is loaded or downloaded: the default CLIP is not cached, the commands run offline, and
every loader and downloader fails if it is called."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import vqclip
from tests.test_models_stage import nothing_loads  # noqa: F401 - the fixture used below
from vqclip.cli import app
from vqclip.errors import UsageError

pytestmark = pytest.mark.usefixtures("nothing_loads")
runner = CliRunner()
UNKNOWN_MODEL = "clip.model='ViT-Q-99': unknown name; did you mean 'ViT-S-32'"


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    """An image in a folder, an empty folder, and a path where nothing is."""
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "photos" / "red.png")
    (tmp_path / "empty").mkdir()
    return {"img": str(tmp_path / "photos" / "red.png"), "dir": str(tmp_path / "photos"),
            "empty": str(tmp_path / "empty"), "missing": str(tmp_path / "missing")}


def invoke(args: list[str], places: dict[str, str]):
    return runner.invoke(app, [arg.format(**places) for arg in args] + ["--offline"])


def error_line(args: list[str], places: dict[str, str]) -> str:
    result = invoke(args, places)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0].removeprefix("error: ")


@pytest.mark.parametrize(("args", "message"), [
    (["classify", "{img}", "-l", "a", "-l", "b", "-s", "clip.model=ViT-Q-99"], UNKNOWN_MODEL),
    (["search", "a cat", "{dir}", "-s", "clip.model=ViT-Q-99"], UNKNOWN_MODEL),
    (["score", "{img}", "-p", "a", "-s", "clip.model=ViT-B-32", "-s", "clip.pretrained=nosuch"],
     "clip.pretrained='nosuch': unknown name; valid: openai, "),
    (["classify", "{img}"], "no labels: give at least one with -l/--label or --labels-file"),
    (["classify", "{img}", "-l", "a", "--top", "-1"], "--top -1: must be 0 (all) or more"),
    (["search", "a cat", "{dir}", "--top", "-1"], "--top -1: must be 0 (all) or more"),
    (["search", "a cat", "{missing}"], "folder not found: {missing}"),
    (["search", "--image", "{missing}", "{dir}"], "query image not found: {missing}"),
    (["search", "a cat", "{empty}"], "no images (.png, .jpg, .jpeg, .webp, .bmp, .gif) in folder {empty}"),
    (["score", "{img}"], "no prompts: give at least one with -p/--prompt"),
    (["score", "{empty}", "-p", "a"], "no images (.png, .jpg, .jpeg, .webp, .bmp, .gif) in folder {empty}"),
    (["classify", "{missing}", "-l", "a"], "image not found: {missing}"),
    (["score", "{img}", "-p", "a", "--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["classify", "{img}", "-l", "a", "--device", "tpu"], "device='tpu': expected auto, cpu, cuda"),
])
def test_a_bad_task_names_its_mistake_before_any_model_is_read(places, args, message) -> None:
    line = error_line(args, places)
    assert line.startswith(message.format(**places)), line
    assert "cache" not in line and "download" not in line
    assert not (Path(places["dir"]) / ".vqclip-index").exists()


def test_a_bad_clip_name_reads_as_generates(places, tmp_path) -> None:
    generate = error_line(["generate", "a cat", "-s", "clip.model=ViT-Q-99", "-o", str(tmp_path / "out")],
                          places)
    classify = error_line(["classify", "{img}", "-l", "a", "-l", "b", "-s", "clip.model=ViT-Q-99"], places)
    assert classify == generate


def test_sound_inputs_reach_the_loader(places) -> None:
    """The checks pass what is sound: the default CLIP, described, goes on to load (refused here)."""
    result = invoke(["classify", "{img}", "-l", "a", "-l", "b"], places)
    assert result.exit_code == 1 and "a model loader or downloader was called" in result.stderr


@pytest.mark.parametrize(("call", "message"), [
    (lambda p: vqclip.classify([p["img"]], [], model="ViT-Q-99"), "no labels"),
    (lambda p: vqclip.classify([p["img"]], ["a"], model="ViT-Q-99"), UNKNOWN_MODEL),
    (lambda p: vqclip.search(p["dir"], text="a", image=p["img"]), "search by one query"),
    (lambda p: vqclip.search(p["dir"], text="a", sheet=p["dir"]), "--sheet {dir} is a folder"),
    (lambda p: vqclip.score([p["img"]], ["a", " "]), "a prompt is empty"),
    (lambda p: vqclip.score([p["img"]], ["a"], sets=["clip.model=ViT-Q-99"]), UNKNOWN_MODEL),
])
def test_the_library_checks_before_it_loads(places, call, message) -> None:
    with pytest.raises(UsageError) as raised:
        call(places)
    assert str(raised.value).startswith(message.format(**places)), raised.value

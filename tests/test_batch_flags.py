"""`vqclip batch` takes generate's per-run flags as every line's defaults; a line's own flags win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vqclip.cli.app import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


def test_batch_flags_are_defaults_for_every_line(tiny_sets, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na blue square --steps 1 --seed 9\n")
    sets = [item for s in [*tiny_sets, "cutn=1"] for item in ("-s", s)]
    result = runner.invoke(app, ["batch", str(prompts), "-o", str(tmp_path / "out"), "--steps", "2",
                                 "--seed", "5", "--size", "32x48", "--lr", "0.2", "--save-every", "0",
                                 "--json", *sets])
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.stdout)["items"]
    assert (first["steps"], first["seed"], second["steps"], second["seed"]) == (2, 5, 1, 9)
    for item in (first, second):
        with Image.open(item["image"]) as image:
            assert image.size == (32, 48)
        assert json.loads(Image.open(item["image"]).info["vqclip"])["config"]["lr"] == 0.2


def test_a_bad_batch_flag_is_exit_2_naming_the_flag(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n")
    result = runner.invoke(app, ["batch", str(prompts), "-o", str(tmp_path / "out"), "--steps", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: command-line flags: steps=0: must be at least 1"
    assert not (tmp_path / "out").exists()

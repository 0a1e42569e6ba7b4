"""Other tools read a vqclip PNG: sd-parsers and sd-prompt-reader, as users run them beside it."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from sd_parsers import ParserManager
from sd_prompt_reader.image_data_reader import ImageDataReader
from typer.testing import CliRunner

from vqclip.cli.app import app

runner = CliRunner()
NEGATIVE = "blue | green:0.5"


@pytest.fixture(scope="module")
def image(tiny_sets, tmp_path_factory) -> str:
    """One final PNG with a negative prompt, made on the tiny models."""
    sets = [item for s in tiny_sets for item in ("--set", s)]
    out = tmp_path_factory.mktemp("readers")
    result = runner.invoke(app, ["generate", "a red circle", "--negative", NEGATIVE, *sets, "-o", str(out),
                                 "--steps", "2", "--size", "32x48", "--seed", "5", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["image"]


def test_sd_parsers_reads_prompt_negative_seed_steps_size_and_model(image) -> None:
    vqgan = json.loads(Image.open(image).info["vqclip"])["models"]["vqgan"]

    info = ParserManager().parse(image)
    assert info is not None, "sd-parsers found no generator"
    [sampler] = info.samplers
    assert [p.value for p in sampler.prompts] == ["a red circle"]
    assert [p.value for p in sampler.negative_prompts] == [NEGATIVE]
    assert (sampler.parameters["seed"], sampler.parameters["steps"]) == ("5", "2")
    assert sampler.name == "adam"
    assert info.metadata["Size"] == "32x48"
    assert sampler.model.name == vqgan["name"]
    assert sampler.model.hash == vqgan["checkpoint_sha256"][:10]


def test_sd_prompt_reader_reads_prompt_negative_and_settings(image) -> None:
    reader = ImageDataReader(image)
    assert (reader.positive, reader.negative) == ("a red circle", NEGATIVE)
    settings = reader.parameter
    assert (settings["seed"], settings["steps"], settings["size"]) == ("5", "2", "32x48")


def test_show_prints_the_negative_prompt(image) -> None:
    result = runner.invoke(app, ["show", image])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == ["a red circle", f"Negative prompt: {NEGATIVE}"]

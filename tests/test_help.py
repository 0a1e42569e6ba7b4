"""Help reads as a user types: placeholders such as N and PATH, flags without a value, and only
the options a command has."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from vqclip.cli.app import app

runner = CliRunner()
COMMANDS = [[], ["generate"], ["resume"], ["show"], ["batch"], ["zoom"], ["classify"], ["search"],
            ["score"], ["gallery"], ["models"], ["models", "list"], ["models", "download"],
            ["models", "import"]]


def help_of(command: list[str]) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "vqclip")
def test_help_shows_placeholders_not_python_types(command: list[str]) -> None:
    text = help_of(command)
    assert not re.search(r"<(bool|int|str|float|path|list\[)", text), text
    assert not re.search(r"Usage: .*\{", text), text


def test_generate_help_mentions_only_its_own_options() -> None:
    text = help_of(["generate"])
    assert "--ray" not in text
    assert re.search(r"--steps\s+N\s", text) and re.search(r"--size\s+WxH\s", text)
    assert re.search(r"--preview\s+--no-preview", text)
    assert re.search(r"--low-memory\s+--no-low-memory", text)
    assert "--ray" in help_of(["batch"])  # where it exists, it is documented
    assert "Usage: vqclip batch [OPTIONS] FILE" in help_of(["batch"])
    assert "Usage: vqclip classify [OPTIONS] IMAGE..." in help_of(["classify"])


def test_a_flag_takes_no_value_and_its_no_form_works(tmp_path) -> None:
    result = runner.invoke(app, ["generate", "a", "--no-preview", "true", "--preset", "shape",
                                 "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "unexpected extra argument(s) (true)" in " ".join(result.output.replace("│", " ").split())
    result = runner.invoke(app, ["generate", "a", "--no-low-memory", "--no-preview", "--preset", "shape",
                                 "-o", str(tmp_path)])
    assert result.exit_code == 2  # parsed; the preset typo is what fails
    assert "did you mean 'shapes'" in result.stderr

"""Errors blame their real source and suggest what was meant: --sweep, a YAML line, a library
keyword, a story stage past the last step; exit 2 with one line, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import vqclip
from vqclip.cli.app import app
from vqclip.errors import ConfigError

runner = CliRunner()


def fails_with(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_swept_key_is_blamed_on_the_sweep_with_the_key_it_meant(tmp_path: Path) -> None:
    line = fails_with(["generate", "a cat", "--preset", "shapes", "--seeds", "1", "--sweep",
                       "learning_rate=0.1,0.2", "-o", str(tmp_path)])
    assert line.startswith("error: --sweep: key='learning_rate': unknown name; did you mean 'lr'? valid: ")
    assert not any(tmp_path.iterdir())


def test_a_mistyped_preset_and_set_key_get_a_suggestion(tmp_path: Path) -> None:
    assert fails_with(["generate", "a", "--preset", "shape", "-o", str(tmp_path)]) == \
        "error: preset='shape': unknown name; did you mean 'shapes'? valid: best, draft, normal, shapes"
    assert fails_with(["generate", "a", "-s", "stpes=3", "-o", str(tmp_path)]).startswith(
        "error: --set: key='stpes': unknown name; did you mean 'steps'? valid: augment, ")
    assert "did you mean 'adam'" in fails_with(["generate", "a", "-s", "optimizer.name=adma",
                                                "-o", str(tmp_path)])


def test_a_bad_yaml_indent_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 3\nseed: 1\n  lr: 2\n")
    line = fails_with(["generate", "a", "-c", str(bad), "-o", str(tmp_path)])
    assert line.startswith(f"error: config file {bad}, line 3 ")
    assert "is not valid YAML" in line


def test_a_story_stage_past_the_last_step_names_the_stage_and_the_steps(tmp_path: Path) -> None:
    story = Path(__file__).parents[1] / "configs" / "shapes_story.yaml"
    line = fails_with(["generate", "--preset", "shapes", "-c", str(story), "-s", "steps=40",
                       "-o", str(tmp_path)])
    assert line == (f"error: config file {story}: story stage 2 ('a blue square') starts at step 100, "
                    "but the run has 40 steps (steps=40 from --set)")


def test_the_library_names_the_keyword_and_takes_a_size_as_text() -> None:
    with pytest.raises(ConfigError, match=r"^vqclip\.generate keyword arguments: key='stpes': unknown name; "
                                          r"did you mean 'steps'\? valid: "):
        vqclip.generate("a", preset="shapes", stpes=5)
    with pytest.raises(ConfigError, match=r"^vqclip\.generate keyword arguments: steps=0: must be"):
        vqclip.generate("a", preset="shapes", size="64x64", steps=0)  # the size text is accepted
    with pytest.raises(ConfigError, match=r"^size '64by64': expected WIDTHxHEIGHT"):
        vqclip.generate("a", preset="shapes", size="64by64")

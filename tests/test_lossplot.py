"""Loss plots: the log read back (switches, resumes, repeated steps) and loss.svg in every run folder."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vqclip.cli.app import app
from vqclip.outputs.lossplot import Curve, loss_svg, read_log, run_plot

SVG = "{http://www.w3.org/2000/svg}"
pytestmark = pytest.mark.usefixtures("one_thread")


def write_log(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(t if isinstance(t, str) else json.dumps(t) for t in lines) + "\n")
    return path


def test_read_log_keeps_the_last_loss_of_a_step_and_adds_up_resumed_time(tmp_path) -> None:
    log = read_log(write_log(tmp_path / "log.jsonl", [
        {"step": 0, "loss": 1.0, "seconds": 1.0},
        {"event": "prompt_switch", "step": 1, "prompt": "a blue square"},
        {"step": 1, "loss": 0.9, "seconds": 2.0},
        {"step": 2, "loss": 0.8, "seconds": 3.0},
        '{"step": 3, "loss": 0.',  # torn by a killed run
        {"event": "resume", "step": 2, "steps": 4},
        {"step": 2, "loss": 0.7, "seconds": 0.5},
        {"step": 3, "loss": 0.6, "seconds": 1.5},
    ]))
    assert log.steps == [0, 1, 2, 3]
    assert log.losses == [1.0, 0.9, 0.7, 0.6]
    assert log.switches == [(1, "a blue square")] and log.resumes == [2]
    assert log.seconds == pytest.approx(4.5) and log.final_loss == 0.6


def test_the_svg_marks_switches_and_resumes_and_escapes_text() -> None:
    log = read_log(Path("missing.jsonl"))
    assert log.steps == [] and log.final_loss is None
    svg = ET.fromstring(run_plot(log))  # an empty log still draws axes
    assert svg.tag == f"{SVG}svg"

    svg = ET.fromstring(loss_svg([Curve("a", [0, 1, 2], [1.0, 0.5, 0.25]),
                                  Curve("<b>&", [0, 1], [0.9, float("nan")])],
                                 switches=[(1, "</svg><script>x</script>")], resumes=[2]))
    curves = svg.findall(f"{SVG}polyline")
    assert [len(c.get("points").split()) for c in curves] == [3, 1]  # NaN is left out
    marks = [m.find(f"{SVG}title").text for m in svg.findall(f"{SVG}line")]
    assert marks == ["prompt: </svg><script>x</script> (step 1)", "resumed (step 2)"]
    assert "<b>&" in [t.text for t in svg.findall(f"{SVG}text")]  # the legend, as text


def test_every_run_folder_gets_a_loss_plot_redrawn_after_a_resume(tiny_sets, tmp_path) -> None:
    sets = [item for s in tiny_sets for item in ("--set", s)]
    result = CliRunner().invoke(app, ["generate", "a red circle ^ a blue square", *sets, "--steps", "4",
                                      "--switch-every", "2", "--size", "32x32", "--seed", "1",
                                      "-o", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    first = ET.parse(run_dir / "loss.svg").getroot()
    assert len(first.find(f"{SVG}polyline").get("points").split()) == 4
    assert [m.find(f"{SVG}title").text for m in first.findall(f"{SVG}line")] == [
        "prompt: a red circle (step 0)", "prompt: a blue square (step 2)"]

    result = CliRunner().invoke(app, ["resume", str(run_dir), "--steps", "6"])
    assert result.exit_code == 0, result.output
    again = ET.parse(run_dir / "loss.svg").getroot()
    assert len(again.find(f"{SVG}polyline").get("points").split()) == 6
    titles = [m.find(f"{SVG}title").text for m in again.findall(f"{SVG}line")]
    assert titles == ["prompt: a red circle (step 0)", "prompt: a blue square (step 2)",
                      "resumed (step 4)"]

"""What a run leaves in a log file when stderr is redirected (SLURM, nohup, CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_paths_in_redirected_stderr_are_never_wrapped(tiny_sets, tmp_path) -> None:
    out = tmp_path / ("a-folder-name-long-enough-to-pass-eighty-columns-on-its-own-" * 2)
    sets = [item for s in tiny_sets for item in ("-s", s)]
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        result = subprocess.run(
            [sys.executable, "-m", "vqclip", "generate", "a red circle", "--seeds", "1-2", *sets,
             "-s", "steps=1", "-s", "size=[32,32]", "-s", "save_every=0", "-o", str(out), "--json"],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env={**os.environ, "COLUMNS": "80"},
            timeout=300)
    assert result.returncode == 0, log.read_text()
    images = [item["image"] for item in json.loads(result.stdout)["items"]]
    text = log.read_text()
    assert len(images) == 2 and all(Path(image).is_file() for image in images)
    for image in images:
        assert image in text, f"{image} is not whole in the log:\n{text}"


def test_a_redirected_run_logs_progress_lines_and_a_summary(tiny_sets, tmp_path) -> None:
    sets = [item for s in tiny_sets for item in ("-s", s)]
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        result = subprocess.run(
            [sys.executable, "-m", "vqclip", "generate", "a red circle", *sets, "--steps", "6",
             "--size", "32x32", "-o", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=300)
    assert result.returncode == 0, log.read_text()
    image = result.stdout.strip()
    lines = log.read_text().splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    assert steps[0].startswith("step 1/6") and steps[-1].startswith("step 6/6")
    assert all(" it/s  loss " in line and "ETA " in line for line in steps)
    assert lines[-1].startswith("done after 6 steps in ") and image in lines[-1]
    assert "\x1b[" not in log.read_text()  # plain text in a log file, no terminal codes


def test_progress_lines_come_every_interval_with_the_recent_rate() -> None:
    from vqclip.cli.progress import ProgressLines
    from vqclip.run.events import StepEvent

    now = [0.0]
    written: list[str] = []
    lines = ProgressLines(200, written.append, every=30.0, clock=lambda: now[0])
    for step in range(200):
        now[0] += 2.0 if step < 50 else 0.5  # slow at first, then four times faster
        lines(StepEvent(step=step, loss=1.0, seconds=now[0], losses={}))
    assert [w.split()[1] for w in written] == ["1/200", "16/200", "31/200", "46/200", "94/200", "154/200",
                                               "200/200"]
    # The rate of the last 30 s, not the run's average (200 steps in 175 s): the ETA agrees with it.
    assert written[-2] == "step 154/200  2.00 it/s  loss 1.0000  ETA 0:00:23"
    assert written[1] == "step 16/200  0.50 it/s  loss 1.0000  ETA 0:06:08"


def test_sweep_lines_print_user_text_as_written(tiny_sets, tmp_path) -> None:
    from typer.testing import CliRunner

    from vqclip.cli.app import app

    sets = [item for s in [*tiny_sets, "steps=1", "size=[32,32]", "save_every=0"] for item in ("-s", s)]
    swept = "prompt=a [red] circle,a [bold]blue[/bold] one"
    result = CliRunner().invoke(app, ["generate", "x", "--sweep", swept, *sets, "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "prompt=a [red] circle" in result.stderr
    assert "prompt=a [bold]blue[/bold] one" in result.stderr


def test_a_redirected_batch_logs_each_item_and_its_steps(tiny_sets, tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle --steps 3\na blue square --steps 2\n")
    sets = [item for s in [*tiny_sets, "size=[32,32]", "save_every=0"] for item in ("-s", s)]
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        result = subprocess.run([sys.executable, "-m", "vqclip", "batch", str(prompts), *sets,
                                 "-o", str(tmp_path / "out")],
                                stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=300)
    assert result.returncode == 0, log.read_text()
    lines = log.read_text().splitlines()
    firsts = [line.split()[1] for line in lines if line.startswith("step ")]
    assert firsts[0] == "1/3" and "3/3" in firsts and "1/2" in firsts and firsts[-1] == "2/2"
    assert any(line.startswith("ok      1/2 line 1 seed") for line in lines)
    assert any(line.startswith("ok      2/2 line 2 seed") for line in lines)

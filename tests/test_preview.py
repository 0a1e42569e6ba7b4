"""The terminal preview: drawn and updated on a terminal, absent in a pipe or when turned off."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console
from textual_image.renderable import HalfcellImage

from tests.terminal import run_in_terminal
from vqclip.cli.preview import Preview, wanted
from vqclip.run.events import DoneEvent, ImageEvent, StepEvent

ROOT = Path(__file__).resolve().parent.parent
HALF_BLOCK = "▀"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def solid(r: float, g: float, b: float, size: int = 8) -> torch.Tensor:
    return torch.tensor([r, g, b]).view(3, 1, 1).expand(3, size, size).clone()


def draw(preview: Preview) -> str:
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="truecolor", width=60).print(preview)
    return out.getvalue()


def test_preview_shows_each_frame_and_a_fresh_image_every_few_seconds() -> None:
    now = [0.0]
    snapshots: list[int] = []

    def snapshot() -> torch.Tensor:
        snapshots.append(1)
        return solid(0, 0, 1)

    preview = Preview(snapshot, rows=4, every=3.0, image_type=HalfcellImage, clock=lambda: now[0])
    assert draw(preview).strip() == ""  # nothing before the first image

    preview(ImageEvent(0, solid(1, 0, 0)))
    red = draw(preview)
    assert red.count(HALF_BLOCK) == 4 * 8 and "255;0;0" in red  # 4 rows of an 8-pixel-wide square

    now[0] = 2.0
    preview(StepEvent(1, 0.5, {}, 2.0))
    assert not snapshots and draw(preview) == red  # too soon: no decode, same picture
    now[0] = 3.5
    preview(StepEvent(2, 0.4, {}, 3.5))
    assert snapshots == [1] and "0;0;255" in draw(preview)

    preview(DoneEvent(3, 0.3, 4.0, solid(0, 1, 0), interrupted=False))
    assert "0;255;0" in draw(preview)


def test_a_slow_decode_makes_the_preview_decode_less_often() -> None:
    now = [0.0]
    decodes: list[float] = []

    def slow_snapshot() -> torch.Tensor:
        decodes.append(now[0])
        now[0] += 1.0  # a decode that takes a second
        return solid(1, 1, 1)

    preview = Preview(slow_snapshot, every=3.0, image_type=HalfcellImage, clock=lambda: now[0])
    for step in range(200):
        now[0] += 1.0
        preview(StepEvent(step, 1.0, {}, now[0]))
    assert decodes[0] == 3.0 and len(decodes) == 4  # every 50 s: at most 2 % of the time


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "OMP_NUM_THREADS": "1"}


class Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


@pytest.mark.parametrize(("stdin", "stdout", "stderr", "flags", "shown"), [
    (True, True, True, {}, True),
    (True, False, True, {}, True),  # the result piped on, the preview still on the terminal
    (True, False, True, {"json_output": True}, False),  # --json piped: a script is reading
    (True, True, True, {"json_output": True}, True),
    (True, True, False, {}, False),
    (True, True, True, {"quiet": True}, False),
    (True, True, True, {"no_preview": True}, False),
    (False, True, True, {}, False),  # the terminal's answer to the graphics query comes on stdin
])
def test_when_the_preview_is_drawn(monkeypatch, stdin, stdout, stderr, flags, shown) -> None:
    for name, terminal in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
        monkeypatch.setattr(sys, name, Stream(terminal))
    options = {"quiet": False, "json_output": False, "no_preview": False, **flags}
    assert wanted(**options) is shown


def generate_command(tiny_sets: list[str], out: Path, *args: str) -> list[str]:
    sets = [item for s in tiny_sets for item in ("--set", s)]
    return [sys.executable, "-m", "vqclip", "generate", "a red circle", *sets, "--size", "32x32",
            "--seed", "1", "-o", str(out), *args]


def preview_pictures(output: str) -> list[str]:
    """Each drawing of the preview: its half-block rows (colors kept) after a progress line."""
    pictures = []
    for redraw in output.split("generating")[1:]:
        rows = [ANSI.sub(lambda m: m.group() if m.group().endswith("m") else "", line)
                for line in redraw.replace("\r", "").split("\n") if HALF_BLOCK in line]
        if rows:
            pictures.append("\n".join(rows))
    return pictures


@pytest.mark.usefixtures("one_thread")
def test_a_terminal_shows_the_image_updating_and_a_pipe_only_the_result(tiny_sets, tmp_path) -> None:
    code, output = run_in_terminal(generate_command(tiny_sets, tmp_path / "tty", "--steps", "60",
                                                    "--save-every", "10"), env=child_env())
    assert code == 0, output
    pictures = preview_pictures(output)
    assert pictures, output[-2000:]
    assert len(set(pictures)) >= 2  # the picture changed while the run went on
    final = next((tmp_path / "tty").glob("*/*/final.png"))
    assert str(final) in output

    piped = subprocess.run(generate_command(tiny_sets, tmp_path / "pipe", "--steps", "3"),
                           capture_output=True, text=True, env=child_env(), stdin=subprocess.DEVNULL)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == str(next((tmp_path / "pipe").glob("*/*/final.png"))) + "\n"
    assert HALF_BLOCK not in piped.stderr and "\x1b" not in piped.stderr + piped.stdout

    code, output = run_in_terminal(generate_command(tiny_sets, tmp_path / "off", "--steps", "3",
                                                    "--no-preview"), env=child_env())
    assert code == 0 and HALF_BLOCK not in output and "off" in output


@pytest.mark.parametrize(("terminal", "shown"), [((40, 100), (64, 32)), ((24, 80), (40, 20))])
def test_the_preview_uses_half_blocks_at_the_terminal_s_full_resolution(terminal, shown) -> None:
    preview = Preview(lambda: solid(0, 0, 1), image_type=HalfcellImage)
    preview(ImageEvent(0, solid(1, 0, 0, size=64)))
    out = io.StringIO()
    rows, columns = terminal
    console = Console(file=out, force_terminal=True, color_system="truecolor", width=columns, height=rows)
    console.print(preview)
    lines = [line for line in ANSI.sub("", out.getvalue()).splitlines() if HALF_BLOCK in line]
    # 64x64 pixels: one column per pixel and two pixels per row where the terminal has room,
    # else as large as 80x24 allows with the bar below it
    assert (len(lines[0]), len(lines)) == shown


@pytest.mark.usefixtures("one_thread")
def test_a_terminal_run_names_its_models_the_race_winner_and_keeps_a_summary(tiny_sets, tmp_path) -> None:
    command = generate_command(tiny_sets, tmp_path, "--steps", "4", "--candidates", "2")
    code, output = run_in_terminal(command, env=child_env(), size=(24, 80))
    assert code == 0, output
    text = re.sub(r"\x1b_[^\x1b]*\x1b\\", "", ANSI.sub("", output))  # and the graphics query
    assert "loading VQGAN" in text
    assert re.search(r"loaded VQGAN \S+ \(\d+(\.\d)? MB\), CLIP local-dir:\S+ and planned memory in "
                     r"\d+\.\d s", text)
    assert "racing 2 seeds" in text
    assert re.search(r"seed [12] won the race of 2 seeds after 1 steps \(CLIP loss, lower is better: "
                     r"1: \d\.\d{4}, 2: \d\.\d{4}\); finishing it", text)
    assert "elapsed" in text and "ETA" in text
    final = next(tmp_path.glob("*/*/final.png"))
    # after the bar is gone: the last picture, the path and a summary that stays
    end = text[text.rindex("ETA"):]
    assert HALF_BLOCK in end and str(final) in end
    summary = rf"done after 4 steps in \d+\.\d s, final loss \d\.\d{{4}}: {re.escape(str(final))}"
    assert re.search(summary, end)
    bars = [line for line in re.split(r"[\r\n]", text) if "ETA" in line and "WARNING" not in line]
    assert max(len(line) for line in bars) <= 80  # the bar fits 80x24 (a log line may follow it)

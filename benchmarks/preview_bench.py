"""Seconds per step of `vqclip generate` on a terminal, with the image preview and with --no-preview.

Each run is the real command on a pseudo-terminal (stdin, stdout and stderr), so the progress
bar and the preview draw as they would for a user; the runs alternate between the two modes.
Wall s/step is read from each run's log.jsonl: (time of the last step - time of the first) /
steps between them, so model loading and the first step do not count. On a machine shared with
other work, wall time swings with their load; the CPU time the command used (all of it, model
loading included) swings far less, and its difference between the modes is what the preview
costs. Last, in this process: the milliseconds one redraw of the display takes with and
without the image (the display redraws 10 times a second without it, 4 with it).

    python benchmarks/preview_bench.py --steps 100 --repeats 3
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.terminal import run_in_terminal  # noqa: E402


def seconds_per_step(run_dir: Path) -> float:
    lines = [json.loads(t) for t in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [line for line in lines if "event" not in line]
    return (steps[-1]["seconds"] - steps[0]["seconds"]) / (steps[-1]["step"] - steps[0]["step"])


def cpu_seconds_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(args: argparse.Namespace, preview: bool, out: Path) -> tuple[float, float]:
    """(wall s/step, CPU seconds of the whole command) of one run."""
    command = [sys.executable, "-m", "vqclip", "generate", args.prompt, "--preset", args.preset,
               "--steps", str(args.steps), "--seed", "1", "-o", str(out)]
    if not preview:
        command.append("--no-preview")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    cpu_before = cpu_seconds_of_children()
    code, output = run_in_terminal(command, env=env)
    cpu = cpu_seconds_of_children() - cpu_before
    if code != 0:
        raise SystemExit(f"generate failed ({code}):\n{output[-2000:]}")
    if preview != ("▀" in output):
        raise SystemExit(f"the preview was {'missing' if preview else 'drawn'} in this run")
    [run_dir] = [p.parent for p in out.glob("*/*/log.jsonl")]
    return seconds_per_step(run_dir), cpu


def redraw_milliseconds(with_image: bool, repeats: int = 200) -> float:
    """One redraw of the progress display (bar, and the 16-row half-block image if asked)."""
    import torch
    from rich.console import Console
    from textual_image.renderable import HalfcellImage

    from vqclip.cli.preview import Preview
    from vqclip.cli.progress import ProgressBar
    from vqclip.run.events import ImageEvent

    console = Console(file=io.StringIO(), force_terminal=True, color_system="256", width=100,
                      height=40)
    preview = None
    if with_image:
        preview = Preview(lambda: torch.zeros(3, 64, 64), image_type=HalfcellImage)
        preview(ImageEvent(0, torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))))
    bar = ProgressBar(100, console, below=preview)
    started = time.perf_counter()
    for _ in range(repeats):
        console.print(bar.progress.get_renderable())
    return 1000 * (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default="a red circle")
    parser.add_argument("--preset", default="shapes")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    timings: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for preview in (False, True):
                out = Path(scratch) / f"{repeat}-{preview}"
                timings[preview].append(one_run(args, preview, out))
                wall, cpu = timings[preview][-1]
                print(f"run {repeat + 1} {'preview' if preview else 'no preview'}: "
                      f"{wall:.4f} s/step, {cpu:.1f} CPU s", flush=True)
    print("\n| preview | runs | median wall s/step | median CPU s per run |\n|---|---|---|---|")
    for preview in (False, True):
        walls, cpus = zip(*timings[preview], strict=True)
        print(f"| {'on' if preview else 'off (--no-preview)'} | {len(walls)} | "
              f"{statistics.median(walls):.4f} | {statistics.median(cpus):.1f} |")
    off, on = (statistics.median(cpu for _, cpu in timings[mode]) for mode in (False, True))
    print(f"\nCPU time with the preview: {100 * (on - off) / off:+.1f} % (medians; "
          f"{(on - off) / args.steps:+.4f} CPU s per step)")
    without, with_image = redraw_milliseconds(False), redraw_milliseconds(True)
    print(f"one redraw: {without:.2f} ms without the image (x10/s = {10 * without:.0f} ms/s), "
          f"{with_image:.2f} ms with it (x4/s = {4 * with_image:.0f} ms/s)")


if __name__ == "__main__":
    main()

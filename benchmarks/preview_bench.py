"""Seconds per step of `vqclip generate` on a terminal, with the image preview and with --no-preview.

Each run is the real command on a pseudo-terminal (stdin, stdout and stderr), so the progress
bar and the preview draw as they would for a user; the runs alternate between the two modes.
Wall s/step is read from each run's log.jsonl: (time of the last step - time of the first) /
steps between them, so model loading and the first step do not count. On a machine shared with
other work, wall time swings with their load; the CPU time the command used (all of it, model
loading included) swings far less, and its difference between the modes is what the preview
costs.

    python benchmarks/preview_bench.py --steps 100 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
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


if __name__ == "__main__":
    main()

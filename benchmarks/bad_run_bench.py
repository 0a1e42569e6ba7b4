"""How long a bad run takes to be refused, against importing and checking the config alone.

Each bad run is `vqclip generate` in a fresh process with an empty model cache ($VQCLIP_HOME a
new temporary folder) and `--offline`, so that it can only end with the mistake it holds, never
with a model load or download. The baseline is a process that imports the config layer and
validates a config (what every command pays). Runs interleave, `--repeat` times; the table
gives each one's median wall seconds and exit code.

    python benchmarks/bad_run_bench.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

BASELINE = ("config layer (import + validate)",
            [sys.executable, "-c", "from vqclip.run.config import build_config, validate\n"
                                   "cfg, p = build_config(flags={'prompt': 'a cat'}); validate(cfg, p)"])
BAD_RUNS = [
    ("--size 100x100", ["--size", "100x100"]),
    ("-s clip.model=ViT-Q-99", ["-s", "clip.model=ViT-Q-99"]),
    ("--init-image /nonexistent.png", ["--init-image", "/nonexistent.png"]),
    ("--image-prompt /nonexistent.png", ["--image-prompt", "/nonexistent.png"]),
]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, exit code, last stderr line) of one process."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = done.stderr.strip().splitlines()
    return time.perf_counter() - start, done.returncode, lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (median shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "VQCLIP_HOME": home, "HF_HUB_OFFLINE": "1", "VQCLIP_OFFLINE": "1"}
        out = os.path.join(home, "out")
        commands = [BASELINE] + [
            (label, [sys.executable, "-m", "vqclip", "generate", "a cat", *extra, "--offline", "-o", out])
            for label, extra in BAD_RUNS]
        seconds: dict[str, list[float]] = {label: [] for label, _ in commands}
        last: dict[str, tuple[int, str]] = {}
        for _ in range(args.repeat):
            for label, command in commands:
                took, code, line = timed(command, env)
                seconds[label].append(took)
                last[label] = (code, line)
        print(f"{'run':<36} {'median s':>9} {'exit':>5}  message")
        for label, _ in commands:
            code, line = last[label]
            print(f"{label:<36} {statistics.median(seconds[label]):9.2f} {code:>5}  {line[:90]}")
        if os.listdir(home) not in ([], ["out"]) or os.path.exists(out):
            print(f"note: the cache folder was written to: {sorted(os.listdir(home))}")


if __name__ == "__main__":
    main()

"""Time to a right image on the shapes preset, judged by pixels alone; prints a table.

Every prompt "a COLOR SHAPE" of the grid (colors x shapes x seeds) runs once with a frame every
few steps; the frames at the checkpoint steps and the final image are judged by
vqclip.shapes.pixel_judge (color, shape, exactly one object, inside the frame), which never
asks the CLIP that steers. Each row is a step count with the pass rates there and the mean
seconds an image takes to reach it, so the rows together are the "time to right" curve.

    python benchmarks/quality_bench.py --seeds 2                      # the preset as it is
    python benchmarks/quality_bench.py --seeds 2 --set cutn=8         # one setting changed
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from PIL import Image

from vqclip.run.build import build
from vqclip.run.config import build_config
from vqclip.run.prepare import prepare
from vqclip.shapes.data import COLORS, article
from vqclip.shapes.pixel_judge import Verdict, judge

CRITERIA = ("color", "shape", "single", "inside", "right")


def cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def run_one(prompt: str, seed: int, steps: int, every: int, sets: list[str], out: str) -> tuple[Path, float]:
    """One shapes-preset run with a frame every `every` steps; its folder and wall seconds."""
    cfg, _ = build_config(preset="shapes", dotlist=[f"prompt={prompt}", f"seed={seed}", f"steps={steps}",
                                                    f"save_every={every}", f"out={out}", *sets])
    started = time.perf_counter()
    result = build(prepare(cfg)).execute()
    return Path(result.run_dir), time.perf_counter() - started


def image_at(run_dir: Path, step: int, steps: int) -> Image.Image:
    return Image.open(run_dir / "final.png" if step == steps else run_dir / "frames" / f"{step:06d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[25, 50, 100],
                        help="steps (multiples of their greatest common divisor) judged before the last")
    parser.add_argument("--colors", nargs="+", default=list(COLORS))
    parser.add_argument("--shapes", nargs="+", default=["circle", "square", "triangle", "star"])
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for every run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--verdicts", help="also write each image's verdict at each step here (JSON lines)")
    parser.add_argument("--out", help="keep the run folders here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    checkpoints = sorted({*(s for s in args.checkpoints if 0 < s < args.steps), args.steps})
    every = math.gcd(*checkpoints[:-1]) if len(checkpoints) > 1 else args.steps
    verdicts: dict[int, list[Verdict]] = {step: [] for step in checkpoints}
    seconds = []
    lines: list[dict] = []
    with tempfile.TemporaryDirectory() if args.out is None else contextlib.nullcontext(args.out) as out:
        for seed in range(args.seeds):
            for color in args.colors:
                for shape in args.shapes:
                    prompt = f"{article(color)} {color} {shape}"
                    run_dir, took = run_one(prompt, seed, args.steps, every, args.sets, out)
                    seconds.append(took)
                    for step in checkpoints:
                        verdict = judge(image_at(run_dir, step, args.steps), color, shape)
                        verdicts[step].append(verdict)
                        lines.append({"seed": seed, "prompt": prompt, "step": step,
                                      "seconds": round(took, 2),
                                      **{key: bool(value) for key, value in asdict(verdict).items()}})

    images = len(seconds)
    per_image = sum(seconds) / images
    print(f"# {images} images ({args.seeds} seeds x {len(args.colors)} colors x {len(args.shapes)} shapes), "
          f"{args.steps} steps, sets {args.sets or 'none'}, {args.threads} threads, {cpu_name()}, "
          f"{per_image:.1f} s per image")
    print("| step | seconds | " + " | ".join(CRITERIA) + " |")
    print("|---" * (len(CRITERIA) + 2) + "|")
    for step in checkpoints:
        rates = [sum(getattr(v, name) for v in verdicts[step]) / images for name in CRITERIA]
        print(f"| {step} | {per_image * step / args.steps:.1f} | "
              + " | ".join(f"{rate:.0%}" for rate in rates) + " |")
    if args.verdicts:
        Path(args.verdicts).write_text("".join(json.dumps(line) + "\n" for line in lines))


if __name__ == "__main__":
    main()

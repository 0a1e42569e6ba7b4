"""Generation quality on the bundled shapes models, judged by pixel statistics; prints a table.

For every seed: one image per color ("a red circle", "an orange circle", ...) checked for
its dominant color, and a circle and a square in red compared for roundness (the circle's
region should be rounder).

    python benchmarks/shapes_quality.py --seeds 4            # at the preset's own step count
    python benchmarks/shapes_quality.py --seeds 4 --steps 150
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from PIL import Image

from vqclip.run.build import build
from vqclip.run.config import build_config
from vqclip.run.prepare import prepare
from vqclip.shapes.data import article
from vqclip.shapes.pixel_judge import color_mask, dominant_color, largest_region, roundness

COLORS = ["red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink"]


def generate(prompt: str, seed: int, steps: int, out: str) -> Image.Image:
    """One shapes-preset image for `prompt` (other settings as the preset has them)."""
    cfg, _ = build_config(preset="shapes", dotlist=[f"prompt={prompt}", f"seed={seed}",
                                                    f"steps={steps}", f"out={out}", "save_every=0"])
    return Image.open(build(prepare(cfg)).execute().image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, help="steps of every run (default: the preset's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.steps is None:
        args.steps = build_config(preset="shapes")[0].steps

    color_hits = {color: 0 for color in COLORS}
    rounder = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        for seed in range(args.seeds):
            for color in COLORS:
                prompt = f"{article(color)} {color} circle"
                color_hits[color] += dominant_color(generate(prompt, seed, args.steps, out)) == color
            circle, square = (
                roundness(largest_region(color_mask(generate(f"a red {shape}", seed, args.steps,
                                                             out), "red")))
                for shape in ("circle", "square")
            )
            rounder += circle > square
    images = args.seeds * (len(COLORS) + 2)
    seconds = time.perf_counter() - started

    print(f"seeds={args.seeds} steps={args.steps} threads={args.threads} "
          f"({images} images, {seconds / images:.1f} s per image)")
    print(f"{'check':<34} {'passed':>8}")
    for color in COLORS:
        print(f"{'dominant color ' + color:<34} {color_hits[color]:>4}/{args.seeds:<3}")
    total = sum(color_hits.values())
    print(f"{'dominant color, all':<34} {total:>4}/{args.seeds * len(COLORS):<3}")
    print(f"{'circle rounder than square':<34} {rounder:>4}/{args.seeds:<3}")


if __name__ == "__main__":
    main()

"""Can the shapes VQGAN draw each shape at all? Prints a table.

Clean renders of every color and shape on black (centred, at each `--radii`) go through the
shapes preset's VQGAN (encode, snap to the codebook, decode), and the pixel judge says whether
the reconstruction is still "a COLOR SHAPE". A shape the VQGAN cannot reconstruct is one no
prompt can steer it to; one it can is within reach of a latent, whatever the steering finds.

`--features` prints, instead, how well the largest region of the asked color matches each
shape's outline (the judge's `shape_match`: its IoU with the clean outline fitted to its box).
Each cell is the range over the colors, for clean renders (centred, and at a random place),
their reconstructions and, with `--runs`, the final images of `quality_bench.py --out RUNS`
whose prompt asks for the shape.

    python benchmarks/vqgan_ceiling.py --radii 0.2 0.25 0.3
    python benchmarks/vqgan_ceiling.py --features --shapes star cross --radii 0.15 0.2 0.3 --runs RUNS
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vqclip.images import pil_to_tensor, tensor_to_pil
from vqclip.models.held import Models
from vqclip.run.config import build_config
from vqclip.shapes.data import COLORS, SHAPES, draw_shape
from vqclip.shapes.pixel_judge import color_mask, judge, largest_region, shape_match


def reconstruct(vqgan, image: Image.Image) -> Image.Image:
    """The VQGAN's reconstruction of an RGB image through its codebook."""
    with torch.no_grad():
        codes, _ = vqgan.quantize_latent(vqgan.encode(pil_to_tensor(image) * 2 - 1))
        return tensor_to_pil(vqgan.decode(codes).add(1).div(2))


def features(image: Image.Image, color: str) -> tuple[float, ...]:
    """How well the largest region of `color` matches each of SHAPES (zeros when there is none)."""
    region = largest_region(color_mask(image, color))
    return tuple(shape_match(region, shape) for shape in SHAPES)


def feature_row(label: str, judged: list[tuple[Image.Image, str, str]]) -> str:
    """A table row: how many of (image, color, shape) the judge calls right, each feature's range."""
    values = np.array([features(image, color) for image, color, _ in judged])
    right = sum(judge(image, color, shape).right for image, color, shape in judged)
    ranges = " | ".join(f"{values[:, i].min():.2f}–{values[:, i].max():.2f}" for i in range(len(SHAPES)))
    return f"| {label} | {right}/{len(judged)} | {ranges} |"


def drawn(runs: Path, shape: str) -> list[tuple[Image.Image, str, str]]:
    """The final images under `runs` (quality_bench.py --out) of prompts "a COLOR SHAPE"."""
    found = []
    for final in sorted(runs.glob("*/*/final.png")):
        words = final.parent.name.split("-")
        if words[-1] == shape and words[-2] in COLORS:
            found.append((Image.open(final).convert("RGB"), words[-2], shape))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radii", type=float, nargs="+", default=[0.2, 0.25, 0.3])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    parser.add_argument("--features", action="store_true",
                        help="print each shape's match with every outline instead of the counts")
    parser.add_argument("--runs", type=Path, help="with --features: also the drawn images of "
                                                  "quality_bench.py --out RUNS")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg, _ = build_config(preset="shapes", dotlist=["prompt=a red circle"])
    vqgan, _ = Models().vqgan(cfg.vqgan, torch.device("cpu"))
    size = int(cfg.size[0])
    if args.features:
        print(f"match with each shape's outline, ranges over {len(COLORS)} colors, each centred "
              f"and at a random place (shapes preset's VQGAN, {size}x{size})")
        print("| shape, images | judged right | " + " | ".join(SHAPES) + " |")
        print("|---" * (len(SHAPES) + 2) + "|")
        rng = np.random.default_rng(0)
        for shape in args.shapes:
            for radius in args.radii:
                clean = [(draw_shape(shape, color, size=size, radius=radius, center=place), color, shape)
                         for color in COLORS
                         for place in ((0.5, 0.5), tuple(rng.uniform(radius + 0.04, 0.96 - radius, 2)))]
                print(feature_row(f"{shape}, clean, radius {radius:g}", clean))
                rebuilt = [(reconstruct(vqgan, image), color, shape) for image, color, shape in clean]
                print(feature_row(f"{shape}, reconstructed, radius {radius:g}", rebuilt))
            if args.runs and (found := drawn(args.runs, shape)):
                print(feature_row(f"{shape}, drawn ({args.runs.name})", found))
        return
    print(f"reconstructions judged right, of {len(COLORS)} colors (shapes preset's VQGAN, {size}x{size})")
    print("| shape | " + " | ".join(f"radius {radius:g}" for radius in args.radii) + " |")
    print("|---" * (len(args.radii) + 1) + "|")
    for shape in args.shapes:
        cells = []
        for radius in args.radii:
            right = sum(judge(reconstruct(vqgan, draw_shape(shape, color, size=size, radius=radius)),
                              color, shape).right for color in COLORS)
            cells.append(f"{right}/{len(COLORS)}")
        print(f"| {shape} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

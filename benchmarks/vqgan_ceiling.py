"""Can the shapes VQGAN draw each shape at all? Prints a table.

Clean renders of every color and shape on black (centred, at each `--radii`) go through the
shapes preset's VQGAN (encode, snap to the codebook, decode), and the pixel judge says whether
the reconstruction is still "a COLOR SHAPE". A shape the VQGAN cannot reconstruct is one no
prompt can steer it to; one it can is within reach of a latent, whatever the steering finds.

    python benchmarks/vqgan_ceiling.py --radii 0.2 0.25 0.3
"""

from __future__ import annotations

import argparse

import torch
from PIL import Image

from vqclip.images import pil_to_tensor, tensor_to_pil
from vqclip.models.held import Models
from vqclip.run.config import build_config
from vqclip.shapes.data import COLORS, SHAPES, draw_shape
from vqclip.shapes.pixel_judge import judge


def reconstruct(vqgan, image: Image.Image) -> Image.Image:
    """The VQGAN's reconstruction of an RGB image through its codebook."""
    with torch.no_grad():
        codes, _ = vqgan.quantize_latent(vqgan.encode(pil_to_tensor(image) * 2 - 1))
        return tensor_to_pil(vqgan.decode(codes).add(1).div(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radii", type=float, nargs="+", default=[0.2, 0.25, 0.3])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg, _ = build_config(preset="shapes", dotlist=["prompt=a red circle"])
    vqgan, _ = Models().vqgan(cfg.vqgan, torch.device("cpu"))
    size = int(cfg.size[0])
    print(f"reconstructions judged right, of {len(COLORS)} colors (shapes preset's VQGAN, {size}x{size})")
    print("| shape | " + " | ".join(f"radius {radius:g}" for radius in args.radii) + " |")
    print("|---" * (len(args.radii) + 1) + "|")
    for shape in SHAPES:
        cells = []
        for radius in args.radii:
            right = sum(judge(reconstruct(vqgan, draw_shape(shape, color, size=size, radius=radius)),
                              color, shape).right for color in COLORS)
            cells.append(f"{right}/{len(COLORS)}")
        print(f"| {shape} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

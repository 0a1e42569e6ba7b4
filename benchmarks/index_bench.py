"""Search-index speed: images per second to hash, decode and embed a folder; prints a table.

Models: the bundled shapes CLIP (when vqclip/weights/shapes_clip/ is present) and open_clip's
ViT-B-32-quickgelu with random weights (its shape and FLOPs, not its weights, set the speed).
The folder is synthetic: N JPEG and PNG images of random shapes, `--side` pixels square.
"Cold" embeds every file into a fresh index; "warm" is the next search over the same folder
(nothing to embed; files are not even read when their size and mtime match).

    python benchmarks/index_bench.py --images 96 --side 512 --batch-size 32
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from vqclip.device import resolve_device
from vqclip.models.clip import Perceptor, load_perceptor
from vqclip.tasks.common import images_in_folder
from vqclip.tasks.index import model_key, update_index

SHAPES_CLIP = Path(__file__).resolve().parents[1] / "vqclip" / "weights" / "shapes_clip"


def write_images(folder: Path, count: int, side: int, seed: int = 0) -> None:
    """`count` random-shape images, alternating JPEG and PNG, with mtimes in the past."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        image = Image.new("RGB", (side, side), tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = (int(v) for v in rng.integers(0, side, 2))
            w, h = (int(v) for v in rng.integers(8, side // 2, 2))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x0 + w, y0 + h], fill=fill)
        path = folder / (f"{i:05d}.jpg" if i % 2 else f"{i:05d}.png")
        image.save(path, quality=90) if i % 2 else image.save(path)
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # old: stat records are trusted


def models(device: torch.device, shapes_clip: Path) -> list[tuple[str, Perceptor, dict]]:
    """(label, perceptor, info) for each model this machine can run."""
    found = []
    if (shapes_clip / "open_clip_config.json").is_file():
        found.append(("shapes_clip", load_perceptor(f"local-dir:{shapes_clip}", None, device),
                      {"name": "shapes_clip", "pretrained": None}))
    else:
        print(f"(skipping the shapes CLIP: {shapes_clip} is not there yet)")
    torch.manual_seed(0)
    found.append(("ViT-B-32-quickgelu (random)",
                  load_perceptor("ViT-B-32-quickgelu", None, device),
                  {"name": "ViT-B-32-quickgelu", "pretrained": None}))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="images in the synthetic folder")
    parser.add_argument("--side", type=int, default=512, help="side of each image in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shapes-clip", type=Path, default=SHAPES_CLIP, help="its local-dir folder")
    args = parser.parse_args()
    device = resolve_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        write_images(folder, args.images, args.side)
        paths = images_in_folder(folder)
        for label, perceptor, info in models(device, args.shapes_clip):
            directory = Path(tmp) / "index" / model_key(perceptor, info)
            start = time.perf_counter()
            cold = update_index(perceptor, info, paths, root=folder, directory=directory,
                                batch_size=args.batch_size)
            cold_s = time.perf_counter() - start
            start = time.perf_counter()
            warm = update_index(perceptor, info, paths, root=folder, directory=directory,
                                batch_size=args.batch_size)
            warm_s = time.perf_counter() - start
            assert cold.embedded == len(paths) and warm.embedded == 0
            rows.append((label, perceptor.input_size, len(paths), cold_s, len(paths) / cold_s, warm_s))
    print(f"\n{args.images} images of {args.side}x{args.side} (half JPEG, half PNG), "
          f"batch {args.batch_size}, device {device}, torch threads {torch.get_num_threads()}")
    print(f"{'model':<30} {'input':>5} {'images':>6} {'cold s':>8} {'images/s':>9} {'warm s':>7}")
    for label, size, count, cold_s, rate, warm_s in rows:
        print(f"{label:<30} {size:>5} {count:>6} {cold_s:>8.2f} {rate:>9.1f} {warm_s:>7.3f}")


if __name__ == "__main__":
    main()

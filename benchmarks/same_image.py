"""Compare the final.png of two run roots (the same seed made two ways): print the largest and the
mean pixel difference, and fail when the images differ by more than run-to-run float noise could."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

# Pixel levels (0-255) of the largest difference still taken as the same image: float sums in
# another order (a CUDA graph, atomic adds) move a few pixels by a few levels, not a picture.
TOLERANCE = 32


def final_image(root: Path) -> np.ndarray:
    """The pixels of the one final.png under `root`."""
    [path] = sorted(root.glob("*/*/final.png"))
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def main(first: str, second: str) -> int:
    a, b = final_image(Path(first)), final_image(Path(second))
    difference = np.abs(a - b)
    print(f"{second} against {first}: largest pixel difference {int(difference.max())} of 255, "
          f"mean {difference.mean():.3f}")
    return int(difference.max() > TOLERANCE)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

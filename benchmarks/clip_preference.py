"""Does the steering CLIP prefer a clean shape to what generation drew? Prints a table.

For each run folder under `RUNS` (shapes-preset runs of "a COLOR SHAPE", e.g. kept by
`quality_bench.py --out`), the CLIP of the run's own config scores the prompt against the
final image and against clean renders of the asked shape and color on black (centred, radius
0.12, 0.2 and 0.3 of the side: small, medium, large), and the pixel judge gives its verdict.
Where the drawn image scores as high as the best clean render, the run reached what the CLIP
asks for: a better optimizer cannot make it a cleaner shape, only a CLIP whose best image is
one can.

The image side: how near the drawn image's embedding lies to the mean embedding of the clean
renders ("clean centroid"), beside how near the renders themselves lie to it. A drawn image as
near as the renders is one the image tower does not tell from the clean shape, whatever the
text asks. `--clip` scores with another CLIP than each run's own, e.g. to ask whether a second
CLIP tells apart what the first drew.

    python benchmarks/quality_bench.py --seeds 2 --colors red green blue --out runs
    python benchmarks/clip_preference.py runs
    python benchmarks/clip_preference.py runs --clip local-dir:OTHER/shapes_clip
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image

from vqclip.errors import ModelError
from vqclip.images import pil_to_tensor
from vqclip.models.held import Models
from vqclip.shapes.data import COLORS, SHAPES, draw_shape
from vqclip.shapes.pixel_judge import judge

RADII = (0.12, 0.2, 0.3)


def asked(prompt: str) -> tuple[str, str] | None:
    """(color, shape) of "a COLOR SHAPE", or None for another prompt."""
    words = prompt.split()
    if len(words) == 3 and words[1] in COLORS and words[2] in SHAPES:
        return words[1], words[2]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="a folder holding run folders (searched below it)")
    parser.add_argument("--clip", metavar="MODEL",
                        help="score with this CLIP (a clip.model value) instead of each run's own")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    models = Models()
    rows: dict[str, list[tuple[float, float, float, float, bool]]] = {}
    for config_file in sorted(args.runs.rglob("config.yaml")):
        final = config_file.parent / "final.png"
        cfg = OmegaConf.load(config_file)
        target = asked(str(cfg.prompt))
        if target is None or not final.exists():
            continue
        color, shape = target
        section = cfg.clip if args.clip is None else OmegaConf.merge(
            cfg.clip, {"model": args.clip, "pretrained": None, "models": []})
        try:
            perceptor, _ = models.clip(section, torch.device("cpu"))
        except ModelError as err:
            parser.error(str(err))
        text = perceptor.encode_text([str(cfg.prompt)])[0]
        with Image.open(final) as drawn:
            image = drawn.convert("RGB")
        clean = torch.cat([pil_to_tensor(draw_shape(shape, color, size=image.width, radius=radius))
                           for radius in RADII])
        with torch.no_grad():
            embeddings = perceptor.encode_image(torch.cat([pil_to_tensor(image), clean]))
        scores = embeddings @ text
        centroid = F.normalize(embeddings[1:].mean(dim=0), dim=-1)
        near = embeddings @ centroid
        rows.setdefault(shape, []).append((float(scores[0]), float(scores[1:].max()), float(near[0]),
                                           float(near[1:].mean()), judge(image, color, shape).right))
    if not rows:
        raise SystemExit(f"no shapes-preset runs of 'a COLOR SHAPE' with a final.png under {args.runs}")

    print("| shape | images | drawn | best clean | drawn >= best clean | drawn to clean centroid | "
          "clean to clean centroid | right |")
    print("|---|---|---|---|---|---|---|---|")
    everything = [row for shape_rows in rows.values() for row in shape_rows]
    for name, of_shape in [*rows.items(), ("all", everything)]:
        drawn, best, drawn_near, clean_near, right = zip(*of_shape, strict=True)
        at_least = sum(d >= b for d, b in zip(drawn, best, strict=True)) / len(of_shape)
        print(f"| {name} | {len(of_shape)} | {np.mean(drawn):.3f} | {np.mean(best):.3f} | "
              f"{at_least:.0%} | {np.mean(drawn_near):.3f} | {np.mean(clean_near):.3f} | "
              f"{sum(right) / len(of_shape):.0%} |")


if __name__ == "__main__":
    main()

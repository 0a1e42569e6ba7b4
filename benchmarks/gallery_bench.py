"""Gallery speed: seconds to gallery N synthetic run folders, the first time and again; prints a table.

Each run folder is what `vqclip generate` leaves: config.yaml, a log.jsonl of `--steps` lines,
`--frames` frames and final.png (`--side` pixels square), all under one batch folder whose
manifest records them.

    python benchmarks/gallery_bench.py --runs 2000 --steps 100 --frames 4
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from vqclip.gallery import build_gallery


def png(rng: np.random.Generator, side: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_runs(root: Path, runs: int, steps: int, frames: int, side: int) -> None:
    """`runs` run folders under root/batch/<date>/, and the batch's manifest."""
    rng = np.random.default_rng(0)
    day = root / "batch" / "2026-01-01"
    day.mkdir(parents=True)
    records = []
    for index in range(runs):
        folder = day / f"{index + 1:04d}-{index}-a-red-circle-{index}"
        (folder / "frames").mkdir(parents=True)
        config = {"prompt": f"a red circle {index}", "seed": index, "steps": steps, "size": [side, side],
                  "lr": 0.1, "cutn": 24, "candidates": 1, "vqgan": {"model": "shapes"},
                  "clip": {"model": "shapes", "pretrained": None}}
        (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        losses = np.cumsum(rng.normal(-0.002, 0.01, steps)) + 1.0
        (folder / "log.jsonl").write_text("".join(
            json.dumps({"step": s, "loss": float(v), "seconds": 0.1 * (s + 1), "losses": {"a": float(v)}})
            + "\n" for s, v in enumerate(losses)))
        for frame in range(frames):
            (folder / "frames" / f"{frame * max(steps // frames, 1):06d}.png").write_bytes(png(rng, side))
        (folder / "final.png").write_bytes(png(rng, side))
        records.append({"key": f"k{index}", "index": index, "status": "ok", "line": index + 1,
                        "run_dir": str(folder.resolve()), "seed": index})
    (root / "batch" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--side", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_runs(root, args.runs, args.steps, args.frames, args.side)
        rows = []
        for label in ("first", "again"):
            started = time.perf_counter()
            result = build_gallery(root)
            rows.append((label, result.runs, result.thumbnails_made, time.perf_counter() - started))
    print("| pass | runs | thumbnails made | seconds |\n|---|---|---|---|")
    for label, runs, made, seconds in rows:
        print(f"| {label} | {runs} | {made} | {seconds:.1f} |")


if __name__ == "__main__":
    main()

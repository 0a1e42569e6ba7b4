"""Time to a right image on the shapes preset, judged by pixels alone; prints a table.

Every prompt "a COLOR SHAPE" of the grid (colors x shapes x seeds) runs once with a frame every
few steps; the frames at the checkpoint steps (0: the start as the generator draws it) and the
final image are judged by vqclip.shapes.pixel_judge (color, shape, exactly one object, inside
the frame), which never asks the CLIP that steers. Each row is a step count with the pass rates
there and the seconds an image takes to reach it, the whole run's mean time (its build, and the
pick of its start, included) times the share of the steps done; the rows together are the "time
to right" curve. The table by shape adds the mean and the highest outline match
(pixel_judge.outline_match: the judge asks MATCH_FLOOR), which moves where the pass rates stay
at 0.

    python benchmarks/quality_bench.py --seeds 2                      # the preset as it is
    python benchmarks/quality_bench.py --seeds 2 --set cutn=8         # one setting changed
    python benchmarks/quality_bench.py --seeds 1 --first-seed 1 --verdicts s1.jsonl   # one seed
    python benchmarks/quality_bench.py --tables s0.jsonl s1.jsonl     # seeds run side by side
    python benchmarks/quality_bench.py --tables s0.jsonl --judge-again RUNS   # today's judge on them
    python benchmarks/quality_bench.py --seeds 1 --from-shape         # does the preset keep a right shape?
    python benchmarks/quality_bench.py --seeds 2 --afresh             # each run loads its models
    python benchmarks/quality_bench.py --seeds 2 --checkpoints 0 25   # the start as drawn, and step 25

The runs take their models from one holder, as `vqclip batch` does, so the seconds per image are
those of many images in one process; with --afresh each run loads its models and plans its
memory itself, as a lone `vqclip generate` does, though still in one process: a new process's
start-up (Python, imports, and the slower first load and plan of a process) is left out.

With --from-shape every run starts from a clean render of the asked shape (radius 0.25, in the
centre), which the judge calls right, instead of the preset's start (the shape its CLIP picks,
the same render when the pick is right): the rows then say how much of a right image the
preset's objective keeps, apart from whether the pick finds it.
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

from vqclip.models.held import Models
from vqclip.run.build import build
from vqclip.run.config import build_config
from vqclip.run.prepare import prepare
from vqclip.shapes.data import COLORS, SHAPES, article, draw_shape
from vqclip.shapes.pixel_judge import judge, outline_match

CRITERIA = ("color", "shape", "single", "inside", "right")


def cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def run_one(prompt: str, seed: int, steps: int, every: int, sets: list[str], out: str,
            models: Models | None) -> tuple[Path, float]:
    """One shapes-preset run with a frame every `every` steps; its folder and wall seconds.
    With `models` None the run loads its models and plans its memory itself; otherwise it
    takes them from that holder, which keeps them for the next run."""
    cfg, _ = build_config(preset="shapes", dotlist=[f"prompt={prompt}", f"seed={seed}", f"steps={steps}",
                                                    f"save_every={every}", f"out={out}", *sets])
    started = time.perf_counter()
    result = build(prepare(cfg), models).execute()
    return Path(result.run_dir), time.perf_counter() - started


def image_at(run_dir: Path, step: int, steps: int) -> Image.Image:
    return Image.open(run_dir / "final.png" if step == steps else run_dir / "frames" / f"{step:06d}.png")


def verdict_of(image: Image.Image, color: str, shape: str) -> dict:
    """The judge's verdict on one image as a verdicts-file entry, with its outline match."""
    verdict = judge(image, color, shape)
    return {**asdict(verdict), "right": verdict.right,
            "outline": round(outline_match(image, color, shape), 3)}


def judged_again(lines: list[dict], runs: list[Path]) -> list[dict]:
    """`lines` with each verdict made again, by today's judge, on the image it was made on: the
    frames and final images kept in the run folders under `runs` (quality_bench.py --out)."""
    folders = {}
    for final in (final for root in runs for final in root.glob("*/*/final.png")):
        _, seed, slug = final.parent.name.split("-", 2)
        folders[(int(seed), slug)] = final.parent
    last = {}
    for line in lines:
        key = (line["seed"], line["prompt"])
        last[key] = max(last.get(key, 0), line["step"])
    again = []
    for line in lines:
        run_dir = folders.get((line["seed"], line["prompt"].replace(" ", "-")))
        if run_dir is None:
            raise SystemExit(f"no run folder of seed {line['seed']} for {line['prompt']!r} under "
                             f"{', '.join(map(str, runs))}")
        color, shape = line["prompt"].split()[-2:]
        image = image_at(run_dir, line["step"], last[(line["seed"], line["prompt"])])
        again.append({**line, **verdict_of(image, color, shape)})
    return again


def rates(lines: list[dict]) -> str:
    """The share of `lines` (verdicts) passing each criterion, as table cells."""
    return " | ".join(f"{sum(line[name] for line in lines) / len(lines):.0%}" for name in CRITERIA)


def print_tables(lines: list[dict], header: str) -> None:
    """The pass rates at each judged step, then at the last step per shape."""
    steps = sorted({line["step"] for line in lines})
    last = [line for line in lines if line["step"] == steps[-1]]
    per_image = sum(line["seconds"] for line in last) / len(last)
    print(f"# {len(last)} images, {header}, {per_image:.1f} s per image")
    print("| step | seconds | " + " | ".join(CRITERIA) + " |")
    print("|---" * (len(CRITERIA) + 2) + "|")
    for step in steps:
        at = [line for line in lines if line["step"] == step]
        print(f"| {step} | {per_image * step / steps[-1]:.1f} | {rates(at)} |")
    print(f"\nstep {steps[-1]}, by shape:\n")
    # Verdicts files written before the outline match was recorded lack it (--judge-again adds it).
    matched = all("outline" in line for line in last)
    columns = [*CRITERIA, "outline match, mean (highest)"] if matched else list(CRITERIA)
    print("| shape | images | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    for shape in dict.fromkeys(line["prompt"].split()[-1] for line in last):
        of_shape = [line for line in last if line["prompt"].split()[-1] == shape]
        match = ""
        if matched:
            outline = [line["outline"] for line in of_shape]
            match = f" {sum(outline) / len(outline):.2f} ({max(outline):.2f}) |"
        print(f"| {shape} | {len(of_shape)} | {rates(of_shape)} |{match}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run: FIRST .. FIRST+SEEDS-1")
    parser.add_argument("--steps", type=int, help="steps of every run (default: the preset's)")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[0, 10, 20, 30, 40],
                        help="steps judged before the last; 0 judges the start as the generator draws it")
    parser.add_argument("--colors", nargs="+", default=list(COLORS))
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES))
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for every run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--afresh", action="store_true",
                        help="every run loads its models and plans its memory itself, in this one process "
                             "(default: held from run to run, as `vqclip batch` holds them)")
    parser.add_argument("--from-shape", action="store_true",
                        help="start every run from a clean render of the asked shape")
    parser.add_argument("--verdicts", help="also write each image's verdict at each step here (JSON lines)")
    parser.add_argument("--out", help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--tables", nargs="+", metavar="VERDICTS",
                        help="run nothing: print the tables of --verdicts files written before "
                             "(e.g. one per seed, run side by side)")
    parser.add_argument("--judge-again", nargs="+", type=Path, metavar="RUNS",
                        help="with --tables: judge the images again, from the run folders these "
                             "runs kept (--out RUNS)")
    args = parser.parse_args()
    if args.judge_again and not args.tables:
        parser.error("--judge-again judges the verdicts of --tables again; give both")
    if args.tables:
        lines = [json.loads(line) for path in args.tables for line in Path(path).read_text().splitlines()]
        if args.judge_again:
            lines = judged_again(lines, args.judge_again)
        for line in lines:
            line["right"] = all(line[name] for name in CRITERIA[:-1])
        judged = f", judged again on {', '.join(map(str, args.judge_again))}" if args.judge_again else ""
        print_tables(lines, f"from {', '.join(args.tables)}{judged}")
        return
    torch.set_num_threads(args.threads)
    if args.steps is None:
        args.steps = build_config(preset="shapes", dotlist=args.sets)[0].steps

    checkpoints = sorted({*(s for s in args.checkpoints if 0 <= s < args.steps), args.steps})
    every = math.gcd(*checkpoints)  # a frame at each checkpoint; at step 0, the start as drawn
    models = None if args.afresh else Models()
    lines: list[dict] = []
    with tempfile.TemporaryDirectory() if args.out is None else contextlib.nullcontext(args.out) as out:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for color in args.colors:
                for shape in args.shapes:
                    prompt = f"{article(color)} {color} {shape}"
                    sets = args.sets
                    if args.from_shape:
                        start = Path(out) / f"start-{color}-{shape}.png"
                        start.parent.mkdir(parents=True, exist_ok=True)
                        draw_shape(shape, color).save(start)
                        sets = [*sets, f"init_image={start}"]
                    run_dir, took = run_one(prompt, seed, args.steps, every, sets, out, models)
                    for step in checkpoints:
                        lines.append({"seed": seed, "prompt": prompt, "step": step, "seconds": round(took, 2),
                                      **verdict_of(image_at(run_dir, step, args.steps), color, shape)})
    if args.verdicts:
        Path(args.verdicts).write_text("".join(json.dumps(line) + "\n" for line in lines))
    print_tables(lines, f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1} x "
                        f"{len(args.colors)} colors x {len(args.shapes)} shapes, {args.steps} steps, "
                        f"sets {args.sets or 'none'}{', from the shape' if args.from_shape else ''}, "
                        f"{args.threads} threads, models {'loaded by every run' if args.afresh else 'held'}, "
                        f"{cpu_name()}")


if __name__ == "__main__":
    main()

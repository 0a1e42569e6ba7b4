"""How early a race of --candidates can pick its winner: the race's ranking at each step
against how the candidates end, on the shapes preset, judged by pixels.

For every prompt "a COLOR SHAPE" of the grid, N seeds run together to the full step count
(as a race would, but all of them to the end); at each checkpoint every candidate is scored
as --candidates scores it (vqclip.run.candidates.score_candidates). Each row says, for the
winner the race would keep at that step, how its final image is judged (vqclip.shapes.pixel_judge)
and how often it is also the best by the final score; the last line is the mean candidate.

    python benchmarks/candidate_steps.py --candidates 4 --steps 100 --checkpoints 5 10 20 40
"""

from __future__ import annotations

import argparse

import torch

from vqclip.images import tensor_to_pil
from vqclip.run.build import build
from vqclip.run.candidates import score_candidates
from vqclip.run.config import build_config
from vqclip.run.prepare import prepare
from vqclip.shapes.data import COLORS, article
from vqclip.shapes.pixel_judge import judge

CRITERIA = ("color", "shape", "single", "inside", "right")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--colors", nargs="+", default=list(COLORS))
    parser.add_argument("--shapes", nargs="+", default=["circle", "square", "triangle", "star"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for every run")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    checkpoints = sorted(c for c in args.checkpoints if 0 < c < args.steps)
    picked: dict[int, list] = {c: [] for c in checkpoints}  # (verdict, also best at the end)
    everyone = []
    for color in args.colors:
        for shape in args.shapes:
            cfg, _ = build_config(preset="shapes", dotlist=[
                f"prompt={article(color)} {color} {shape}", f"seed={args.seed}", f"steps={args.steps}",
                f"batch_size={args.candidates}", "save_every=0", *args.sets])
            engine = build(prepare(cfg)).engine
            winners = {}
            for c in checkpoints:
                engine.run([], until=c)
                scores = score_candidates(engine)
                winners[c] = min(range(len(scores)), key=scores.__getitem__)
            engine.run([])
            final = score_candidates(engine)
            best = min(range(len(final)), key=final.__getitem__)
            verdicts = [judge(tensor_to_pil(image), color, shape) for image in engine.images()]
            everyone += verdicts
            for c in checkpoints:
                picked[c].append((verdicts[winners[c]], winners[c] == best))

    print(f"# {len(everyone) // args.candidates} prompts x {args.candidates} candidates, {args.steps} steps, "
          f"sets {args.sets or 'none'}, seeds {args.seed}..{args.seed + args.candidates - 1}")
    print("| race steps | best at the end | " + " | ".join(CRITERIA) + " |")
    print("|---" * (len(CRITERIA) + 2) + "|")
    for c in checkpoints:
        rows = picked[c]
        rates = [sum(getattr(v, name) for v, _ in rows) / len(rows) for name in CRITERIA]
        agree = sum(same for _, same in rows) / len(rows)
        print(f"| {c} | {agree:.0%} | " + " | ".join(f"{rate:.0%}" for rate in rates) + " |")
    rates = [sum(getattr(v, name) for v in everyone) / len(everyone) for name in CRITERIA]
    print(f"| any candidate | {1 / args.candidates:.0%} | "
          + " | ".join(f"{rate:.0%}" for rate in rates) + " |")


if __name__ == "__main__":
    main()
